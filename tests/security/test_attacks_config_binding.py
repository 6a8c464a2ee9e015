"""The host launches the measured image with a configuration of its choosing (issue 13, point 5): on SEV-SNP
and TDX the launch-time config slot (host_data, MRCONFIGID) must carry the manifest the enclave presents.

A reference entry with ``bind_manifest: true`` compares the slot with SHA-256 (SNP) / SHA-384 (TDX) of the
canonical manifest bytes; production refuses entries that bind no config unless ``unsafe_weak_pins``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from enclavia.attestation.platforms.sevsnp import verify as snp
from enclavia.attestation.platforms.tdx.abi import HEADER_LEN, parse_quote
from enclavia.attestation.platforms.tdx.verify import TcbStatus, claims_from_quote
from enclavia.enclave.image import build_manifest
from enclavia.errors import ManifestMismatchError, PlatformBindingError, PolicyLoadError
from enclavia.policy.document import appraise, parse_policy
from tests.attestation_factory import NOW, FakeAmd, build_report, make_amd, tcb_bytes

MANIFEST = build_manifest({}, {"tee": "sev-snp", "suite": "x25519-sha256-aes256gcm"})
OTHER = build_manifest({}, {"tee": "sev-snp", "suite": "x25519-sha256-aes256gcm", "egress": ["x"]})
SNP_M = "33" * 48
TCB = {"bl": 7, "tee": 1, "snp": 22, "ucode": 213}
CHIP = bytes(range(64))
MRTD = "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7"
MRCONFIGID_AT = HEADER_LEN + 16 + 48 + 48 + 8 + 8 + 8 + 48  # TD report body: ... MRTD, then MRCONFIGID
RTMRS = ", ".join(f"rtmr{i}: '{'11' * 48}'" for i in range(3))
SNP_FLOOR = "min_tcb: {bootloader: 7, tee: 1, snp: 22, microcode: 213}, vmpl: 0"


def _policy(tee: str, entry: str, profile: str = "production") -> str:
    return (
        f"policy_id: p\nrevision: 1\nprofile: {profile}\n"
        "requirements: {max_evidence_age_s: null, accept_revocation_unknown: true}\n"
        f"reference_values:\n  {tee}: [{{name: r, {entry}}}]\n"
    )


def _flip(data: bytes, offset: int) -> bytes:
    b = bytearray(data)
    b[offset] ^= 1
    return bytes(b)


@pytest.fixture(scope="module")
def amd() -> FakeAmd:
    return make_amd("Milan")


def _snp_claims(amd: FakeAmd, host_data: bytes):  # type: ignore[no-untyped-def]
    vcek, key = amd.endorsement_key(tcb=TCB, hwid=CHIP)
    rep = build_report(
        key,
        measurement=bytes.fromhex(SNP_M),
        host_data=host_data,
        reported_tcb=tcb_bytes("Milan", **TCB),
        chip_id=CHIP,
    )
    return snp.verify(rep, now=NOW, vcek_der=vcek, chain_pem=amd.vcek_chain_pem, ark_pem=amd.ark_pem)


def _tdx_claims(vectors: Path, mrconfigid: bytes):  # type: ignore[no-untyped-def]
    raw = bytearray((vectors / "tdx" / "dcap-qvl" / "tdx_quote").read_bytes())
    raw[MRCONFIGID_AT : MRCONFIGID_AT + 48] = mrconfigid
    quote = parse_quote(bytes(raw))  # the signature is the verifier's; appraisal reads the parsed fields
    assert quote.report.mr_config_id == mrconfigid
    return claims_from_quote(quote, tcb_status=TcbStatus.UP_TO_DATE)


SNP_BOUND = _policy("sev-snp", f"measurement: '{SNP_M}', {SNP_FLOOR}, bind_manifest: true")
TDX_BOUND = _policy("tdx", f"mrtd: '{MRTD}', bind_manifest: true")


def test_snp_host_data_carrying_the_manifest_is_accepted(amd: FakeAmd) -> None:
    host_data = hashlib.sha256(MANIFEST.canonical()).digest()
    result = appraise(_snp_claims(amd, host_data), parse_policy(SNP_BOUND), now=NOW, manifest=MANIFEST)
    assert result.affirming and result.reasons == ()


def test_snp_host_data_one_bit_off_is_refused(amd: FakeAmd) -> None:
    host_data = _flip(hashlib.sha256(MANIFEST.canonical()).digest(), 31)
    with pytest.raises(PlatformBindingError):
        appraise(_snp_claims(amd, host_data), parse_policy(SNP_BOUND), now=NOW, manifest=MANIFEST)


def test_snp_another_manifest_or_none_is_refused(amd: FakeAmd) -> None:
    claims = _snp_claims(amd, hashlib.sha256(MANIFEST.canonical()).digest())
    policy = parse_policy(SNP_BOUND)
    with pytest.raises(PlatformBindingError):
        appraise(claims, policy, now=NOW, manifest=OTHER)
    with pytest.raises(PlatformBindingError):  # a caller that has no manifest cannot pass a binding entry
        appraise(claims, policy, now=NOW)
    assert issubclass(PlatformBindingError, ManifestMismatchError)
    assert PlatformBindingError().code == "attestation.manifest_not_bound"


def test_tdx_mrconfigid_carrying_the_manifest_is_accepted(vectors: Path) -> None:
    claims = _tdx_claims(vectors, MANIFEST.digest())  # SHA-384 of the canonical manifest bytes
    assert MANIFEST.digest() == hashlib.sha384(MANIFEST.canonical()).digest()
    policy = parse_policy(TDX_BOUND.replace("profile: production", "profile: dev"))
    assert appraise(claims, policy, now=NOW, manifest=MANIFEST).affirming


def test_tdx_mrconfigid_one_bit_off_is_refused(vectors: Path) -> None:
    claims = _tdx_claims(vectors, _flip(MANIFEST.digest(), 0))
    policy = parse_policy(TDX_BOUND.replace("profile: production", "profile: dev"))
    with pytest.raises(PlatformBindingError):
        appraise(claims, policy, now=NOW, manifest=MANIFEST)


@pytest.mark.parametrize(
    ("tee", "entry", "gap"),
    [
        ("sev-snp", f"measurement: '{SNP_M}', {SNP_FLOOR}", "snp_config_unbound"),
        ("sev-snp", f"measurement: '{SNP_M}', {SNP_FLOOR}, bind_manifest: false", "snp_config_unbound"),
        ("sev-snp", f"measurement: '{SNP_M}', {SNP_FLOOR}, host_data: '{'00' * 32}'", "snp_config_unbound"),
        ("tdx", f"mrtd: '{MRTD}', {RTMRS}", "tdx_config_unbound"),
        ("tdx", f"mrtd: '{MRTD}', bind_manifest: true", "tdx_mrtd_only"),  # binding is not the kernel
    ],
)
def test_production_refuses_entries_without_a_config_binding(tee: str, entry: str, gap: str) -> None:
    with pytest.raises(PolicyLoadError, match=gap):
        parse_policy(_policy(tee, entry))
    assert parse_policy(_policy(tee, entry, profile="dev")).unsafe == {}  # dev: allowed, nothing to show


@pytest.mark.parametrize(
    ("tee", "entry"),
    [
        ("sev-snp", f"measurement: '{SNP_M}', {SNP_FLOOR}, bind_manifest: true"),
        ("sev-snp", f"measurement: '{SNP_M}', {SNP_FLOOR}, host_data: '{'ab' * 32}'"),  # init-data
        ("tdx", f"mrtd: '{MRTD}', {RTMRS}, bind_manifest: true"),
        ("tdx", f"mrtd: '{MRTD}', mrconfigid: '{'ab' * 48}'"),
    ],
)
def test_production_accepts_a_bound_config(tee: str, entry: str) -> None:
    assert parse_policy(_policy(tee, entry)).unsafe == {}


def test_unsafe_flag_accepts_an_unbound_entry_and_every_result_shows_it(amd: FakeAmd) -> None:
    entry = f"measurement: '{SNP_M}', {SNP_FLOOR}, unsafe_weak_pins: true"
    policy = parse_policy(_policy("sev-snp", entry))
    assert policy.unsafe == {"r": ("snp_config_unbound",)}
    result = appraise(_snp_claims(amd, b"\x77" * 32), policy, now=NOW)
    assert result.affirming
    assert result.to_json()["reasons"] == ["unsafe_weak_pins:snp_config_unbound"]


def test_bind_manifest_must_be_a_boolean() -> None:
    for tee, entry in (("sev-snp", f"measurement: '{SNP_M}'"), ("tdx", f"mrtd: '{MRTD}'")):
        with pytest.raises(PolicyLoadError):
            parse_policy(_policy(tee, f"{entry}, bind_manifest: 'yes'", profile="dev"))


def test_the_bundle_path_passes_the_presented_manifest(amd: FakeAmd, monkeypatch: pytest.MonkeyPatch) -> None:
    """verify_presented_bundle (client and broker) hands the bundle's own manifest to appraisal."""
    import enclavia.policy.bundle as pb
    from enclavia.tee.base import Evidence
    from tests.unit.test_enclave_attester_wiring import _enclave

    claims = _snp_claims(amd, hashlib.sha256(MANIFEST.canonical()).digest())
    seen: dict[str, object] = {}

    def spy(*_: object, **kw: object) -> None:
        seen.update(kw)
        raise PlatformBindingError()

    monkeypatch.setattr(pb, "_evidence_claims", lambda *_: claims)
    monkeypatch.setattr(pb, "appraise", spy)

    class _Attester:
        tee = claims.tee

        def attest(self, report_data: bytes) -> Evidence:
            return Evidence(tee=claims.tee, evidence=b"unused: claims are patched in")

    bundle = _enclave(_Attester()).attestation_bundle(bytes(range(32)))
    with pytest.raises(PlatformBindingError):
        pb.verify_presented_bundle(bundle, policy=parse_policy(SNP_BOUND), now=NOW)
    assert seen["manifest"] is bundle.manifest
