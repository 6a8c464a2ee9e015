"""Client SDK: verify attestation, then encrypt to the attested key. Also the local proxy."""

from enclavia.client.sdk import Client
from enclavia.client.verify import VerifiedEnclave

__all__ = ["Client", "VerifiedEnclave"]
