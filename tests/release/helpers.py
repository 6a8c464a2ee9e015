"""Shared helpers for release tests: records, keys, signed releases."""

from __future__ import annotations

from datetime import UTC, datetime

from enclavia.attestation.release import ApproverSet, ReleaseRecord, SignedRelease, approve, sign_record
from enclavia.crypto.signing import SigningKey

T0 = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def record(digest: bytes = b"\x11" * 48, version: str = "1.0.0") -> ReleaseRecord:
    return ReleaseRecord(
        version=version,
        source_commit=COMMIT,
        manifest_digest=digest,
        measurements={"simulated": {"measurement": digest.hex()}},
        created_at=T0,
    )


class Authority:
    """A release key and three approvers (2 of 3)."""

    def __init__(self) -> None:
        self.release_key = SigningKey.generate()
        self.approver_keys = {n: SigningKey.generate() for n in ("alice", "bob", "carol")}
        self.approvers = ApproverSet(2, {n: k.public_bytes for n, k in self.approver_keys.items()})

    def release(
        self, digest: bytes = b"\x11" * 48, version: str = "1.0.0", approvals: int = 2
    ) -> SignedRelease:
        signed = sign_record(record(digest, version), self.release_key)
        for name in list(self.approver_keys)[:approvals]:
            signed = approve(signed, name, self.approver_keys[name])
        return signed
