"""NVIDIA: each way GPU evidence, its chain or its appraisal can be wrong fails with its own error."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from enclavia.attestation.platforms.nvidia.verify import verify, verify_evidence_list
from enclavia.attestation.roots.nvidia import NVIDIA_RIM_ROOT_CA_PEM
from enclavia.errors import (
    CertificateChainError,
    CertificateExpiredError,
    CertificateNotYetValidError,
    EvidenceFormatError,
    MeasurementNotAllowedError,
    NonceMismatchError,
    PolicyLoadError,
    ReportDataMismatchError,
    RevocationUnknownError,
    SignatureInvalidError,
    UntrustedRootError,
)
from enclavia.policy.document import appraise, parse_policy
from tests.nvidia_synth import make_gpu
from tests.tee_vectors import nvidia_dir, nvidia_ppcie_nonce, read_evidence

AT = datetime(2025, 1, 1, tzinfo=UTC)
NONCE = bytes.fromhex("931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb")
REQ = 37  # request length; response starts here
RECORD = REQ + 8  # first measurement block


@pytest.fixture(scope="module")
def report(vectors: Path) -> bytes:
    return read_evidence(nvidia_dir(vectors) / "hopperAttestationReport.txt")


@pytest.fixture(scope="module")
def chain(vectors: Path) -> bytes:
    return (nvidia_dir(vectors) / "hopperCertChain.pem").read_bytes()


@pytest.fixture(scope="module")
def ppcie(vectors: Path) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads(
        (nvidia_dir(vectors) / "ppcie_gpu_evidence_8xH100.json").read_bytes()
    )
    return data


def flip(data: bytes, offset: int) -> bytes:
    b = bytearray(data)
    b[offset] ^= 0x01
    return bytes(b)


def gpu_policy(m1: str, accept_unknown: bool = True, extra: str = "") -> Any:
    return parse_policy(
        f"""
policy_id: gpu
revision: 1
requirements: {{accept_revocation_unknown: {str(accept_unknown).lower()}}}
reference_values:
  nvidia:
    - name: h100
      measurements: {{1: '{m1}'}}
{extra}
"""
    )


def test_baseline(report: bytes, chain: bytes) -> None:
    claims = verify(report, cert_chain_pem=chain, nonce=NONCE, now=AT)
    result = appraise(claims, gpu_policy(claims.measurements["M1"].hex()), now=AT)
    assert result.affirming and result.reference_name == "h100"


@pytest.mark.parametrize(
    "offset",
    [4, 20, RECORD + 10, RECORD + 3520 - 1, RECORD + 3520 + 5, -97],
    ids=["request-nonce", "request-nonce-2", "measurement", "last-block", "responder-nonce", "opaque"],
)
def test_bit_flip_in_signed_bytes(report: bytes, chain: bytes, offset: int) -> None:
    with pytest.raises(SignatureInvalidError):
        verify(flip(report, offset % len(report)), cert_chain_pem=chain, nonce=None, now=AT)


@pytest.mark.parametrize("offset", [-96, -49, -48, -1])
def test_bit_flip_in_signature(report: bytes, chain: bytes, offset: int) -> None:
    with pytest.raises(SignatureInvalidError):
        verify(flip(report, len(report) + offset), cert_chain_pem=chain, nonce=None, now=AT)


def test_header_flips_are_format_errors(report: bytes, chain: bytes) -> None:
    for offset in (0, 1, 2, 3, REQ, REQ + 1, REQ + 4):
        with pytest.raises(EvidenceFormatError):
            verify(flip(report, offset), cert_chain_pem=chain, nonce=None, now=AT)


def test_wrong_root(report: bytes, chain: bytes) -> None:
    with pytest.raises(UntrustedRootError):
        verify(report, cert_chain_pem=chain, nonce=None, now=AT, root_pem=NVIDIA_RIM_ROOT_CA_PEM)
    other = make_gpu()
    with pytest.raises(UntrustedRootError):
        verify(report, cert_chain_pem=chain, nonce=None, now=AT, root_pem=other.root_pem)


def test_chain_of_another_gpu(report: bytes, ppcie: list[dict[str, Any]]) -> None:
    other = base64.b64decode(ppcie[0]["certificate"])
    with pytest.raises(SignatureInvalidError):
        verify(report, cert_chain_pem=other, nonce=None, now=AT)


def test_chain_missing_links(report: bytes, chain: bytes) -> None:
    blocks = chain.split(b"-----END CERTIFICATE-----")
    leaf_only = blocks[0] + b"-----END CERTIFICATE-----\n"
    with pytest.raises(UntrustedRootError):
        verify(report, cert_chain_pem=leaf_only, nonce=None, now=AT)
    with pytest.raises(CertificateChainError):
        verify(report, cert_chain_pem=b"not a pem", nonce=None, now=AT)


def test_not_yet_valid(report: bytes, chain: bytes) -> None:
    # Provisioner ICA notBefore 2022-03-01; BROM/leaf 2020-10-17
    with pytest.raises(CertificateNotYetValidError):
        verify(report, cert_chain_pem=chain, nonce=None, now=datetime(2022, 2, 28, tzinfo=UTC))
    with pytest.raises(CertificateNotYetValidError):
        verify(report, cert_chain_pem=chain, nonce=None, now=datetime(2019, 1, 1, tzinfo=UTC))


def test_expired_leaf_synthetic() -> None:
    # The real chain is valid until 9999-12-31, past which no datetime reaches: use a test root.
    now = datetime.now(UTC)
    gpu = make_gpu(not_before=now - timedelta(days=30), not_after=now - timedelta(days=1))
    nonce = b"\x07" * 32
    with pytest.raises(CertificateExpiredError):
        verify(gpu.report(nonce), cert_chain_pem=gpu.chain_pem, nonce=nonce, now=now, root_pem=gpu.root_pem)
    ok = verify(
        gpu.report(nonce),
        cert_chain_pem=gpu.chain_pem,
        nonce=nonce,
        now=now - timedelta(days=2),
        root_pem=gpu.root_pem,
    )
    assert ok.details["arch"] == "HOPPER"


def test_blackwell_and_unknown_chips_synthetic() -> None:
    nonce = b"\x01" * 32
    bw = make_gpu("GB100")
    claims = verify(
        bw.report(nonce),
        cert_chain_pem=bw.chain_pem,
        nonce=nonce,
        now=datetime.now(UTC),
        root_pem=bw.root_pem,
    )
    assert claims.details["arch"] == "BLACKWELL"
    unknown = make_gpu("XX100")
    with pytest.raises(EvidenceFormatError):
        verify(
            unknown.report(nonce),
            cert_chain_pem=unknown.chain_pem,
            nonce=nonce,
            now=datetime.now(UTC),
            root_pem=unknown.root_pem,
        )


def test_nonce_mismatch(report: bytes, chain: bytes) -> None:
    with pytest.raises(NonceMismatchError):
        verify(report, cert_chain_pem=chain, nonce=b"\x00" * 32, now=AT)
    with pytest.raises(ValueError):
        verify(report, cert_chain_pem=chain, nonce=NONCE[:16], now=AT)


@pytest.mark.parametrize("cut", [0, 1, 36, 37, 38, 45, 1000, 3565, 4000, 4116])
def test_truncated(report: bytes, chain: bytes, cut: int) -> None:
    with pytest.raises(EvidenceFormatError):
        verify(report[:cut], cert_chain_pem=chain, nonce=None, now=AT)


@pytest.mark.parametrize("tail", [b"\x00", b"\x01" * 8])
def test_extended(report: bytes, chain: bytes, tail: bytes) -> None:
    with pytest.raises(EvidenceFormatError):
        verify(report + tail, cert_chain_pem=chain, nonce=None, now=AT)


def test_naive_time_is_misuse(report: bytes, chain: bytes) -> None:
    with pytest.raises(ValueError):
        verify(report, cert_chain_pem=chain, nonce=None, now=datetime(2025, 1, 1))


# --- appraisal -------------------------------------------------------------------------------------


def test_revocation_unknown_refused_unless_policy_accepts(report: bytes, chain: bytes) -> None:
    claims = verify(report, cert_chain_pem=chain, nonce=NONCE, now=AT)
    m1 = claims.measurements["M1"].hex()
    with pytest.raises(RevocationUnknownError):
        appraise(claims, gpu_policy(m1, accept_unknown=False), now=AT)
    assert appraise(claims, gpu_policy(m1, accept_unknown=True), now=AT).affirming


def test_measurement_pin_mismatch(report: bytes, chain: bytes) -> None:
    claims = verify(report, cert_chain_pem=chain, nonce=NONCE, now=AT)
    with pytest.raises(MeasurementNotAllowedError):
        appraise(claims, gpu_policy("11" * 48), now=AT)
    m1 = claims.measurements["M1"].hex()
    with pytest.raises(MeasurementNotAllowedError):
        appraise(claims, gpu_policy(m1, extra="      arch: BLACKWELL"), now=AT)
    with pytest.raises(MeasurementNotAllowedError):
        appraise(claims, gpu_policy(m1, extra="      driver_version: '550.90.08'"), now=AT)
    assert appraise(
        claims, gpu_policy(m1, extra="      arch: hopper\n      vbios_version: 96.00.9f.00.01"), now=AT
    ).affirming


def test_gpu_claims_have_no_report_data(report: bytes, chain: bytes) -> None:
    claims = verify(report, cert_chain_pem=chain, nonce=NONCE, now=AT)
    with pytest.raises(ReportDataMismatchError):
        appraise(
            claims, gpu_policy(claims.measurements["M1"].hex()), now=AT, expected_report_data=b"\x00" * 64
        )


@pytest.mark.parametrize(
    "entry",
    [
        "{}",
        "{measurements: {}}",
        "{measurements: {0: 'aa'}}",
        "{measurements: {255: 'aa'}}",
        "{measurements: {1: 'zz'}}",
        "{measurements: {1: ''}}",
        "{measurements: {1: 'aa', M1: 'bb'}}",
        "{measurements: {1: 'aa'}, arch: AMPERE}",
        "{measurements: {1: 'aa'}, other: 1}",
    ],
)
def test_reference_must_pin(entry: str) -> None:
    with pytest.raises(PolicyLoadError):
        parse_policy(f"policy_id: p\nrevision: 1\nreference_values:\n  nvidia: [{entry}]\n")


# --- multi-GPU JSON --------------------------------------------------------------------------------


def _dump(entries: list[dict[str, Any]]) -> bytes:
    return json.dumps(entries).encode()


def test_ppcie_nonce_mismatch(vectors: Path, ppcie: list[dict[str, Any]]) -> None:
    with pytest.raises(NonceMismatchError):
        verify_evidence_list(_dump(ppcie), nonce=b"\x00" * 32, now=AT)
    bad = [dict(ppcie[0], nonce="00" * 32), *ppcie[1:]]
    with pytest.raises(NonceMismatchError):
        verify_evidence_list(_dump(bad), nonce=None, now=AT)


def test_ppcie_mixed_nonces(vectors: Path, ppcie: list[dict[str, Any]], report: bytes, chain: bytes) -> None:
    other = {
        "arch": "HOPPER",
        "nonce": NONCE.hex(),
        "evidence": base64.b64encode(report).decode(),
        "certificate": base64.b64encode(chain).decode(),
    }
    with pytest.raises(NonceMismatchError):
        verify_evidence_list(_dump([*ppcie, other]), nonce=None, now=AT)


def test_ppcie_duplicate_gpu(ppcie: list[dict[str, Any]], vectors: Path) -> None:
    with pytest.raises(EvidenceFormatError):
        verify_evidence_list(
            _dump([ppcie[0], ppcie[0]]), nonce=bytes.fromhex(nvidia_ppcie_nonce(vectors)), now=AT
        )


@pytest.mark.parametrize(
    "mutate",
    [
        lambda e: {**e, "arch": "BLACKWELL"},
        lambda e: {**e, "driver_version": "999.0"},
        lambda e: {**e, "vbios_version": "96.00.00.00.00"},
        lambda e: {**e, "evidence": "***"},
        lambda e: {**e, "extra": 1},
        lambda e: {k: v for k, v in e.items() if k != "evidence"},
    ],
    ids=["arch", "driver", "vbios", "b64", "unknown-key", "missing"],
)
def test_ppcie_unsigned_fields_must_agree(ppcie: list[dict[str, Any]], mutate: Any) -> None:
    with pytest.raises(EvidenceFormatError):
        verify_evidence_list(_dump([mutate(ppcie[0])]), nonce=None, now=AT)


@pytest.mark.parametrize("data", [b"", b"{}", b"[]", b"[1]", b"\xff", b"[" + b"[" * 5000])
def test_ppcie_malformed(data: bytes) -> None:
    with pytest.raises(EvidenceFormatError):
        verify_evidence_list(data, nonce=None, now=AT)
