"""Verify an attestation bundle before anything is sent. A checklist; each step its own error."""

from __future__ import annotations

import hmac
from collections.abc import Container
from datetime import datetime

from enclavia.attestation.bundle import parse_bundle
from enclavia.crypto.hpke import DEFAULT_SUITE, Suite
from enclavia.errors import NonceMismatchError, ReplayedNonceError
from enclavia.policy.bundle import AttestedEnclave, verify_presented_bundle
from enclavia.policy.document import Policy

# What the client holds after verification (the same object the broker gets).
VerifiedEnclave = AttestedEnclave


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
    # 3 to 7: suite, evidence, report_data binding, manifest, policy (shared with the broker).
    return verify_presented_bundle(bundle, policy=policy, now=now, suite=suite)
