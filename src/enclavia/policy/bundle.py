"""The checks every verifier of an attestation bundle runs (the client before it sends data, the broker
before it releases a key): one implementation, so the two cannot drift apart.

Freshness is the caller's: the client compares the bundle's nonce with the one it just sent; the broker
consumes one of its own challenges atomically in the transaction that records its decision.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime

from enclavia.attestation.binding import compute_report_data
from enclavia.attestation.bundle import AttestationBundle
from enclavia.attestation.claims import AttestationResult, Claims, Tee
from enclavia.attestation.platforms.simulated.verify import verify as verify_simulated
from enclavia.crypto.hpke import DEFAULT_SUITE, Suite
from enclavia.crypto.ohttp import KeyConfig
from enclavia.errors import (
    DevProfileRequiredError,
    EvidenceFormatError,
    ManifestMismatchError,
    UnsupportedSuiteError,
)
from enclavia.policy.document import Policy, Profile, appraise


@dataclass(frozen=True)
class AttestedEnclave:
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

    # Nitro and NVIDIA sign the nonce in a field of their own; SEV-SNP and TDX bind it via report_data only.
    signs_nonce = bundle.tee in (Tee.NITRO, Tee.NVIDIA)
    try:
        return verify_evidence(
            bundle.tee,
            bundle.evidence,
            now=now,
            certificates=bundle.certificates,
            collateral=bundle.collateral,
            aux=bundle.aux,
            nonce=bundle.nonce if signs_nonce else None,
        )
    except (ValueError, TypeError):
        # The dispatcher refuses inputs a platform does not take (API misuse there; bad evidence here).
        raise EvidenceFormatError("bundle carries inputs this platform does not take") from None


def verify_presented_bundle(
    bundle: AttestationBundle, *, policy: Policy, now: datetime, suite: Suite = DEFAULT_SUITE
) -> AttestedEnclave:
    """Steps 3 to 7 of the checklist on a parsed bundle whose nonce the caller has checked."""
    # 3. The key config parses and offers exactly our suite (no downgrade).
    key_config = KeyConfig.decode(bundle.key_config)
    if key_config.kem_id != suite.kem_id or (suite.kdf_id, suite.aead_id) not in key_config.symmetric:
        raise UnsupportedSuiteError()
    # 4. Simulated evidence only under a dev policy; then it must verify under the pinned platform keys.
    if bundle.tee is Tee.SIMULATED and policy.profile is not Profile.DEV:
        raise DevProfileRequiredError()
    claims = _evidence_claims(bundle, policy, now)
    # 5. report_data binds the nonce, the key config, the signing key and the manifest.
    manifest_digest = bundle.manifest.digest()
    expected = compute_report_data(
        bundle.nonce, bundle.key_config, bundle.signing_public_key, manifest_digest
    )
    # 6. Simulated: the measurement is the manifest digest itself.
    if claims.tee is Tee.SIMULATED and not hmac.compare_digest(claims.measurement, manifest_digest):
        raise ManifestMismatchError()
    # 7. Policy: profile, debug, evidence age, allow-listed measurement, report_data, and (entries with
    #    bind_manifest) the platform's config slot carries this manifest.
    result = appraise(claims, policy, now=now, expected_report_data=expected, manifest=bundle.manifest)
    return AttestedEnclave(bundle=bundle, key_config=key_config, result=result)
