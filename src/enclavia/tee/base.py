"""The attester interface every backend implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from enclavia.attestation.claims import Tee


@dataclass(frozen=True)
class Evidence:
    """Raw evidence plus whatever a verifier needs beside it (certificates, auxblob, collateral)."""

    tee: Tee
    evidence: bytes
    certificates: tuple[bytes, ...] = field(default=())  # DER or PEM blobs, leaf first where ordered
    aux: bytes | None = None  # e.g. SEV-SNP extended-report certificate table (configfs-tsm auxblob)


class Attester(Protocol):
    tee: Tee

    def attest(self, report_data: bytes) -> Evidence:
        """Evidence whose report_data field is exactly these 64 bytes."""
        ...
