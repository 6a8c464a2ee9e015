"""Release records: what the release authority publishes for one enclave build (pure, no I/O).

A *release record* (canonical JSON) names a version, the source commit, the image manifest digest
(SHA-384, what report_data binds), the platform measurements beside it (shaped like policy reference
entries), and a time. The release key signs it; named approvers may add signatures of their own; a
*signed release* is the record with those signatures, and is what goes into the transparency log
as one leaf (its canonical JSON bytes).

Messages are domain-separated so that no signature can be replayed as another kind::

    release:   Ed25519(release_key,  "enclavia-release-v1\\0"          || canonical(record))
    approval:  Ed25519(approver_key, "enclavia-release-approval-v1\\0" || SHA-256(canonical(record)))

Verification takes the trusted inputs (release public keys, the approver set and its threshold) from
the caller; nothing in the document names its own trust.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from enclavia.attestation.claims import Claims, Tee
from enclavia.attestation.manifest import canonical_json
from enclavia.crypto.signing import SigningKey, verify_ed25519
from enclavia.errors import (
    ApprovalQuorumError,
    InvalidPublicKeyError,
    ReleaseRecordInvalidError,
    ReleaseSignatureError,
    SignatureInvalidError,
)

RECORD_SCHEMA = "enclavia-release-v1"
SIGNED_SCHEMA = "enclavia-signed-release-v1"
RELEASE_CONTEXT = b"enclavia-release-v1\x00"
APPROVAL_CONTEXT = b"enclavia-release-approval-v1\x00"
MAX_RELEASE_BYTES = 1 << 20
MANIFEST_DIGEST_LEN = 48
_VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$")
_COMMIT = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_TIME = "%Y-%m-%dT%H:%M:%SZ"


def key_id(public_key: bytes) -> str:
    """Short identifier of an Ed25519 public key: first 16 hex of its SHA-256."""
    return hashlib.sha256(public_key).hexdigest()[:16]


def format_time(t: datetime) -> str:
    if t.tzinfo is None:
        raise ValueError("time must be timezone-aware")
    return t.astimezone(UTC).strftime(_TIME)


def _parse_time(value: object) -> datetime:
    if not isinstance(value, str):
        raise ReleaseRecordInvalidError("release time invalid")
    try:
        return datetime.strptime(value, _TIME).replace(tzinfo=UTC)
    except ValueError:
        raise ReleaseRecordInvalidError("release time invalid") from None


def _measurements(value: object) -> dict[str, dict[str, Any]]:
    if not isinstance(value, Mapping):
        raise ReleaseRecordInvalidError("measurements must be a mapping")
    out: dict[str, dict[str, Any]] = {}
    for tee, entry in value.items():
        try:
            Tee(tee)
        except ValueError:
            raise ReleaseRecordInvalidError("measurement for an unknown TEE") from None
        if not isinstance(entry, Mapping) or not entry:
            raise ReleaseRecordInvalidError("measurement entry must be a non-empty mapping")
        out[str(tee)] = json.loads(canonical_json(entry))
    return out


@dataclass(frozen=True)
class ReleaseRecord:
    version: str
    source_commit: str
    manifest_digest: bytes
    measurements: Mapping[str, Mapping[str, Any]]
    created_at: datetime
    notes: str = ""

    def __post_init__(self) -> None:
        if not _VERSION.match(self.version):
            raise ReleaseRecordInvalidError("version must be 1-64 characters [0-9A-Za-z.+_-]")
        if not _COMMIT.match(self.source_commit):
            raise ReleaseRecordInvalidError("source_commit must be a full lowercase git commit id")
        if len(self.manifest_digest) != MANIFEST_DIGEST_LEN:
            raise ReleaseRecordInvalidError("manifest_digest must be 48 bytes")
        if len(self.notes) > 1024:
            raise ReleaseRecordInvalidError("notes too long")
        object.__setattr__(self, "measurements", MappingProxyType(_measurements(self.measurements)))
        object.__setattr__(self, "created_at", _parse_time(format_time(self.created_at)))

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": RECORD_SCHEMA,
            "version": self.version,
            "source_commit": self.source_commit,
            "manifest_digest": self.manifest_digest.hex(),
            "measurements": {k: dict(v) for k, v in sorted(self.measurements.items())},
            "created_at": format_time(self.created_at),
            "notes": self.notes,
        }

    def canonical(self) -> bytes:
        return canonical_json(self.to_json())

    def digest(self) -> bytes:
        return hashlib.sha256(self.canonical()).digest()

    def matches_claims(self, claims: Claims) -> bool:
        """True when the record publishes no measurement for this TEE or the claims show exactly it."""
        entry = self.measurements.get(str(claims.tee))
        if entry is None:
            return True
        if claims.tee in (Tee.SIMULATED, Tee.SEV_SNP):
            return str(entry.get("measurement", "")) == claims.measurement.hex()
        if claims.tee is Tee.NITRO:
            pcrs = entry.get("pcrs", {})
            return isinstance(pcrs, Mapping) and all(
                claims.measurements.get(f"PCR{i}", b"").hex() == v for i, v in pcrs.items()
            )
        if claims.tee is Tee.TDX:
            return all(claims.measurements.get(k.upper(), b"").hex() == v for k, v in entry.items())
        return False


def parse_record(data: object) -> ReleaseRecord:
    keys = {"schema", "version", "source_commit", "manifest_digest", "measurements", "created_at", "notes"}
    if not isinstance(data, Mapping) or set(data) != keys or data["schema"] != RECORD_SCHEMA:
        raise ReleaseRecordInvalidError("release record has the wrong shape")
    for k in ("version", "source_commit", "manifest_digest", "notes"):
        if not isinstance(data[k], str):
            raise ReleaseRecordInvalidError("release record field must be text")
    try:
        digest = bytes.fromhex(data["manifest_digest"])
    except ValueError:
        raise ReleaseRecordInvalidError("manifest_digest must be hex") from None
    return ReleaseRecord(
        version=data["version"],
        source_commit=data["source_commit"],
        manifest_digest=digest,
        measurements=_measurements(data["measurements"]),
        created_at=_parse_time(data["created_at"]),
        notes=data["notes"],
    )


@dataclass(frozen=True)
class Approval:
    approver: str
    key_id: str
    signature: bytes

    def to_json(self) -> dict[str, str]:
        return {"approver": self.approver, "key_id": self.key_id, "signature": _b64(self.signature)}


@dataclass(frozen=True)
class SignedRelease:
    record: ReleaseRecord
    key_id: str
    signature: bytes
    approvals: tuple[Approval, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SIGNED_SCHEMA,
            "record": self.record.to_json(),
            "signature": {"key_id": self.key_id, "signature": _b64(self.signature)},
            "approvals": [a.to_json() for a in sorted(self.approvals, key=lambda a: a.approver)],
        }

    def encode(self) -> bytes:
        """Canonical bytes: the transparency log leaf."""
        return canonical_json(self.to_json())

    @property
    def approvers(self) -> tuple[str, ...]:
        return tuple(sorted({a.approver for a in self.approvals}))


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _unb64(value: object) -> bytes:
    if not isinstance(value, str):
        raise ReleaseRecordInvalidError("signature must be base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ReleaseRecordInvalidError("signature must be base64 text") from None


def parse_signed_release(data: bytes) -> SignedRelease:
    if len(data) > MAX_RELEASE_BYTES:
        raise ReleaseRecordInvalidError("signed release too large")
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ReleaseRecordInvalidError("signed release is not JSON") from None
    if not isinstance(doc, dict) or set(doc) != {"schema", "record", "signature", "approvals"}:
        raise ReleaseRecordInvalidError("signed release has the wrong shape")
    if doc["schema"] != SIGNED_SCHEMA:
        raise ReleaseRecordInvalidError("signed release schema unknown")
    sig = doc["signature"]
    if not isinstance(sig, dict) or set(sig) != {"key_id", "signature"} or not isinstance(sig["key_id"], str):
        raise ReleaseRecordInvalidError("release signature has the wrong shape")
    approvals = []
    if not isinstance(doc["approvals"], list):
        raise ReleaseRecordInvalidError("approvals must be a list")
    for item in doc["approvals"]:
        if not isinstance(item, dict) or set(item) != {"approver", "key_id", "signature"}:
            raise ReleaseRecordInvalidError("approval has the wrong shape")
        if not isinstance(item["approver"], str) or not _NAME.match(item["approver"]):
            raise ReleaseRecordInvalidError("approver name invalid")
        if not isinstance(item["key_id"], str):
            raise ReleaseRecordInvalidError("approval key id invalid")
        approvals.append(Approval(item["approver"], item["key_id"], _unb64(item["signature"])))
    return SignedRelease(
        record=parse_record(doc["record"]),
        key_id=sig["key_id"],
        signature=_unb64(sig["signature"]),
        approvals=tuple(approvals),
    )


# -- signing -------------------------------------------------------------------------------------


def sign_record(record: ReleaseRecord, key: SigningKey) -> SignedRelease:
    return SignedRelease(
        record=record,
        key_id=key_id(key.public_bytes),
        signature=key.sign(RELEASE_CONTEXT + record.canonical()),
    )


def approve(release: SignedRelease, approver: str, key: SigningKey) -> SignedRelease:
    """Add (or replace) ``approver``'s signature over the record."""
    if not _NAME.match(approver):
        raise ValueError("approver name must be lowercase [a-z0-9._-], 1-64 characters")
    approval = Approval(
        approver, key_id(key.public_bytes), key.sign(APPROVAL_CONTEXT + release.record.digest())
    )
    others = tuple(a for a in release.approvals if a.approver != approver)
    return SignedRelease(release.record, release.key_id, release.signature, (*others, approval))


# -- verification --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApproverSet:
    """Who may approve (name -> Ed25519 public key) and how many must (k of n)."""

    threshold: int
    members: Mapping[str, bytes]

    def __post_init__(self) -> None:
        if not all(_NAME.match(n) and len(k) == 32 for n, k in self.members.items()):
            raise ValueError("approvers: lowercase names and 32-byte Ed25519 public keys")
        if not 1 <= self.threshold <= len(self.members):
            raise ValueError("threshold must be between 1 and the number of approvers")
        object.__setattr__(self, "members", MappingProxyType(dict(self.members)))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ApproverSet:
        if set(data) != {"threshold", "approvers"} or not isinstance(data["approvers"], Mapping):
            raise ValueError("approver set needs threshold and approvers {name: public key hex}")
        threshold = data["threshold"]
        if not isinstance(threshold, int) or isinstance(threshold, bool):
            raise ValueError("threshold must be an integer")
        members = {}
        for name, pub in data["approvers"].items():
            try:
                members[str(name)] = bytes.fromhex(str(pub))
            except ValueError:
                raise ValueError("approver public key must be hex") from None
        return cls(threshold=threshold, members=members)


def verify_release_signature(release: SignedRelease, release_keys: Collection[bytes]) -> bytes:
    """The record is signed by one of ``release_keys``; returns that key."""
    for pub in release_keys:
        if key_id(pub) == release.key_id:
            try:
                verify_ed25519(pub, RELEASE_CONTEXT + release.record.canonical(), release.signature)
            except (SignatureInvalidError, InvalidPublicKeyError):
                raise ReleaseSignatureError() from None
            return pub
    raise ReleaseSignatureError("release signed by a key that is not trusted")


def count_approvals(release: SignedRelease, approvers: ApproverSet) -> tuple[str, ...]:
    """Names of the members whose approval verifies; a bad signature from a member is an error."""
    valid: set[str] = set()
    message = APPROVAL_CONTEXT + release.record.digest()
    for approval in release.approvals:
        pub = approvers.members.get(approval.approver)
        if pub is None or key_id(pub) != approval.key_id:
            continue  # not a member (or a retired key): does not count
        try:
            verify_ed25519(pub, message, approval.signature)
        except (SignatureInvalidError, InvalidPublicKeyError):
            raise ReleaseSignatureError("approval signature does not verify") from None
        valid.add(approval.approver)
    return tuple(sorted(valid))


def verify_release(
    release: SignedRelease,
    *,
    release_keys: Collection[bytes],
    approvers: ApproverSet | None = None,
) -> tuple[str, ...]:
    """Release signature, then (when an approver set is given) k-of-n approvals. Returns approvers."""
    verify_release_signature(release, release_keys)
    if approvers is None:
        return ()
    names = count_approvals(release, approvers)
    if len(names) < approvers.threshold:
        raise ApprovalQuorumError()
    return names
