"""Verify the attestation bundle an enclave presents to the broker.

The checks are the client's (``enclavia.policy.bundle``); freshness differs: the broker checks that the
bundle's nonce is one of its own outstanding challenges and consumes it atomically in the same transaction
that records the decision (see ``service.BrokerService.attest``).
"""

from __future__ import annotations

from enclavia.attestation.bundle import AttestationBundle, parse_bundle
from enclavia.policy.bundle import AttestedEnclave, verify_presented_bundle

__all__ = ["AttestedEnclave", "parse", "verify_presented_bundle"]


def parse(data: bytes) -> AttestationBundle:
    return parse_bundle(data)
