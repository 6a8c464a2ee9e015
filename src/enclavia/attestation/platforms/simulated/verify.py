"""Verify simulated evidence. Checklist; each step raises its own error."""

from __future__ import annotations

import hmac
from collections.abc import Collection
from datetime import UTC, datetime

from enclavia.attestation.claims import Claims, Revocation, Tee
from enclavia.attestation.platforms.simulated.abi import SIGNATURE_CONTEXT, parse_evidence
from enclavia.crypto.signing import verify_ed25519
from enclavia.errors import UntrustedRootError


def verify(
    evidence: bytes, *, trusted_platform_keys: Collection[bytes], nonce: bytes | None = None
) -> Claims:
    # 1. Parse into typed, length-checked objects.
    ev = parse_evidence(evidence)
    # 2. The platform key is one the verifier pinned (made by `enclavia sim init`).
    if not any(hmac.compare_digest(ev.report.platform_key, k) for k in trusted_platform_keys):
        raise UntrustedRootError("simulated platform key is not pinned")
    # 3. The signature covers the whole payload.
    verify_ed25519(ev.report.platform_key, SIGNATURE_CONTEXT + ev.payload, ev.signature)
    # 4. Claims. Binding of nonce and key config is checked against report_data by the caller.
    return Claims(
        tee=Tee.SIMULATED,
        measurement=ev.report.measurement,
        measurements={"MANIFEST_SHA384": ev.report.measurement},
        report_data=ev.report.report_data,
        debug=ev.report.debug,
        issued_at=datetime.fromtimestamp(ev.report.timestamp_ms / 1000, tz=UTC),
        details={"platform_key": ev.report.platform_key.hex()},
        revocation=Revocation.NOT_APPLICABLE,
        nonce=nonce,
    )
