"""TDX: each way a quote, its collateral or its appraisal can be wrong fails with its own error."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from enclavia.attestation.pem import pem_certificates
from enclavia.attestation.platforms.tdx.abi import HEADER_LEN, TD10_BODY_LEN, parse_quote
from enclavia.attestation.platforms.tdx.verify import (
    TcbStatus,
    claims_from_quote,
    map_dcap_error,
    parse_tcb_status,
    verify,
)
from enclavia.attestation.roots.nvidia import NVIDIA_DEVICE_IDENTITY_CA_PEM
from enclavia.errors import (
    AttestationError,
    CertificateExpiredError,
    CertificateNotYetValidError,
    CertificateRevokedError,
    CollateralError,
    DebugEnclaveError,
    EvidenceFormatError,
    MeasurementNotAllowedError,
    PolicyLoadError,
    ReportDataMismatchError,
    SignatureInvalidError,
    TcbError,
    UntrustedRootError,
)
from enclavia.policy.document import appraise, parse_policy

AT = datetime(2025, 6, 20, tzinfo=UTC)
MRTD = "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7"
RTMR0 = "44c0197b39157fdd7a4dcc44767f9d6b0bb3977c7a8e347b8492f827fe9d9e5c48aca29b220b80b6a540cf994b9bc9c0"
SIG_DATA = HEADER_LEN + TD10_BODY_LEN + 4  # v4: offset of the signature data


@pytest.fixture(scope="module")
def quote(vectors: Path) -> bytes:
    return (vectors / "tdx" / "dcap-qvl" / "tdx_quote").read_bytes()


@pytest.fixture(scope="module")
def collateral(vectors: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (vectors / "tdx" / "dcap-qvl" / "tdx_quote_collateral.json").read_bytes()
    )
    return data


def policy(extra: str = "", requirements: str = "{}") -> Any:
    return parse_policy(
        f"""
policy_id: tdx-test
revision: 1
requirements: {requirements}
reference_values:
  tdx:
    - name: tdx-ok
      unsafe_weak_pins: true  # MRTD and RTMR0 only: the tests are about the quote, not the pins
      mrtd: {MRTD}
      rtmr0: {RTMR0}
{extra}
"""
    )


def flip(data: bytes, offset: int, bit: int = 0) -> bytes:
    b = bytearray(data)
    b[offset] ^= 1 << bit
    return bytes(b)


def test_baseline_verifies_and_is_allowed(quote: bytes, collateral: dict[str, Any]) -> None:
    claims = verify(quote, collateral=collateral, now=AT)
    result = appraise(claims, policy(), now=AT, expected_report_data=claims.report_data)
    assert result.affirming and result.reference_name == "tdx-ok"


# --- bit flips -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "offset",
    [
        HEADER_LEN + 16 + 48 * 2 + 24,  # MRTD
        HEADER_LEN + 16 + 48 * 2 + 8,  # TDATTRIBUTES: debug bit
        HEADER_LEN + TD10_BODY_LEN - 1,  # last byte of REPORTDATA
        28,  # header user_data
    ],
    ids=["mrtd", "td_attributes", "report_data", "header"],
)
def test_bit_flip_in_signed_body(quote: bytes, collateral: dict[str, Any], offset: int) -> None:
    with pytest.raises(SignatureInvalidError):
        verify(flip(quote, offset), collateral=collateral, now=AT)


@pytest.mark.parametrize(
    ("offset", "what"),
    [
        (SIG_DATA + 5, "quote signature"),
        (SIG_DATA + 64 + 5, "attestation key"),
        (SIG_DATA + 128 + 6 + 100, "QE report"),
        (SIG_DATA + 128 + 6 + 384 + 7, "QE report signature"),
    ],
)
def test_bit_flip_in_signatures(quote: bytes, collateral: dict[str, Any], offset: int, what: str) -> None:
    with pytest.raises(SignatureInvalidError):
        verify(flip(quote, offset), collateral=collateral, now=AT)


def test_tee_type_flip_is_a_format_error(quote: bytes, collateral: dict[str, Any]) -> None:
    with pytest.raises(EvidenceFormatError):
        verify(flip(quote, 4), collateral=collateral, now=AT)


def test_sgx_quote_is_wrong_tee_type(vectors: Path) -> None:
    d = vectors / "tdx" / "dcap-qvl"
    with pytest.raises(EvidenceFormatError, match="not a TDX quote"):
        verify(
            (d / "sgx_quote").read_bytes(), collateral=(d / "sgx_quote_collateral.json").read_bytes(), now=AT
        )


# --- roots and chains ------------------------------------------------------------------------------


def test_wrong_root(quote: bytes, collateral: dict[str, Any]) -> None:
    other = pem_certificates(NVIDIA_DEVICE_IDENTITY_CA_PEM)[0]
    with pytest.raises(UntrustedRootError):
        verify(quote, collateral=collateral, now=AT, root_der=other)


def test_collateral_chain_not_ending_at_pinned_root(quote: bytes, collateral: dict[str, Any]) -> None:
    chain = collateral["tcb_info_issuer_chain"]
    first = chain[: chain.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")] + "\n"
    with pytest.raises(UntrustedRootError):
        verify(quote, collateral={**collateral, "tcb_info_issuer_chain": first}, now=AT)


# --- time ------------------------------------------------------------------------------------------


def test_collateral_expired(quote: bytes, collateral: dict[str, Any]) -> None:
    # TCB info nextUpdate 2025-07-19T10:16:03Z
    with pytest.raises(CollateralError, match="expired"):
        verify(quote, collateral=collateral, now=datetime(2025, 7, 20, tzinfo=UTC))


def test_collateral_not_yet_valid(quote: bytes, collateral: dict[str, Any]) -> None:
    # TCB info issueDate 2025-06-19T10:16:03Z; the repo's own example time is before it (SOURCE.md)
    with pytest.raises(CollateralError, match="not yet valid"):
        verify(quote, collateral=collateral, now=datetime.fromtimestamp(1750320802, tz=UTC))


def test_far_future_and_far_past(quote: bytes, collateral: dict[str, Any]) -> None:
    with pytest.raises(CollateralError):
        verify(quote, collateral=collateral, now=datetime(2040, 1, 1, tzinfo=UTC))
    with pytest.raises(CollateralError):
        verify(quote, collateral=collateral, now=datetime(2017, 1, 1, tzinfo=UTC))


def test_naive_time_is_misuse(quote: bytes, collateral: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        verify(quote, collateral=collateral, now=datetime(2025, 6, 20))


# --- collateral ------------------------------------------------------------------------------------


def test_collateral_signature_flip(quote: bytes, collateral: dict[str, Any]) -> None:
    sig = collateral["tcb_info_signature"]
    bad = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    with pytest.raises(CollateralError):
        verify(quote, collateral={**collateral, "tcb_info_signature": bad}, now=AT)
    sig = collateral["qe_identity_signature"]
    bad = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    with pytest.raises(CollateralError):
        verify(quote, collateral={**collateral, "qe_identity_signature": bad}, now=AT)


def test_collateral_tcb_info_edited(quote: bytes, collateral: dict[str, Any]) -> None:
    edited = collateral["tcb_info"].replace("OutOfDate", "UpToDate")
    assert edited != collateral["tcb_info"]
    with pytest.raises(CollateralError):
        verify(quote, collateral={**collateral, "tcb_info": edited}, now=AT)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda c: {k: v for k, v in c.items() if k != "pck_crl"},
        lambda c: {**c, "extra": "x"},
        lambda c: {**c, "tcb_info": 5},
        lambda c: {**c, "pck_crl": "zz"},
        lambda c: {**c, "tcb_info": "{not json"},
    ],
    ids=["missing", "unknown", "type", "bad-hex", "bad-json"],
)
def test_collateral_malformed(quote: bytes, collateral: dict[str, Any], mutate: Any) -> None:
    with pytest.raises(CollateralError):
        verify(quote, collateral=mutate(collateral), now=AT)


@pytest.mark.parametrize("raw", [b"", b"not json", b"[]", b"\xff\xfe", b'{"a": 1}'])
def test_collateral_bytes_malformed(quote: bytes, raw: bytes) -> None:
    with pytest.raises(CollateralError):
        verify(quote, collateral=raw, now=AT)


def test_collateral_for_another_platform(vectors: Path, quote: bytes) -> None:
    d = vectors / "tdx" / "dcap-qvl"
    with pytest.raises(CollateralError):
        verify(quote, collateral=(d / "sgx_quote_collateral.json").read_bytes(), now=AT)
    # the outdated v5 quote's collateral is for FMSPC 90c06f and a 2026 window
    with pytest.raises((CollateralError, CertificateNotYetValidError)):
        verify(quote, collateral=(d / "tdx_quote_outdated_collateral.json").read_bytes(), now=AT)


def test_no_matching_tcb_level_named_in_source_md(vectors: Path) -> None:
    d = vectors / "tdx" / "dcap-qvl"
    with pytest.raises(TcbError, match="no TCB level"):
        verify(
            (d / "tdx_quote_outdated").read_bytes(),
            collateral=(d / "tdx_quote_outdated_collateral.json").read_bytes(),
            now=datetime(2026, 3, 1, tzinfo=UTC),
        )


# --- lengths ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("cut", [0, 1, 47, 48, 300, 631, 632, 635, 700, 4000, 4935])
def test_truncated(quote: bytes, collateral: dict[str, Any], cut: int) -> None:
    with pytest.raises(EvidenceFormatError):
        verify(quote[:cut], collateral=collateral, now=AT)


@pytest.mark.parametrize("tail", [b"\x01", b"\x00" * 69 + b"\x01", b"garbage"])
def test_extended_with_data(quote: bytes, collateral: dict[str, Any], tail: bytes) -> None:
    with pytest.raises(EvidenceFormatError):
        verify(quote + tail, collateral=collateral, now=AT)


def test_zero_padding_is_dropped_not_signed(quote: bytes, collateral: dict[str, Any]) -> None:
    # The vector itself carries 70 zero bytes after its declared end (a fixed-size buffer); more zeros are the
    # same padding. They are never handed to the verifier nor reflected in the claims beyond their count.
    claims = verify(quote + b"\x00" * 10, collateral=collateral, now=AT)
    assert claims.details["padding_len"] == 80
    assert len(parse_quote(quote).raw) == 4936


def test_oversized(collateral: dict[str, Any]) -> None:
    with pytest.raises(EvidenceFormatError):
        verify(b"\x04\x00" + b"\x00" * (70 * 1024), collateral=collateral, now=AT)


# --- TCB status ------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["Revoked", "Unknown", "uptodate", "", None, 3])
def test_revoked_and_unknown_status_refused(status: object) -> None:
    with pytest.raises(TcbError):
        parse_tcb_status(status)


def test_every_known_status_but_revoked_parses() -> None:
    for s in TcbStatus:
        if s is TcbStatus.REVOKED:
            continue
        assert parse_tcb_status(str(s)) is s


def test_tcb_status_not_accepted(quote: bytes, collateral: dict[str, Any]) -> None:
    claims = verify(quote, collateral=collateral, now=AT)
    with pytest.raises(TcbError):
        appraise(claims, policy("      accepted_tcb_status: [SWHardeningNeeded]"), now=AT)


def test_out_of_date_refused_by_default_and_accepted_when_named(quote: bytes) -> None:
    q = parse_quote(quote)
    claims = claims_from_quote(q, tcb_status=TcbStatus.OUT_OF_DATE, advisory_ids=["INTEL-SA-00837"])
    with pytest.raises(TcbError):
        appraise(claims, policy(), now=AT)
    ok = appraise(claims, policy("      accepted_tcb_status: [UpToDate, OutOfDate]"), now=AT)
    assert ok.affirming
    with pytest.raises(TcbError):
        appraise(
            claims,
            policy("      accepted_tcb_status: [OutOfDate]\n      rejected_advisory_ids: [INTEL-SA-00837]"),
            now=AT,
        )


def test_policy_cannot_accept_revoked_or_unknown_status() -> None:
    with pytest.raises(PolicyLoadError):
        policy("      accepted_tcb_status: [Revoked]")
    with pytest.raises(PolicyLoadError):
        policy("      accepted_tcb_status: [Fine]")
    with pytest.raises(PolicyLoadError):
        policy("      accepted_tcb_status: []")


# --- appraisal -------------------------------------------------------------------------------------


def test_debug_td_attribute(quote: bytes, collateral: dict[str, Any]) -> None:
    debug_quote = flip(quote, HEADER_LEN + 16 + 48 * 2 + 8)
    # Real debug evidence needs a debug TD; the bit is signed, so a flipped one never verifies ...
    with pytest.raises(SignatureInvalidError):
        verify(debug_quote, collateral=collateral, now=AT)
    # ... and a verified debug TD (claims built as verify builds them) is refused by appraisal.
    q = parse_quote(debug_quote)
    assert q.report.debug
    claims = claims_from_quote(q, tcb_status=TcbStatus.UP_TO_DATE)
    assert claims.debug
    with pytest.raises(DebugEnclaveError):
        appraise(claims, policy(), now=AT)
    # Only an explicit requirement lets it through (then the td_attributes pin, if any, still applies).
    assert appraise(claims, policy(requirements="{allow_debug: true}"), now=AT).affirming
    with pytest.raises(MeasurementNotAllowedError):
        appraise(claims, policy("      td_attributes: '0000001000000000'", "{allow_debug: true}"), now=AT)


def test_report_data_mismatch(quote: bytes, collateral: dict[str, Any]) -> None:
    claims = verify(quote, collateral=collateral, now=AT)
    with pytest.raises(ReportDataMismatchError):
        appraise(claims, policy(), now=AT, expected_report_data=b"\x00" * 64)
    with pytest.raises(ReportDataMismatchError):
        appraise(claims, policy(), now=AT, expected_report_data=claims.report_data[:32])


def test_measurement_not_allowed(quote: bytes, collateral: dict[str, Any]) -> None:
    claims = verify(quote, collateral=collateral, now=AT)
    with pytest.raises(MeasurementNotAllowedError):
        appraise(claims, policy().__class__(**{**policy().__dict__, "references": ()}), now=AT)
    other = replace(claims, measurement=b"\x01" * 48)
    with pytest.raises(MeasurementNotAllowedError):
        appraise(other, policy(), now=AT)
    wrong_rtmr = parse_policy(
        f"""
policy_id: p
revision: 1
reference_values:
  tdx: [{{unsafe_weak_pins: true, name: r, mrtd: {MRTD}, rtmr3: '{"11" * 48}'}}]
"""
    )
    with pytest.raises(MeasurementNotAllowedError):
        appraise(claims, wrong_rtmr, now=AT)


def test_reference_must_pin_mrtd() -> None:
    with pytest.raises(PolicyLoadError):
        parse_policy("policy_id: p\nrevision: 1\nreference_values:\n  tdx: [{rtmr0: '" + RTMR0 + "'}]\n")
    with pytest.raises(PolicyLoadError):
        parse_policy("policy_id: p\nrevision: 1\nreference_values:\n  tdx: [{mrtd: '00'}]\n")
    with pytest.raises(PolicyLoadError):
        parse_policy("policy_id: p\nrevision: 1\nreference_values:\n  tdx: [{mrtd: '" + MRTD + "', x: 1}]\n")


# --- dcap-qvl error mapping (phrases dcap-qvl 0.7 uses) ---------------------------------------------


@pytest.mark.parametrize(
    ("message", "cls"),
    [
        ("Verification failed: TCB status is invalid: Revoked", TcbError),
        ("Verification failed: CertRevoked", CertificateRevokedError),
        ("Verification failed: certificate expired: verification time ...", CertificateExpiredError),
        (
            "Failed to verify certificate chain\nCaused by: CertNotValidYet { .. }",
            CertificateNotYetValidError,
        ),
        ("Failed to verify certificate chain\nCaused by: UnknownIssuer", UntrustedRootError),
        ("Verification failed: QEIdentity expired", CollateralError),
        ("Verification failed: QE MRSIGNER mismatch: expected ..", SignatureInvalidError),
        ("Verification failed: Fmspc mismatch", CollateralError),
        ("something new", AttestationError),
    ],
)
def test_dcap_error_mapping(message: str, cls: type[Exception]) -> None:
    err = map_dcap_error(message)
    assert type(err) is cls
    assert message not in str(err)  # fixed, content-free detail


def test_parsers_must_agree(
    quote: bytes, collateral: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import dcap_qvl

    real = dcap_qvl.parse_quote

    class Skewed:
        def __init__(self, raw: bytes) -> None:
            self._report = real(raw).report

        @property
        def report(self) -> Any:
            rep = self._report

            class View:
                def __getattr__(self, name: str) -> Any:
                    value = getattr(rep, name)
                    return b"\x00" * len(value) if name == "report_data" else value

            return View()

    monkeypatch.setattr(dcap_qvl, "parse_quote", Skewed)
    with pytest.raises(EvidenceFormatError, match="differently"):
        verify(quote, collateral=collateral, now=AT)
