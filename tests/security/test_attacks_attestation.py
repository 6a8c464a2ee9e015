"""Attacks on attestation as a client (or the broker) sees it: replay, key substitution, relay of genuine
vendor evidence with the attacker's key, TEE confusion, parser differentials, clock skew, psychic signatures.

Every test names its source in its docstring and asserts the one error class the attack must produce.
docs/reliability.md lists these beside the earlier negatives in tests/security/test_*_negative.py.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from enclavia.attestation.bundle import AttestationBundle, parse_bundle
from enclavia.attestation.claims import Tee
from enclavia.attestation.platforms.nitro import verify as nitro
from enclavia.attestation.platforms.nvidia import verify as nvidia
from enclavia.attestation.platforms.sevsnp import verify as snp
from enclavia.client.verify import verify_bundle
from enclavia.crypto.ohttp import GatewayKey
from enclavia.crypto.signing import SigningKey
from enclavia.errors import (
    EvidenceFormatError,
    EvidenceTooOldError,
    ManifestMismatchError,
    NonceMismatchError,
    ReportDataMismatchError,
    SignatureInvalidError,
)
from enclavia.policy.document import parse_policy
from tests.security.attack_support import T0, SimWorld, manifest, rewrite, sim_bundle_for
from tests.tee_vectors import read_evidence

NONCE = b"\x5a" * 32


@pytest.fixture(scope="module")
def world() -> SimWorld:
    return SimWorld()


def _verify(world: SimWorld, data: bytes, *, nonce: bytes = NONCE, now: datetime = T0, **kw: Any) -> Any:
    return verify_bundle(data, expected_nonce=nonce, policy=kw.pop("policy", world.policy()), now=now, **kw)


def _attacker() -> tuple[bytes, bytes]:
    return GatewayKey.generate(3).config.encode(), SigningKey.generate().public_bytes


# --- replay and binding ---------------------------------------------------------------------------


def test_old_bundle_with_its_nonce_rewritten_to_the_fresh_one(world: SimWorld) -> None:
    """Evidence replay with the nonce field edited to match the new challenge.

    Source: RFC 9334 section 10.2 (implicit timekeeping using nonces); microsoft/TEE-Attestation-Verification
    issue 35 (stale attestation blobs replayed by an impostor backend). The nonce is only fresh if the
    evidence signs it: here it is bound through report_data, so the edit breaks the binding.
    """
    old = world.make_enclave().attestation_bundle(b"\x01" * 32)
    fresh = b"\x02" * 32
    with pytest.raises(ReportDataMismatchError):
        _verify(world, rewrite(old, nonce=fresh.hex()), nonce=fresh)


def test_genuine_evidence_relayed_with_the_attackers_keys(world: SimWorld) -> None:
    """Relay: the host asks the genuine enclave for evidence on the client's nonce, then swaps in its own
    HPKE key configuration (to read requests) and its own receipt-signing key (to forge receipts).

    Source: 13rac1/teep issue 150 (an E2EE key that the TDX REPORTDATA did not bind, substituted by
    whoever composed the attestation JSON); Fraunhofer-AISEC/cmc pull request 406 (channel binding).
    """
    genuine = world.make_enclave().attestation_bundle(NONCE)
    key_config, signing_key = _attacker()
    for swapped in (
        {"key_config": base64.b64encode(key_config).decode()},
        {"signing_public_key": base64.b64encode(signing_key).decode()},
        {
            "key_config": base64.b64encode(key_config).decode(),
            "signing_public_key": base64.b64encode(signing_key).decode(),
        },
    ):
        with pytest.raises(ReportDataMismatchError):
            _verify(world, rewrite(genuine, **swapped))


def test_manifest_swapped_under_genuine_evidence(world: SimWorld) -> None:
    """The host presents the manifest of an approved build beside evidence from another build.

    Source: RFC 9334 section 12.2 (conceptual message protection: what is appraised must be what was
    signed). For the simulated TEE the measurement is the manifest digest itself.
    """
    other = world.make_enclave(m=manifest("unapproved")).attestation_bundle(NONCE)
    with pytest.raises(ManifestMismatchError):
        _verify(world, rewrite(other, manifest=manifest().to_json()))


def test_duplicate_json_keys_cannot_smuggle_a_second_key_config(world: SimWorld) -> None:
    """Parser differential: the bundle carries "key_config" twice, the genuine one first, the attacker's
    last, hoping one parser checks the first and another uses the last.

    Source: RFC 8259 section 4 (object names SHOULD be unique; behaviour otherwise unpredictable); Bishop
    Fox, "An Exploration of JSON Interoperability Vulnerabilities" (2021). Whichever copy a parser keeps,
    the one that is used is the one that is checked.
    """
    genuine = world.make_enclave().attestation_bundle(NONCE)
    attacker_config, _ = _attacker()
    text = genuine.encode().decode()
    dup = text[:-1] + f',"key_config":"{base64.b64encode(attacker_config).decode()}"}}'
    assert parse_bundle(dup.encode()).key_config == attacker_config  # Python keeps the last
    with pytest.raises(ReportDataMismatchError):
        _verify(world, dup.encode())


def test_nan_in_the_manifest_is_a_format_error(world: SimWorld) -> None:
    """JSON that is not JSON: NaN and Infinity in the manifest's free-form config.

    Source: RFC 8259 section 6 (NaN and Infinity are not permitted); found by tests/fuzz (the manifest
    digest raised ValueError out of the client's verifier). Fixed in enclavia.attestation.manifest.
    """
    genuine = world.make_enclave().attestation_bundle(NONCE)
    for bad in ("NaN", "Infinity", "-Infinity"):
        data = genuine.encode().replace(b'"config":{', b'"config":{"x":' + bad.encode() + b",", 1)
        with pytest.raises(EvidenceFormatError):
            _verify(world, data)


@pytest.mark.parametrize("claimed", [Tee.SEV_SNP, Tee.TDX, Tee.NITRO, Tee.NVIDIA])
def test_simulated_evidence_labelled_as_a_hardware_tee(world: SimWorld, claimed: Tee) -> None:
    """TEE type confusion: software-signed evidence relabelled as hardware evidence, under a production
    policy that pins real platforms.

    Source: CWE-843 (access of resource using incompatible type); confidential-containers/guest-components
    pull request 426 (sample evidence must never pass a real verifier). Each hardware parser refuses it.
    """
    genuine = world.make_enclave().attestation_bundle(NONCE)
    prod = parse_policy(
        "policy_id: p\nrevision: 1\nreference_values:\n"
        f"  nitro: [{{unsafe_weak_pins: true, name: n, pcrs: {{0: '{'ab' * 48}'}}}}]\n"
        f"  sev-snp: [{{unsafe_weak_pins: true, name: s, measurement: '{'ab' * 48}'}}]\n"
        f"  tdx: [{{unsafe_weak_pins: true, name: t, mrtd: '{'ab' * 48}'}}]\n"
    )
    collateral = base64.b64encode(b"{}").decode() if claimed is Tee.TDX else None
    certificates = [base64.b64encode(b"\x30\x00").decode()] if claimed is Tee.NVIDIA else []
    data = rewrite(genuine, tee=str(claimed), collateral=collateral, certificates=certificates)
    with pytest.raises(EvidenceFormatError):
        _verify(world, data, policy=prod)


def test_short_nonce_is_refused_before_any_evidence_is_made(world: SimWorld) -> None:
    """A predictable or tiny nonce lets evidence be precomputed and replayed.

    Source: RFC 9334 section 10.2 (nonces must be unpredictable). Bundles and the enclave's ATTEST frame
    accept 16 to 64 bytes only.
    """
    from enclavia.attestation.bundle import parse_nonce_hex

    for nonce in ("", "00", "00" * 15, "00" * 65, "zz" * 16):
        with pytest.raises(EvidenceFormatError):
            parse_nonce_hex(nonce)
    genuine = world.make_enclave().attestation_bundle(NONCE)
    with pytest.raises(EvidenceFormatError):
        _verify(world, rewrite(genuine, nonce="00" * 8))


# --- real vendor evidence relayed with the attacker's key ----------------------------------------


def _hw_bundle(tee: Tee, evidence: bytes, **kw: Any) -> bytes:
    key_config, signing_key = _attacker()
    return AttestationBundle(
        tee=tee,
        evidence=evidence,
        certificates=kw.get("certificates", ()),
        aux=None,
        collateral=kw.get("collateral"),
        key_config=key_config,
        signing_public_key=signing_key,
        manifest=manifest(),
        nonce=NONCE,
    ).encode()


def test_real_snp_report_relayed_with_the_attackers_key(vectors: Path) -> None:
    """A genuine AMD SEV-SNP report (trustee test vector, verified to the pinned Milan ARK at the time its
    SOURCE.md gives) presented with the attacker's key configuration and the client's fresh nonce.

    Source: 13rac1/teep issue 150; RFC 9334 section 10.2. The policy allows the report's measurement, so
    the only thing wrong is the binding.
    """
    d = vectors / "snp" / "trustee"
    report, vcek = (d / "test-report.bin").read_bytes(), (d / "test-vcek.der").read_bytes()
    at = datetime(2025, 6, 1, tzinfo=UTC)
    measurement = snp.verify(report, now=at, vcek_der=vcek).measurement.hex()
    policy = parse_policy(
        "policy_id: p\nrevision: 1\nrequirements: {accept_revocation_unknown: true}\n"
        f"reference_values:\n  sev-snp: [{{unsafe_weak_pins: true, name: s, measurement: '{measurement}'}}]\n"
    )
    data = _hw_bundle(Tee.SEV_SNP, report, certificates=(vcek,))
    with pytest.raises(ReportDataMismatchError):
        verify_bundle(data, expected_nonce=NONCE, policy=policy, now=at)


def test_real_tdx_quote_relayed_with_the_attackers_key(vectors: Path) -> None:
    """A genuine Intel TDX quote with its DCAP collateral (dcap-qvl vector, time from its SOURCE.md),
    relayed with the attacker's key configuration.

    Source: 13rac1/teep issue 150 (the same relay against a TDX-attested inference provider).
    """
    d = vectors / "tdx" / "dcap-qvl"
    quote = (d / "tdx_quote").read_bytes()
    collateral = (d / "tdx_quote_collateral.json").read_bytes()
    mrtd = "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7"
    policy = parse_policy(
        f"policy_id: p\nrevision: 1\nreference_values:\n  tdx: [{{"
        f"unsafe_weak_pins: true, name: t, mrtd: '{mrtd}'}}]\n"
    )
    data = _hw_bundle(Tee.TDX, quote, collateral=collateral)
    with pytest.raises(ReportDataMismatchError):
        verify_bundle(data, expected_nonce=NONCE, policy=policy, now=datetime(2025, 6, 20, tzinfo=UTC))


def test_nitro_document_for_another_nonce(vectors: Path) -> None:
    """A genuine AWS Nitro document (cape-js vector) relayed to a client that sent another nonce: Nitro
    signs the nonce itself, so the relay fails before report_data is even looked at.

    Source: RFC 9334 section 10.2; AWS Nitro Enclaves attestation document (nonce field).
    """
    doc = (vectors / "nitro" / "cape-js" / "spec_attestationDocument.cbor").read_bytes()
    policy = parse_policy(
        f"policy_id: p\nrevision: 1\nreference_values:\n  nitro: [{{"
        f"unsafe_weak_pins: true, name: n, pcrs: {{0: '{'ab' * 48}'}}}}]\n"
    )
    with pytest.raises(NonceMismatchError):
        verify_bundle(
            _hw_bundle(Tee.NITRO, doc),
            expected_nonce=NONCE,
            policy=policy,
            now=datetime(2022, 9, 15, 17, 44, 24, tzinfo=UTC),
        )


# --- psychic signatures (r = s = 0) ---------------------------------------------------------------


def test_nitro_psychic_signature(vectors: Path) -> None:
    """ECDSA with r = s = 0 over a genuine Nitro payload.

    Source: CVE-2022-21449 (Java's ECDSA accepted r = s = 0 for any message). The COSE signature is the
    last 96 bytes (ES384, r || s) of the document.
    """
    doc = (vectors / "nitro" / "cape-js" / "spec_attestationDocument.cbor").read_bytes()
    forged = doc[:-96] + bytes(96)
    with pytest.raises(SignatureInvalidError):
        nitro.verify(forged, now=datetime(2022, 9, 15, 17, 44, 24, tzinfo=UTC))


def test_nvidia_psychic_signature(vectors: Path) -> None:
    """ECDSA P-384 with r = s = 0 over a genuine NVIDIA Hopper SPDM measurement response.

    Source: CVE-2022-21449. The SPDM signature is the last 96 bytes of the report.
    """
    d = vectors / "nvidia" / "nvtrust"
    report = read_evidence(d / "hopperAttestationReport.txt")
    chain = (d / "hopperCertChain.pem").read_bytes()
    at = datetime(2025, 1, 1, tzinfo=UTC)  # SOURCE.md: any time after 2022-03-01 (certs never expire)
    assert nvidia.verify(report, cert_chain_pem=chain, nonce=None, now=at)
    forged = report[:-96] + bytes(96)
    with pytest.raises(SignatureInvalidError):
        nvidia.verify(forged, cert_chain_pem=chain, nonce=None, now=at)


# --- clock skew -----------------------------------------------------------------------------------


def test_client_clock_skew_beyond_tolerance_is_refused_both_ways(world: SimWorld) -> None:
    """The client's clock is 10 minutes behind or 10 minutes ahead of the enclave's; 30 seconds is fine.

    Source: RFC 9334 section 10.1 (explicit timekeeping needs synchronised clocks); the appraisal allows
    max_evidence_age (300 s) of age and 60 s of "future".
    """
    enclave = world.make_enclave()
    for skew in (timedelta(seconds=-30), timedelta(seconds=30)):
        nonce = bytes([len(str(skew))]) * 32
        assert _verify(world, enclave.attestation_bundle(nonce).encode(), nonce=nonce, now=T0 + skew)
    for skew in (timedelta(minutes=-10), timedelta(minutes=10)):
        nonce = bytes([0x70 + skew.days % 7]) * 32
        with pytest.raises(EvidenceTooOldError):
            _verify(world, enclave.attestation_bundle(nonce).encode(), nonce=nonce, now=T0 + skew)


def test_enclave_clock_skew_is_refused_by_the_broker_side_checks() -> None:
    """The enclave's platform clock runs 10 minutes fast (evidence "from the future") or slow (stale
    evidence minted now); the verifier on the broker's side refuses both.

    Source: RFC 9334 section 10.1; same checks as the client (enclavia.broker.verify).
    """
    from enclavia.broker.verify import verify_presented_bundle

    for offset in (600.0, -600.0):
        world = SimWorld(clock=lambda o=offset: T0.timestamp() + o)  # type: ignore[misc]
        bundle = world.make_enclave().attestation_bundle(NONCE)
        with pytest.raises(EvidenceTooOldError):
            verify_presented_bundle(bundle, policy=world.policy(), now=T0)


def test_evidence_timestamp_far_in_the_future_is_not_a_free_pass() -> None:
    """Evidence stamped years ahead (a platform clock set forward to mint long-lived evidence).

    Source: RFC 9334 section 10.1 (a verifier must bound the age of evidence in both directions).
    """
    world = SimWorld(clock=lambda: T0.timestamp() + 86400 * 365 * 5)
    genuine = world.make_enclave().attestation_bundle(NONCE)
    with pytest.raises(EvidenceTooOldError):
        _verify(world, genuine.encode())


def test_bundle_answered_for_another_clients_nonce(world: SimWorld) -> None:
    """A genuine, unmodified bundle that answered someone else's challenge (another client, or the
    broker's), served to this client.

    Source: RFC 9334 section 10.2. Not a replay of our own nonce (that is ReplayedNonceError, see
    tests/integration/test_rejections.py): a nonce we never sent.
    """
    key_config, signing_key = _attacker()
    bundle = sim_bundle_for(world, b"\x03" * 32, key_config, signing_key)
    with pytest.raises(NonceMismatchError):
        _verify(world, bundle.encode())
