"""AMD SEV-SNP verifier negatives (real vectors first, then a throw-away AMD PKI for what no public vector
has). Each test names the error class it must raise."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from enclavia.attestation.appraisal import Requirements, appraise_claims
from enclavia.attestation.platforms.sevsnp import verify as snp
from enclavia.attestation.platforms.sevsnp.abi import (
    ARK_GUID,
    ASK_GUID,
    VCEK_GUID,
    VLEK_GUID,
    parse_cert_table,
)
from enclavia.attestation.platforms.sevsnp.appraise import SevSnpReference
from enclavia.attestation.roots import amd
from enclavia.crypto.pki import ChainCache
from enclavia.errors import (
    CertificateChainError,
    CertificateExpiredError,
    CertificateNotYetValidError,
    CertificateRevokedError,
    ChipMismatchError,
    CollateralError,
    DebugEnclaveError,
    EvidenceFormatError,
    MeasurementNotAllowedError,
    ReportDataMismatchError,
    RevocationUnknownError,
    SignatureInvalidError,
    TcbError,
    UntrustedRootError,
)
from tests.attestation_factory import (
    NOT_AFTER,
    NOW,
    FakeAmd,
    build_report,
    cert_table,
    der,
    make_amd,
    tcb_bytes,
)

AT = datetime(2025, 6, 1, tzinfo=UTC)
LENIENT = Requirements(max_evidence_age=None, accept_revocation_unknown=True)


def _flip(data: bytes, offset: int, bit: int = 0) -> bytes:
    b = bytearray(data)
    b[offset] ^= 1 << bit
    return bytes(b)


@pytest.fixture(scope="module")
def trustee(vectors: Path) -> Path:
    return vectors / "snp" / "trustee"


@pytest.fixture(scope="module")
def report(trustee: Path) -> bytes:
    return (trustee / "test-report.bin").read_bytes()


@pytest.fixture(scope="module")
def vcek(trustee: Path) -> bytes:
    return (trustee / "test-vcek.der").read_bytes()


@pytest.fixture(scope="module")
def vlek_report(trustee: Path) -> bytes:
    return (trustee / "test-vlek-report.bin").read_bytes()


@pytest.fixture(scope="module")
def vlek(trustee: Path) -> bytes:
    return (trustee / "test-vlek.der").read_bytes()


@pytest.fixture(scope="module")
def milan_chain(trustee: Path) -> bytes:
    return (trustee / "milan_ask_ark_asvk.pem").read_bytes()


# --- integrity of the signed body ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "offset",
    [0x004, 0x008, 0x010, 0x050, 0x08F, 0x090, 0x0BF, 0x0C0, 0x0E0, 0x140, 0x160, 0x1E8, 0x1F0],
    ids=hex,
)
def test_bit_flip_in_signed_body(report: bytes, vcek: bytes, offset: int) -> None:
    with pytest.raises(SignatureInvalidError):
        snp.verify(_flip(report, offset), now=AT, vcek_der=vcek)


def test_debug_bit_flip_is_a_signature_failure(report: bytes, vcek: bytes) -> None:
    with pytest.raises(SignatureInvalidError):
        snp.verify(_flip(report, 0x00A, 3), now=AT, vcek_der=vcek)  # POLICY bit 19


@pytest.mark.parametrize("offset", [0x2A0, 0x2C0, 0x2E7, 0x2E8, 0x310], ids=hex)
def test_bit_flip_in_signature(report: bytes, vcek: bytes, offset: int) -> None:
    with pytest.raises(SignatureInvalidError):
        snp.verify(_flip(report, offset), now=AT, vcek_der=vcek)


def test_signature_component_out_of_range(report: bytes, vcek: bytes) -> None:
    with pytest.raises(SignatureInvalidError):
        snp.verify(_flip(report, 0x2A0 + 60), now=AT, vcek_der=vcek)  # r above 384 bits


def test_zero_signature(report: bytes, vcek: bytes) -> None:
    zeroed = report[:0x2A0] + bytes(0x4A0 - 0x2A0)
    with pytest.raises(SignatureInvalidError):
        snp.verify(zeroed, now=AT, vcek_der=vcek)


@pytest.mark.parametrize("offset", [0x04C, 0x18B, 0x1EB, 0x1EF, 0x1F8, 0x250, 0x330, 0x49F], ids=hex)
def test_reserved_bytes_must_be_zero(report: bytes, vcek: bytes, offset: int) -> None:
    with pytest.raises(EvidenceFormatError):
        snp.verify(_flip(report, offset), now=AT, vcek_der=vcek)


def test_reported_tcb_flip_is_a_tcb_error(report: bytes, vcek: bytes) -> None:
    with pytest.raises(TcbError):
        snp.verify(_flip(report, 0x186), now=AT, vcek_der=vcek)  # SNP SPL byte


def test_chip_id_flip_is_a_chip_mismatch(report: bytes, vcek: bytes) -> None:
    with pytest.raises(ChipMismatchError):
        snp.verify(_flip(report, 0x1A0), now=AT, vcek_der=vcek)


@pytest.mark.parametrize(("offset", "value"), [(0x000, 1), (0x000, 6), (0x034, 2), (0x034, 0), (0x030, 4)])
def test_unsupported_header_values(report: bytes, vcek: bytes, offset: int, value: int) -> None:
    b = bytearray(report)
    b[offset] = value
    with pytest.raises(EvidenceFormatError):
        snp.verify(bytes(b), now=AT, vcek_der=vcek)


@pytest.mark.parametrize("length", [0, 1, 0x2A0, 1183])
def test_truncated(report: bytes, vcek: bytes, length: int) -> None:
    with pytest.raises(EvidenceFormatError):
        snp.verify(report[:length], now=AT, vcek_der=vcek)


@pytest.mark.parametrize("tail", [b"\x00", b"\x00" * 1184])
def test_extended(report: bytes, vcek: bytes, tail: bytes) -> None:
    with pytest.raises(EvidenceFormatError):
        snp.verify(report + tail, now=AT, vcek_der=vcek)


# --- endorsement keys and chains -----------------------------------------------------------------------


def test_vcek_from_another_chip(report: bytes, vectors: Path) -> None:
    other = (vectors / "snp" / "virtee-sev" / "vcek_milan.der").read_bytes()  # same TCB, other chip
    with pytest.raises(ChipMismatchError):
        snp.verify(report, now=AT, vcek_der=other)


def test_vcek_for_another_tcb(report: bytes, vectors: Path) -> None:
    other = (vectors / "snp" / "go-sev-guest" / "vcek.der").read_bytes()  # TCB 2/0/5/68 vs 3/0/8/115
    with pytest.raises(TcbError):
        snp.verify(report, now=AT, vcek_der=other)


def test_vlek_report_against_vcek_chain(vlek_report: bytes, vcek: bytes, milan_chain: bytes) -> None:
    with pytest.raises(CertificateChainError):
        snp.verify(vlek_report, now=AT, vcek_der=vcek, chain_pem=milan_chain)


def test_vcek_report_against_vlek(report: bytes, vlek: bytes, milan_chain: bytes) -> None:
    with pytest.raises(CertificateChainError):
        snp.verify(report, now=AT, vcek_der=vlek, chain_pem=milan_chain)


@pytest.mark.parametrize("name", ["test-vcek-invalid-legacy.der", "test-vcek-invalid-new.der"])
def test_altered_vceks(report: bytes, trustee: Path, name: str) -> None:
    with pytest.raises(CertificateChainError):
        snp.verify(report, now=AT, vcek_der=(trustee / name).read_bytes())


def test_wrong_root_genoa_chain(report: bytes, vcek: bytes, trustee: Path) -> None:
    with pytest.raises(UntrustedRootError):
        snp.verify(report, now=AT, vcek_der=vcek, chain_pem=(trustee / "genoa_ask_ark_asvk.pem").read_bytes())


def test_wrong_pinned_ark(report: bytes, vcek: bytes, milan_chain: bytes) -> None:
    with pytest.raises(UntrustedRootError):
        snp.verify(report, now=AT, vcek_der=vcek, chain_pem=milan_chain, ark_pem=amd.ARK_GENOA_PEM)


def test_fake_ark_in_chain(report: bytes, vcek: bytes, fake: FakeAmd) -> None:
    with pytest.raises(UntrustedRootError):
        snp.verify(report, now=AT, vcek_der=vcek, chain_pem=fake.vcek_chain_pem)


def test_fake_pki_vcek_under_real_ark(fake: FakeAmd) -> None:
    """A perfectly consistent report from a self-made AMD PKI is refused under the pinned ARK."""
    tcb = {"bl": 3, "tee": 0, "snp": 8, "ucode": 115}
    chip = b"\x07" * 64
    vcek_der, key = fake.endorsement_key(tcb=tcb, hwid=chip)
    rep = build_report(key, reported_tcb=tcb_bytes("Milan", **tcb), chip_id=chip)
    assert snp.verify(rep, now=NOW, vcek_der=vcek_der, chain_pem=fake.vcek_chain_pem, ark_pem=fake.ark_pem)
    with pytest.raises(UntrustedRootError):
        snp.verify(rep, now=NOW, vcek_der=vcek_der, chain_pem=fake.vcek_chain_pem)
    with pytest.raises(UntrustedRootError):  # fake ASK alone: the link to the pinned ARK fails
        snp.verify(
            rep,
            now=NOW,
            vcek_der=vcek_der,
            chain_pem=fake.vcek_chain_pem.split(b"-----END")[0] + (b"-----END CERTIFICATE-----\n"),
        )


def test_expired_vlek(vlek_report: bytes, vlek: bytes, milan_chain: bytes) -> None:
    with pytest.raises(CertificateExpiredError):
        snp.verify(vlek_report, now=datetime(2026, 1, 1, tzinfo=UTC), vcek_der=vlek, chain_pem=milan_chain)


def test_not_yet_valid_vcek(report: bytes, vcek: bytes) -> None:
    with pytest.raises(CertificateNotYetValidError):
        snp.verify(report, now=datetime(2022, 6, 1, tzinfo=UTC), vcek_der=vcek)


def test_cache_respects_validity(report: bytes, vcek: bytes) -> None:
    cache = ChainCache()
    snp.verify(report, now=AT, vcek_der=vcek, cache=cache)
    snp.verify(report, now=AT, vcek_der=vcek, cache=cache)
    assert cache.hits == 1
    with pytest.raises(CertificateExpiredError):
        snp.verify(report, now=datetime(2031, 1, 1, tzinfo=UTC), vcek_der=vcek, cache=cache)


def test_missing_endorsement_key(report: bytes) -> None:
    with pytest.raises(CollateralError):
        snp.verify(report, now=AT)
    with pytest.raises(CollateralError):
        snp.verify(report, now=AT, aux=cert_table([(str(ASK_GUID), b"\x30\x00")]))


def test_vcek_and_table_disagree(report: bytes, vcek: bytes, vectors: Path) -> None:
    other = (vectors / "snp" / "virtee-sev" / "vcek_milan.der").read_bytes()
    with pytest.raises(CollateralError):
        snp.verify(report, now=AT, vcek_der=vcek, aux=cert_table([(str(VCEK_GUID), other)]))


def test_vlek_report_with_only_a_vcek_in_the_table(vlek_report: bytes, vcek: bytes) -> None:
    with pytest.raises(CollateralError):
        snp.verify(vlek_report, now=AT, aux=cert_table([(str(VCEK_GUID), vcek)]))


def test_product_mismatch(report: bytes, vcek: bytes) -> None:
    with pytest.raises(ChipMismatchError):
        snp.verify(report, now=AT, vcek_der=vcek, product="Genoa")
    with pytest.raises(ValueError, match="product"):
        snp.verify(report, now=AT, vcek_der=vcek, product="Venice")
    assert snp.verify(report, now=AT, vcek_der=vcek, product="milan")


def test_naive_time_is_misuse(report: bytes, vcek: bytes) -> None:
    with pytest.raises(ValueError, match="timezone"):
        snp.verify(report, now=datetime(2025, 6, 1), vcek_der=vcek)


def test_garbage_certificates(report: bytes) -> None:
    with pytest.raises(CertificateChainError):
        snp.verify(report, now=AT, vcek_der=b"\x30\x03\x02\x01\x00")
    with pytest.raises(CertificateChainError):
        snp.verify(report, now=AT, vcek_der=b"not a certificate")


# --- appraisal -----------------------------------------------------------------------------------------


def _ref(**kw: object) -> SevSnpReference:
    return SevSnpReference.from_mapping("r", kw)


def test_tcb_below_floor(report: bytes, vcek: bytes) -> None:
    claims = snp.verify(report, now=AT, vcek_der=vcek)
    m = claims.measurement.hex()
    assert appraise_claims(
        claims, [_ref(measurement=m, min_tcb={"snp": 8, "microcode": 115})], LENIENT, now=AT
    )
    for floor in ({"snp": 9}, {"microcode": 116}, {"bootloader": 4}, {"tee": 1}):
        with pytest.raises(TcbError):
            appraise_claims(claims, [_ref(measurement=m, min_tcb=floor)], LENIENT, now=AT)
    # fmc floors apply to Turin evidence only
    assert appraise_claims(claims, [_ref(measurement=m, min_tcb={"fmc": 3})], LENIENT, now=AT)


def test_debug_policy_bit_refused(vectors: Path) -> None:
    d = vectors / "snp" / "go-sev-guest"
    at = datetime(2022, 9, 24, 1, tzinfo=UTC)
    claims = snp.verify((d / "attestation.bin").read_bytes(), now=at, vcek_der=(d / "vcek.der").read_bytes())
    assert claims.debug
    ref = _ref(measurement=claims.measurement.hex())
    with pytest.raises(DebugEnclaveError):
        appraise_claims(claims, [ref], LENIENT, now=at)
    debug_ok = Requirements(allow_debug=True, max_evidence_age=None, accept_revocation_unknown=True)
    assert appraise_claims(claims, [ref], debug_ok, now=at) is ref


def test_report_data_mismatch(vectors: Path) -> None:
    d = vectors / "snp" / "go-sev-guest"
    at = datetime(2022, 9, 24, 1, tzinfo=UTC)
    claims = snp.verify((d / "attestation.bin").read_bytes(), now=at, vcek_der=(d / "vcek.der").read_bytes())
    ok = Requirements(allow_debug=True, max_evidence_age=None, accept_revocation_unknown=True)
    ref = _ref(measurement=claims.measurement.hex())
    expected = bytes.fromhex("0102030405") + bytes(59)  # SOURCE.md: set by the test harness
    assert appraise_claims(claims, [ref], ok, now=at, expected_report_data=expected) is ref
    with pytest.raises(ReportDataMismatchError):
        appraise_claims(
            claims, [ref], ok, now=at, expected_report_data=bytes.fromhex("0102030406") + bytes(59)
        )


def test_revocation_unknown_needs_explicit_acceptance(report: bytes, vcek: bytes) -> None:
    claims = snp.verify(report, now=AT, vcek_der=vcek)
    with pytest.raises(RevocationUnknownError):
        appraise_claims(claims, [_ref(measurement=claims.measurement.hex())], Requirements(), now=AT)


def test_reference_pins(report: bytes, vcek: bytes, vlek_report: bytes, vlek: bytes) -> None:
    claims = snp.verify(report, now=AT, vcek_der=vcek)
    m = claims.measurement.hex()
    idk = claims.details["id_key_digest"].hex()  # type: ignore[union-attr]
    assert appraise_claims(claims, [_ref(measurement=m, vmpl=0, id_key_digest=idk)], LENIENT, now=AT)
    for bad in (
        {"measurement": "ab" * 48},
        {"measurement": m, "vmpl": 1},
        {"measurement": m, "allow_smt": False},  # policy 0x3001f allows SMT
        {"measurement": m, "host_data": "01" * 32},
        {"measurement": m, "id_key_digest": "00" * 48},
    ):
        with pytest.raises(MeasurementNotAllowedError):
            appraise_claims(claims, [_ref(**bad)], LENIENT, now=AT)
    vclaims = snp.verify(vlek_report, now=AT, vcek_der=vlek)
    assert vclaims.details["vmpl"] == 1
    with pytest.raises(MeasurementNotAllowedError):
        appraise_claims(vclaims, [_ref(measurement=vclaims.measurement.hex(), vmpl=0)], LENIENT, now=AT)


# --- synthetic reports (throw-away AMD PKI) ------------------------------------------------------------


@pytest.fixture(scope="module")
def fake() -> FakeAmd:
    return make_amd("Milan")


@pytest.fixture(scope="module")
def fake_turin() -> FakeAmd:
    return make_amd("Turin")


@pytest.fixture(scope="module")
def fake_genoa() -> FakeAmd:
    return make_amd("Genoa")


TCB = {"bl": 7, "tee": 1, "snp": 22, "ucode": 213}
CHIP = bytes(range(64))


def _milan(fake: FakeAmd, **report_kw: object) -> tuple[bytes, bytes]:
    vcek_der, key = fake.endorsement_key(tcb=TCB, hwid=CHIP)
    kw: dict[str, object] = {"reported_tcb": tcb_bytes("Milan", **TCB), "chip_id": CHIP}
    kw.update(report_kw)
    return build_report(key, **kw), vcek_der  # type: ignore[arg-type]


def _verify(fake: FakeAmd, rep: bytes, key_der: bytes, *, vlek: bool = False, **kw: object) -> object:
    chain = fake.vlek_chain_pem if vlek else fake.vcek_chain_pem
    return snp.verify(rep, now=NOW, vcek_der=key_der, chain_pem=chain, ark_pem=fake.ark_pem, **kw)  # type: ignore[arg-type]


def test_synthetic_milan_v2_and_v3(fake: FakeAmd) -> None:
    for version in (2, 3):
        rep, vcek_der = _milan(fake, version=version)
        claims = _verify(fake, rep, vcek_der)
        assert claims.tcb == {"bootloader": 7, "tee": 1, "snp": 22, "microcode": 213}  # type: ignore[attr-defined]


def test_synthetic_genoa_v3(fake_genoa: FakeAmd) -> None:
    vcek_der, key = fake_genoa.endorsement_key(tcb=TCB, hwid=CHIP)
    rep = build_report(
        key, version=3, cpuid=(0x19, 0x11, 0x01), reported_tcb=tcb_bytes("Genoa", **TCB), chip_id=CHIP
    )
    claims = _verify(fake_genoa, rep, vcek_der)
    assert claims.details["product"] == "Genoa"  # type: ignore[attr-defined]


def test_synthetic_turin_v5(fake_turin: FakeAmd) -> None:
    tcb = {**TCB, "fmc": 2}
    hwid = b"\x5a" * 8
    vcek_der, key = fake_turin.endorsement_key(tcb=tcb, hwid=hwid)
    chip = hwid + bytes(56)
    rep = build_report(
        key,
        version=5,
        cpuid=(0x1A, 0x02, 0x01),
        reported_tcb=tcb_bytes("Turin", **tcb),
        chip_id=chip,
        mit=(3, 7),
    )
    claims = _verify(fake_turin, rep, vcek_der)
    assert claims.tcb == {"bootloader": 7, "tee": 1, "snp": 22, "microcode": 213, "fmc": 2}  # type: ignore[attr-defined]
    assert claims.details["launch_mit_vector"] == 3  # type: ignore[attr-defined]
    m = claims.measurement.hex()  # type: ignore[attr-defined]
    with pytest.raises(TcbError):
        appraise_claims(claims, [_ref(measurement=m, min_tcb={"fmc": 3})], LENIENT, now=NOW)  # type: ignore[arg-type]
    # FMC mismatch between report and certificate
    bad = build_report(
        key,
        version=5,
        cpuid=(0x1A, 0x02, 0x01),
        reported_tcb=tcb_bytes("Turin", **{**tcb, "fmc": 3}),
        chip_id=chip,
    )
    with pytest.raises(TcbError):
        _verify(fake_turin, bad, vcek_der)
    # Turin CHIP_ID: 8-byte id, then zeros
    tail = build_report(
        key,
        version=5,
        cpuid=(0x1A, 0x02, 0x01),
        reported_tcb=tcb_bytes("Turin", **tcb),
        chip_id=hwid + b"\x01" * 56,
    )
    with pytest.raises(ChipMismatchError):
        _verify(fake_turin, tail, vcek_der)


def test_synthetic_tcb_mismatch(fake: FakeAmd) -> None:
    rep, vcek_der = _milan(fake, reported_tcb=tcb_bytes("Milan", **{**TCB, "snp": 23}))
    with pytest.raises(TcbError):
        _verify(fake, rep, vcek_der)


def test_synthetic_tcb_reserved_bytes(fake: FakeAmd) -> None:
    raw = bytearray(tcb_bytes("Milan", **TCB))
    raw[3] = 1
    rep, vcek_der = _milan(fake, reported_tcb=bytes(raw))
    with pytest.raises(EvidenceFormatError):
        _verify(fake, rep, vcek_der)


def test_synthetic_chip_mismatch_and_mask(fake: FakeAmd) -> None:
    rep, vcek_der = _milan(fake, chip_id=b"\x01" * 64)
    with pytest.raises(ChipMismatchError):
        _verify(fake, rep, vcek_der)
    masked, vcek_der = _milan(fake, chip_id=bytes(64), mask_chip_key=True)
    assert _verify(fake, masked, vcek_der).details["mask_chip_key"]  # type: ignore[attr-defined]
    bad_mask, vcek_der = _milan(fake, mask_chip_key=True)  # masked but CHIP_ID present
    with pytest.raises(EvidenceFormatError):
        _verify(fake, bad_mask, vcek_der)
    unmasked_zero, vcek_der = _milan(fake, chip_id=bytes(64))
    with pytest.raises(ChipMismatchError):
        _verify(fake, unmasked_zero, vcek_der)


def test_synthetic_product_disagreement(fake: FakeAmd) -> None:
    rep, vcek_der = _milan(fake, version=3, cpuid=(0x19, 0x11, 0x01))  # Genoa CPUID, Milan VCEK
    with pytest.raises(ChipMismatchError):
        _verify(fake, rep, vcek_der)


def test_synthetic_vlek_and_confusion(fake: FakeAmd) -> None:
    vlek_der, vkey = fake.endorsement_key(kind="VLEK", tcb=TCB)
    vcek_der, ckey = fake.endorsement_key(tcb=TCB, hwid=CHIP)
    vlek_rep = build_report(vkey, signing_key=1, reported_tcb=tcb_bytes("Milan", **TCB))
    assert _verify(fake, vlek_rep, vlek_der, vlek=True).details["csp_id"] == "CN=test-csp.example"  # type: ignore[attr-defined]
    # A VLEK report presented with the VCEK chain only: no ASVK to chain to.
    with pytest.raises(CertificateChainError):
        _verify(fake, vlek_rep, vlek_der)
    # Same key, wrong declared kind.
    vcek_rep_signed_by_vlek = build_report(vkey, signing_key=0, reported_tcb=tcb_bytes("Milan", **TCB))
    with pytest.raises(CertificateChainError):
        _verify(fake, vcek_rep_signed_by_vlek, vlek_der, vlek=True)
    vlek_rep_signed_by_vcek = build_report(
        ckey, signing_key=1, reported_tcb=tcb_bytes("Milan", **TCB), chip_id=CHIP
    )
    with pytest.raises(CertificateChainError):
        _verify(fake, vlek_rep_signed_by_vcek, vcek_der)


def test_synthetic_unsigned_report(fake: FakeAmd) -> None:
    rep, vcek_der = _milan(fake, signing_key=7)
    with pytest.raises(SignatureInvalidError):
        _verify(fake, rep, vcek_der)


@pytest.mark.parametrize("selector", [2, 3, 6])
def test_synthetic_reserved_signing_key(fake: FakeAmd, selector: int) -> None:
    rep, vcek_der = _milan(fake, signing_key=selector)
    with pytest.raises(EvidenceFormatError):
        _verify(fake, rep, vcek_der)


def test_synthetic_policy_reserved_bits(fake: FakeAmd) -> None:
    for policy in (0x10000, 0x30000 | 1 << 26, 0x30000 | 1 << 63):  # bit 17 clear; MBZ bits set
        rep, vcek_der = _milan(fake, policy=policy)
        with pytest.raises(EvidenceFormatError):
            _verify(fake, rep, vcek_der)


def test_synthetic_mit_vectors_only_from_v4(fake: FakeAmd) -> None:
    rep, vcek_der = _milan(fake, version=3, corrupt={0x1F8: 1})
    with pytest.raises(EvidenceFormatError):
        _verify(fake, rep, vcek_der)
    rep4, vcek_der = _milan(fake, version=4, cpuid=(0x19, 0x01, 0x01), mit=(1, 1))
    assert _verify(fake, rep4, vcek_der).details["current_mit_vector"] == 1  # type: ignore[attr-defined]


def test_synthetic_expired_and_not_yet_valid_vcek(fake: FakeAmd) -> None:
    vcek_der, key = fake.endorsement_key(tcb=TCB, hwid=CHIP, not_after=NOW - timedelta(days=1))
    rep = build_report(key, reported_tcb=tcb_bytes("Milan", **TCB), chip_id=CHIP)
    with pytest.raises(CertificateExpiredError):
        _verify(fake, rep, vcek_der)
    vcek_der, key = fake.endorsement_key(
        tcb=TCB, hwid=CHIP, not_before=NOW + timedelta(days=1), not_after=NOT_AFTER
    )
    rep = build_report(key, reported_tcb=tcb_bytes("Milan", **TCB), chip_id=CHIP)
    with pytest.raises(CertificateNotYetValidError):
        _verify(fake, rep, vcek_der)


def test_synthetic_vcek_signed_by_wrong_key(fake: FakeAmd) -> None:
    vcek_der, key = fake.endorsement_key(tcb=TCB, hwid=CHIP, issuer_key=fake.asvk_key)
    rep = build_report(key, reported_tcb=tcb_bytes("Milan", **TCB), chip_id=CHIP)
    with pytest.raises(CertificateChainError):
        _verify(fake, rep, vcek_der)


def test_synthetic_unknown_critical_extension(fake: FakeAmd) -> None:
    ext = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.4.5"), b"\x05\x00")
    vcek_der, key = fake.endorsement_key(tcb=TCB, hwid=CHIP, extra=[ext])
    rep = build_report(key, reported_tcb=tcb_bytes("Milan", **TCB), chip_id=CHIP)
    with pytest.raises(CertificateChainError):
        _verify(fake, rep, vcek_der)


def test_synthetic_wrapped_hwid(fake: FakeAmd) -> None:
    vcek_der, key = fake.endorsement_key(tcb=TCB, hwid=b"\x04\x40" + CHIP)  # OCTET STRING-wrapped form
    rep = build_report(key, reported_tcb=tcb_bytes("Milan", **TCB), chip_id=CHIP)
    assert _verify(fake, rep, vcek_der)
    vcek_der, key = fake.endorsement_key(tcb=TCB, hwid=CHIP[:63])
    rep = build_report(key, reported_tcb=tcb_bytes("Milan", **TCB), chip_id=CHIP)
    with pytest.raises(CertificateChainError):
        _verify(fake, rep, vcek_der)


def test_synthetic_aux_table(fake: FakeAmd) -> None:
    rep, vcek_der = _milan(fake)
    aux = cert_table(
        [
            ("11111111-2222-3333-4444-555555555555", b"unknown entries are ignored"),
            (str(VCEK_GUID), vcek_der),
            (str(ASK_GUID), der(fake.ask)),
            (str(ARK_GUID), der(fake.ark)),
        ]
    )
    assert snp.verify(rep, now=NOW, aux=aux, ark_pem=fake.ark_pem)


# --- certificate table parser --------------------------------------------------------------------------


def test_cert_table_round_trip() -> None:
    aux = cert_table([(str(VCEK_GUID), b"vcek"), (str(VLEK_GUID), b"vlek!")])
    table = parse_cert_table(aux)
    assert table.get(VCEK_GUID) == b"vcek"
    assert table.get(VLEK_GUID) == b"vlek!"
    assert table.get(ARK_GUID) is None


def _entry(guid: uuid.UUID | None, offset: int, length: int) -> bytes:
    return (guid.bytes if guid else bytes(16)) + offset.to_bytes(4, "little") + length.to_bytes(4, "little")


@pytest.mark.parametrize(
    "aux",
    [
        _entry(VCEK_GUID, 48, 4),  # not terminated
        _entry(VCEK_GUID, 0, 4) + bytes(24) + b"abcd",  # offset into the header
        _entry(VCEK_GUID, 48, 5) + bytes(24) + b"abcd",  # past the end
        _entry(VCEK_GUID, 48, 0) + bytes(24) + b"abcd",  # empty certificate
        _entry(VCEK_GUID, 72, 2) + _entry(VCEK_GUID, 74, 2) + bytes(24) + b"abcd",  # duplicate GUID
        _entry(None, 48, 4) + bytes(24) + b"abcd",  # zero GUID that is not the terminator
        _entry(VCEK_GUID, 0xFFFFFFF0, 0xFFFF) + bytes(24),
        b"\x00" * 23,
        b"\x01" * 300_000,
    ],
)
def test_cert_table_malformed(aux: bytes) -> None:
    with pytest.raises(EvidenceFormatError):
        parse_cert_table(aux)


def test_cert_table_too_many_entries() -> None:
    entries = [(str(uuid.UUID(int=i + 1)), b"x") for i in range(33)]
    with pytest.raises(EvidenceFormatError):
        parse_cert_table(cert_table(entries))


# --- AMD CRL (optional input) --------------------------------------------------------------------------


def _crl(
    fake: FakeAmd,
    *,
    revoked: list[int] = (),  # type: ignore[assignment]
    this_update: datetime = NOW - timedelta(days=1),
    next_update: datetime | None = NOW + timedelta(days=7),
    signer: object = None,
    issuer: x509.Name | None = None,
    critical_ext: bool = False,
) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    b = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer or fake.ark.subject)
        .last_update(this_update)
    )
    if next_update is not None:
        b = b.next_update(next_update)
    for serial in revoked:
        b = b.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(this_update).build()
        )
    if critical_ext:
        b = b.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.4"), b"\x05\x00"), critical=True
        )
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)
    crl = b.sign(signer or fake.ark_key, hashes.SHA384(), rsa_padding=pss)  # type: ignore[arg-type]
    from cryptography.hazmat.primitives.serialization import Encoding

    return crl.public_bytes(Encoding.DER)


def test_crl_checked(fake: FakeAmd) -> None:
    from enclavia.attestation.claims import Revocation

    rep, vcek_der = _milan(fake)
    claims = _verify(fake, rep, vcek_der, crl_der=_crl(fake, revoked=[12345]))
    assert claims.revocation is Revocation.CHECKED  # type: ignore[attr-defined]
    strict = Requirements(max_evidence_age=None)  # accept_revocation_unknown stays false
    ref = _ref(measurement=claims.measurement.hex())  # type: ignore[attr-defined]
    assert appraise_claims(claims, [ref], strict, now=NOW) is ref  # type: ignore[arg-type]


def test_crl_revoked_ask_and_asvk(fake: FakeAmd) -> None:
    rep, vcek_der = _milan(fake)
    with pytest.raises(CertificateRevokedError):
        _verify(fake, rep, vcek_der, crl_der=_crl(fake, revoked=[fake.ask.serial_number]))
    vlek_der, vkey = fake.endorsement_key(kind="VLEK", tcb=TCB)
    vrep = build_report(vkey, signing_key=1, reported_tcb=tcb_bytes("Milan", **TCB))
    with pytest.raises(CertificateRevokedError):
        _verify(fake, vrep, vlek_der, vlek=True, crl_der=_crl(fake, revoked=[fake.asvk.serial_number]))


@pytest.mark.parametrize(
    "kind", ["stale", "future", "other_signer", "other_issuer", "critical_ext", "garbage"]
)
def test_crl_refused(fake: FakeAmd, kind: str) -> None:
    rep, vcek_der = _milan(fake)
    crl = {
        "stale": lambda: _crl(fake, this_update=NOW - timedelta(days=9), next_update=NOW - timedelta(days=2)),
        "future": lambda: _crl(fake, this_update=NOW + timedelta(days=1)),
        "other_signer": lambda: _crl(fake, signer=fake.ask_key),
        "other_issuer": lambda: _crl(fake, signer=fake.ask_key, issuer=fake.ask.subject),
        "critical_ext": lambda: _crl(fake, critical_ext=True),
        "garbage": lambda: b"\x30\x03\x02\x01\x01",
    }[kind]()
    with pytest.raises(CollateralError):
        _verify(fake, rep, vcek_der, crl_der=crl)
