"""AWS Nitro verifier negatives: each names the error class it must raise."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from enclavia.attestation.appraisal import Requirements, appraise_claims
from enclavia.attestation.binding import compute_report_data
from enclavia.attestation.platforms.nitro import verify as nitro
from enclavia.attestation.platforms.nitro.appraise import NitroReference
from enclavia.attestation.roots.amd import ARK_MILAN_PEM
from enclavia.crypto.pki import ChainCache
from enclavia.errors import (
    CertificateChainError,
    CertificateExpiredError,
    CertificateNotYetValidError,
    DebugEnclaveError,
    EvidenceFormatError,
    EvidenceTooOldError,
    MeasurementNotAllowedError,
    ReportDataMismatchError,
    SignatureInvalidError,
    UntrustedRootError,
)
from tests.attestation_factory import NOW, FakeNitro, der, make_nitro

DOC = "spec_attestationDocument.cbor"
AT = datetime(2022, 9, 15, 17, 44, 24, tzinfo=UTC)
DEBUG_AT = datetime(2022, 7, 14, 21, 46, 4, tzinfo=UTC)
LENIENT = Requirements(max_evidence_age=None, accept_revocation_unknown=True)


@pytest.fixture(scope="module")
def doc(vectors: Path) -> bytes:
    return (vectors / "nitro" / "cape-js" / DOC).read_bytes()


@pytest.fixture(scope="module")
def debug_doc(vectors: Path) -> bytes:
    return (vectors / "nitro" / "cape-js" / "attestation.bin").read_bytes()


@pytest.fixture(scope="module")
def test_pki() -> FakeNitro:
    return make_nitro()


def _parts(doc: bytes) -> list[bytes]:
    parts = cbor2.loads(doc)
    assert isinstance(parts, list)
    return parts


def _flip(data: bytes, offset: int, bit: int = 0) -> bytes:
    b = bytearray(data)
    b[offset] ^= 1 << bit
    return bytes(b)


# --- integrity -----------------------------------------------------------------------------------------


def test_bit_flip_in_signed_payload(doc: bytes) -> None:
    pcr2 = bytes.fromhex(
        "1c8bc2d84761b0da2777d07d889792540966f88930417c214659ec2f2996534e7894b98bf46e5bc83263825e3ce307b8"
    )
    off = doc.index(pcr2) + 5
    with pytest.raises(SignatureInvalidError):
        nitro.verify(_flip(doc, off), now=AT)


def test_bit_flip_in_nonce(doc: bytes) -> None:
    off = doc.index(bytes.fromhex("47b5fba6979cbf7e567e2629"))
    with pytest.raises(SignatureInvalidError):
        nitro.verify(_flip(doc, off, 7), now=AT)


@pytest.mark.parametrize("where", [0, 47, 48, 95])
def test_bit_flip_in_signature(doc: bytes, where: int) -> None:
    with pytest.raises(SignatureInvalidError):
        nitro.verify(_flip(doc, len(doc) - 96 + where), now=AT)


def test_bit_flip_in_protected_header_is_refused(doc: bytes) -> None:
    # 84 44 a1 01 38 22: flipping the algorithm value makes it ES256/other: refused before any crypto.
    with pytest.raises(EvidenceFormatError):
        nitro.verify(_flip(doc, 5, 2), now=AT)


def test_payload_signed_by_other_key(test_pki: FakeNitro) -> None:
    """A document whose leaf chains fine but whose signature comes from another key."""
    leaf, _ = test_pki.leaf()
    _, other_key = test_pki.leaf()
    forged = test_pki.document(leaf=(leaf, other_key))
    with pytest.raises(SignatureInvalidError):
        nitro.verify(forged, now=NOW, root_pem=test_pki.root_pem)


# --- roots and chain -----------------------------------------------------------------------------------


def test_wrong_root_amd_ark(doc: bytes) -> None:
    with pytest.raises(UntrustedRootError):
        nitro.verify(doc, now=AT, root_pem=ARK_MILAN_PEM)


def test_wrong_root_self_made(doc: bytes, test_pki: FakeNitro) -> None:
    with pytest.raises(UntrustedRootError):
        nitro.verify(doc, now=AT, root_pem=test_pki.root_pem)


def test_self_made_chain_is_not_aws(test_pki: FakeNitro) -> None:
    """A perfectly signed document from another PKI is refused under the default (AWS) root."""
    forged = test_pki.document()
    assert nitro.verify(forged, now=NOW, root_pem=test_pki.root_pem).tee.value == "nitro"
    with pytest.raises(UntrustedRootError):
        nitro.verify(forged, now=NOW)


def test_cabundle_reordered(test_pki: FakeNitro) -> None:
    bundle = [der(test_pki.inter), der(test_pki.root)]
    with pytest.raises(UntrustedRootError):
        nitro.verify(test_pki.document(cabundle=bundle), now=NOW, root_pem=test_pki.root_pem)


def test_cabundle_missing_intermediate(test_pki: FakeNitro) -> None:
    with pytest.raises(CertificateChainError):
        nitro.verify(test_pki.document(cabundle=[der(test_pki.root)]), now=NOW, root_pem=test_pki.root_pem)


def test_expired_certificate(doc: bytes) -> None:
    with pytest.raises(CertificateExpiredError):
        nitro.verify(doc, now=AT + timedelta(hours=4))


def test_expired_today(doc: bytes) -> None:
    with pytest.raises(CertificateExpiredError):
        nitro.verify(doc, now=datetime(2026, 1, 1, tzinfo=UTC))


def test_not_yet_valid_certificate(doc: bytes) -> None:
    with pytest.raises(CertificateNotYetValidError):
        nitro.verify(doc, now=AT - timedelta(hours=1))


def test_cached_chain_still_checks_time(doc: bytes) -> None:
    cache = ChainCache()
    nitro.verify(doc, now=AT, cache=cache)
    with pytest.raises(CertificateExpiredError):
        nitro.verify(doc, now=AT + timedelta(hours=4), cache=cache)
    with pytest.raises(CertificateNotYetValidError):
        nitro.verify(doc, now=AT - timedelta(hours=1), cache=cache)


def test_failures_are_not_cached(doc: bytes) -> None:
    cache = ChainCache()
    for _ in range(2):
        with pytest.raises(UntrustedRootError):
            nitro.verify(doc, now=AT, root_pem=ARK_MILAN_PEM, cache=cache)
    assert len(cache) == 0


def test_naive_time_is_misuse(doc: bytes) -> None:
    with pytest.raises(ValueError, match="timezone"):
        nitro.verify(doc, now=datetime(2022, 9, 15, 17, 44, 24))


# --- framing -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cut", [1, 10, 96, 97, 500])
def test_truncated(doc: bytes, cut: int) -> None:
    with pytest.raises(EvidenceFormatError):
        nitro.verify(doc[:-cut], now=AT)


@pytest.mark.parametrize("tail", [b"\x00", b"\xa0", b"\x84\x40\xa0\x40\x40"])
def test_extended(doc: bytes, tail: bytes) -> None:
    with pytest.raises(EvidenceFormatError):
        nitro.verify(doc + tail, now=AT)


def test_empty_and_oversized() -> None:
    with pytest.raises(EvidenceFormatError):
        nitro.verify(b"", now=AT)
    with pytest.raises(EvidenceFormatError):
        nitro.verify(b"\x84" + b"\x00" * 30_000, now=AT)


def test_wrong_tag(doc: bytes) -> None:
    with pytest.raises(EvidenceFormatError):
        nitro.verify(b"\xd8\x62" + doc, now=AT)  # tag 98 (COSE_Sign) is not COSE_Sign1
    with pytest.raises(EvidenceFormatError):
        nitro.verify(b"\xd2\xd2" + doc, now=AT)  # nested tags


def test_huge_length_cbor() -> None:
    for blob in (
        b"\x84\x5b\xff\xff\xff\xff\xff\xff\xff\xff",  # bstr of 2^64-1 bytes
        b"\x84\x5a\x7f\xff\xff\xff" + b"a" * 16,
        b"\x9b\xff\xff\xff\xff\xff\xff\xff\xff",  # array of 2^64-1 items
        b"\xbb\xff\xff\xff\xff\xff\xff\xff\xff",  # map of 2^64-1 pairs
        b"\x84\x5f\x41\x00\xff\xa0\x40\x40",  # indefinite-length bstr
    ):
        with pytest.raises(EvidenceFormatError):
            nitro.verify(blob, now=AT)


@pytest.mark.parametrize("depth", [9, 100, 10_000])
def test_deeply_nested_cbor(depth: int) -> None:
    with pytest.raises(EvidenceFormatError):
        nitro.verify(b"\x81" * depth + b"\x00", now=AT)


def test_deeply_nested_payload(test_pki: FakeNitro) -> None:
    nested: object = 0
    for _ in range(20):
        nested = [nested]
    with pytest.raises(EvidenceFormatError):
        nitro.verify(test_pki.document(extra={"x": nested}), now=NOW, root_pem=test_pki.root_pem)


def test_duplicate_map_key_in_payload(doc: bytes) -> None:
    prot, unprot, payload, sig = _parts(doc)
    # Append a second "digest" entry by bumping the map count: a parser differential waiting to happen.
    assert payload[0] == 0xA9
    dup = b"\xaa" + payload[1:] + cbor2.dumps("digest") + cbor2.dumps("SHA384")
    with pytest.raises(EvidenceFormatError):
        nitro.verify(cbor2.dumps([prot, unprot, dup, sig]), now=AT)


def test_float_and_undefined_refused(doc: bytes) -> None:
    prot, unprot, payload, sig = _parts(doc)
    for bad in (1.5, cbor2.undefined):
        with pytest.raises(EvidenceFormatError):
            nitro.verify(cbor2.dumps([prot, unprot, payload, sig, bad]), now=AT)


@pytest.mark.parametrize("item", [b"\xf8\xf4", b"\xf8\xf6", b"\xf7", b"\xf0", b"\xf9\x00\x00"])
def test_simple_values_other_than_false_true_null_refused(item: bytes) -> None:
    from enclavia.attestation.platforms.nitro.abi import loads_strict

    assert loads_strict(b"\x83\xf4\xf5\xf6") == [False, True, None]
    with pytest.raises(EvidenceFormatError):
        loads_strict(b"\x81" + item)


# --- algorithm confusion -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "protected",
    [
        b"",  # no protected header at all: no algorithm
        cbor2.dumps({}),  # empty map: no algorithm ("none")
        cbor2.dumps({1: -7}),  # ES256
        cbor2.dumps({1: -36}),  # ES512
        cbor2.dumps({1: -37}),  # PS256
        cbor2.dumps({1: 0}),  # reserved / "none"
        cbor2.dumps({1: "ES384"}),  # text alg
        cbor2.dumps({1: -35, 2: [1]}),  # crit / extra parameters
        cbor2.dumps({1: -35, 4: b"kid"}),
        cbor2.dumps([1, -35]),
    ],
)
def test_cose_algorithm_confusion(doc: bytes, protected: bytes) -> None:
    _, unprot, payload, sig = _parts(doc)
    with pytest.raises(EvidenceFormatError):
        nitro.verify(cbor2.dumps([protected, unprot, payload, sig]), now=AT)


def test_alg_in_unprotected_header_refused(doc: bytes) -> None:
    prot, _, payload, sig = _parts(doc)
    with pytest.raises(EvidenceFormatError):
        nitro.verify(cbor2.dumps([prot, {1: -7}, payload, sig]), now=AT)


def test_validly_signed_es256_document_refused(test_pki: FakeNitro) -> None:
    """A P-256 leaf with an ES256 header and a correct ES256 signature: the header alone decides nothing."""
    leaf = test_pki.leaf(curve=ec.SECP256R1())
    forged = test_pki.document(alg=-7, leaf=leaf)
    with pytest.raises(EvidenceFormatError):
        nitro.verify(forged, now=NOW, root_pem=test_pki.root_pem)


def test_p256_leaf_under_es384_header_refused(test_pki: FakeNitro) -> None:
    leaf = test_pki.leaf(curve=ec.SECP256R1())
    prot = cbor2.dumps({1: -35})
    forged = test_pki.document(protected=prot, leaf=leaf)  # signed with P-256/SHA-256, 64-byte r||s
    with pytest.raises(EvidenceFormatError):
        nitro.verify(forged, now=NOW, root_pem=test_pki.root_pem)


# --- document fields -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        {"digest": "SHA256"},
        {"timestamp": 0},
        {"timestamp": -1},
        {"module_id": ""},
        {"pcrs": {}},
        {"pcrs": {0: b"\x00" * 32, 1: b"\x00" * 48, 2: b"\x00" * 48}},
        {"pcrs": {32: b"\x00" * 48}},
        {"pcrs": {i: b"\x01" * 48 for i in (1, 2, 3)}},  # no PCR0
        {"cabundle": []},
        {"user_data": b"x" * 1025},
        {"nonce": b"x" * 1025},
        {"public_key": b""},
        {"unexpected": 1},
        {"certificate": b"x" * 1025},
    ],
)
def test_document_field_limits(test_pki: FakeNitro, extra: dict[str, object]) -> None:
    with pytest.raises(EvidenceFormatError):
        nitro.verify(test_pki.document(extra=extra), now=NOW, root_pem=test_pki.root_pem)


def test_synthetic_document_round_trip(test_pki: FakeNitro) -> None:
    rd = compute_report_data(b"n" * 16, b"kc", b"pk" * 16, b"m" * 32)
    claims = nitro.verify(
        test_pki.document(user_data=rd, nonce=b"n" * 16, tagged=True), now=NOW, root_pem=test_pki.root_pem
    )
    assert claims.report_data == rd
    assert claims.nonce == b"n" * 16
    assert not claims.debug
    ref = NitroReference.from_mapping("t", {"pcrs": {0: (b"\x01" * 48).hex(), 1: (b"\x02" * 48).hex()}})
    assert appraise_claims(claims, [ref], LENIENT, now=NOW, expected_report_data=rd) is ref
    # Evidence age applies with the default requirements (5 minutes).
    strict = Requirements(accept_revocation_unknown=True)
    assert appraise_claims(claims, [ref], strict, now=NOW + timedelta(minutes=4), expected_report_data=rd)
    with pytest.raises(EvidenceTooOldError):
        appraise_claims(claims, [ref], strict, now=NOW + timedelta(minutes=6), expected_report_data=rd)


# --- appraisal -----------------------------------------------------------------------------------------


def test_report_data_mismatch_through_appraisal(test_pki: FakeNitro) -> None:
    rd = compute_report_data(b"n" * 16, b"kc", b"pk" * 16, b"m" * 32)
    claims = nitro.verify(test_pki.document(user_data=rd), now=NOW, root_pem=test_pki.root_pem)
    ref = NitroReference.from_mapping("t", {"pcrs": {0: (b"\x01" * 48).hex()}})
    other = compute_report_data(b"other-nonce-0000", b"kc", b"pk" * 16, b"m" * 32)
    with pytest.raises(ReportDataMismatchError):
        appraise_claims(claims, [ref], LENIENT, now=NOW, expected_report_data=other)


def test_third_party_user_data_is_not_report_data(doc: bytes) -> None:
    """cape-js's user_data is 250 bytes of JSON: it can never bind an enclavia key configuration."""
    claims = nitro.verify(doc, now=AT)
    ref = NitroReference.from_mapping("cape", {"pcrs": {0: claims.measurement.hex()}})
    assert appraise_claims(claims, [ref], LENIENT, now=AT) is ref
    with pytest.raises(ReportDataMismatchError):
        appraise_claims(claims, [ref], LENIENT, now=AT, expected_report_data=bytes(64))


def test_debug_enclave_refused(debug_doc: bytes) -> None:
    claims = nitro.verify(debug_doc, now=DEBUG_AT)
    assert claims.debug
    ref = NitroReference.from_mapping("x", {"pcrs": {0: "11" * 48, 4: claims.measurements["PCR4"].hex()}})
    with pytest.raises(DebugEnclaveError):
        appraise_claims(claims, [ref], LENIENT, now=DEBUG_AT)


def test_measurement_not_allowed(doc: bytes) -> None:
    claims = nitro.verify(doc, now=AT)
    ref = NitroReference.from_mapping("other", {"pcrs": {0: "ab" * 48}})
    with pytest.raises(MeasurementNotAllowedError):
        appraise_claims(claims, [ref], LENIENT, now=AT)
    # All pinned PCRs must match, not just PCR0.
    half = NitroReference.from_mapping("half", {"pcrs": {0: claims.measurement.hex(), 8: "ab" * 48}})
    with pytest.raises(MeasurementNotAllowedError):
        appraise_claims(claims, [half], LENIENT, now=AT)
