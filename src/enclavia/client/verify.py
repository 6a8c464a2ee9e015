"""Verify an attestation bundle before anything is sent. A checklist; each step its own error."""

from __future__ import annotations

import hmac
from collections.abc import Container
from dataclasses import dataclass
from datetime import datetime

from enclavia.attestation.binding import compute_report_data
from enclavia.attestation.bundle import AttestationBundle, parse_bundle
from enclavia.attestation.claims import AttestationResult, Claims, Tee
from enclavia.attestation.platforms.simulated.verify import verify as verify_simulated
from enclavia.crypto.hpke import DEFAULT_SUITE, Suite
from enclavia.crypto.ohttp import KeyConfig
from enclavia.errors import (
    DevProfileRequiredError,
    ManifestMismatchError,
    NonceMismatchError,
    ReplayedNonceError,
    UnsupportedSuiteError,
)
from enclavia.policy.document import Policy, Profile, appraise


@dataclass(frozen=True)
class VerifiedEnclave:
    bundle: AttestationBundle
    key_config: KeyConfig
    result: AttestationResult

    @property
    def measurement(self) -> str:
        return self.result.measurement


def _evidence_claims(bundle: AttestationBundle, policy: Policy, now: datetime) -> Claims:
    if bundle.tee is Tee.SIMULATED:
        return verify_simulated(
            bundle.evidence, trusted_platform_keys=policy.simulated_platform_keys, nonce=bundle.nonce
        )
    from enclavia.attestation.verifier import verify_evidence  # real-TEE verifiers

    return verify_evidence(
        bundle.tee,
        bundle.evidence,
        now=now,
        certificates=bundle.certificates,
        collateral=bundle.collateral,
        aux=bundle.aux,
        # Nitro and NVIDIA sign the nonce in a field of their own; SNP and TDX bind it via report_data only.
        nonce=bundle.nonce if bundle.tee in (Tee.NITRO, Tee.NVIDIA) else None,
    )


def verify_bundle(
    data: bytes,
    *,
    expected_nonce: bytes,
    policy: Policy,
    now: datetime,
    used_nonces: Container[bytes] = (),
    suite: Suite = DEFAULT_SUITE,
) -> VerifiedEnclave:
    # 1. Parse untrusted bytes into typed objects.
    bundle = parse_bundle(data)
    # 2. Freshness: the bundle answers the nonce we just sent, not an earlier one.
    if not hmac.compare_digest(bundle.nonce, expected_nonce):
        raise ReplayedNonceError() if bundle.nonce in used_nonces else NonceMismatchError()
    # 3. The key config parses and offers exactly our suite (no downgrade).
    key_config = KeyConfig.decode(bundle.key_config)
    if key_config.kem_id != suite.kem_id or (suite.kdf_id, suite.aead_id) not in key_config.symmetric:
        raise UnsupportedSuiteError()
    # 4. Simulated evidence is considered only under a dev policy; then it must verify under its roots.
    if bundle.tee is Tee.SIMULATED and policy.profile is not Profile.DEV:
        raise DevProfileRequiredError()
    claims = _evidence_claims(bundle, policy, now)
    # 5. report_data binds this nonce, this key config, this signing key and this manifest.
    manifest_digest = bundle.manifest.digest()
    expected = compute_report_data(
        bundle.nonce, bundle.key_config, bundle.signing_public_key, manifest_digest
    )
    # 6. Simulated: the measurement is the manifest digest itself.
    if claims.tee is Tee.SIMULATED and not hmac.compare_digest(claims.measurement, manifest_digest):
        raise ManifestMismatchError()
    # 7. Policy: profile, debug, age, allow-listed measurement, report_data.
    result = appraise(claims, policy, now=now, expected_report_data=expected)
    return VerifiedEnclave(bundle=bundle, key_config=key_config, result=result)
