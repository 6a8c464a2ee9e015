"""Transparency log, verifier side (pure): signed tree heads, the reader interface, the inclusion check.

Signed tree head (RFC 9162 section 4.10 ``TreeHeadDataV2``, with a domain-separation prefix and the
log id in front, signed with the log's Ed25519 key)::

    message = "enclavia-tlog-sth-v1\\0" || log_id (32: SHA-256 of the log public key)
              || uint64 timestamp (ms) || uint64 tree_size || uint8 32 || root_hash || uint16 0

JSON (``GET /tlog/v1/sth``): ``{"log_id": hex, "tree_size": int, "timestamp": int,
"root_hash": base64, "signature": base64}``.

:func:`check_release_included` is what a client runs before it trusts a measurement: verify the tree
head, check it is consistent with the last head it saw (a fork or rollback is refused), find the signed
release record of the attested manifest digest in the log, prove its inclusion, then check the record.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import struct
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from enclavia.attestation.claims import Claims
from enclavia.attestation.release import (
    ApproverSet,
    SignedRelease,
    parse_signed_release,
    verify_release,
)
from enclavia.crypto.merkle import HASH_LEN, leaf_hash, verify_consistency, verify_inclusion
from enclavia.crypto.signing import SigningKey, verify_ed25519
from enclavia.errors import (
    ConsistencyProofError,
    InclusionProofError,
    InvalidPublicKeyError,
    LogEntryNotFoundError,
    ReleaseRecordInvalidError,
    SignatureInvalidError,
    TreeHeadInvalidError,
)

STH_CONTEXT = b"enclavia-tlog-sth-v1\x00"
MAX_TREE_SIZE = (1 << 63) - 1
MAX_PROOF_LEN = 64


def log_id_for(public_key: bytes) -> bytes:
    return hashlib.sha256(public_key).digest()


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def b64decode(value: object, err: type[Exception]) -> bytes:
    if not isinstance(value, str):
        raise err("expected base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise err("expected base64 text") from None


@dataclass(frozen=True)
class SignedTreeHead:
    log_id: bytes
    tree_size: int
    timestamp: int  # milliseconds since the epoch
    root_hash: bytes
    signature: bytes

    def message(self) -> bytes:
        return sth_message(self.log_id, self.tree_size, self.timestamp, self.root_hash)

    def to_json(self) -> dict[str, Any]:
        return {
            "log_id": self.log_id.hex(),
            "tree_size": self.tree_size,
            "timestamp": self.timestamp,
            "root_hash": _b64(self.root_hash),
            "signature": _b64(self.signature),
        }

    def encode(self) -> bytes:
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":")).encode()


def sth_message(log_id: bytes, tree_size: int, timestamp: int, root_hash: bytes) -> bytes:
    if len(log_id) != 32 or len(root_hash) != HASH_LEN:
        raise ValueError("log id and root hash must be 32 bytes")
    return (
        STH_CONTEXT
        + log_id
        + struct.pack(">QQB", timestamp, tree_size, HASH_LEN)
        + root_hash
        + struct.pack(">H", 0)
    )


def sign_tree_head(key: SigningKey, tree_size: int, timestamp: int, root_hash: bytes) -> SignedTreeHead:
    log_id = log_id_for(key.public_bytes)
    sig = key.sign(sth_message(log_id, tree_size, timestamp, root_hash))
    return SignedTreeHead(log_id, tree_size, timestamp, root_hash, sig)


def parse_tree_head(doc: object) -> SignedTreeHead:
    """Strict: exact keys, 32-byte log id and root, non-negative sizes, 64-byte signature."""
    keys = {"log_id", "tree_size", "timestamp", "root_hash", "signature"}
    if not isinstance(doc, dict) or set(doc) != keys:
        raise TreeHeadInvalidError("tree head has the wrong shape")
    size, ts = doc["tree_size"], doc["timestamp"]
    for v in (size, ts):
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= MAX_TREE_SIZE:
            raise TreeHeadInvalidError("tree head size or time invalid")
    try:
        log_id = bytes.fromhex(doc["log_id"]) if isinstance(doc["log_id"], str) else b""
    except ValueError:
        log_id = b""
    root = b64decode(doc["root_hash"], TreeHeadInvalidError)
    sig = b64decode(doc["signature"], TreeHeadInvalidError)
    if len(log_id) != 32 or len(root) != HASH_LEN or len(sig) != 64:
        raise TreeHeadInvalidError("tree head field has the wrong length")
    return SignedTreeHead(log_id, size, ts, root, sig)


def verify_tree_head(sth: SignedTreeHead, log_public_key: bytes) -> None:
    if not hmac.compare_digest(sth.log_id, log_id_for(log_public_key)):
        raise TreeHeadInvalidError("tree head is from another log")
    try:
        verify_ed25519(log_public_key, sth.message(), sth.signature)
    except (SignatureInvalidError, InvalidPublicKeyError):
        raise TreeHeadInvalidError() from None


@dataclass(frozen=True)
class LogEntry:
    index: int
    leaf_input: bytes

    @property
    def leaf_hash(self) -> bytes:
        return leaf_hash(self.leaf_input)

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "leaf_input": _b64(self.leaf_input)}


@dataclass(frozen=True)
class InclusionProof:
    leaf_index: int
    tree_size: int
    path: tuple[bytes, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "leaf_index": self.leaf_index,
            "tree_size": self.tree_size,
            "inclusion_path": [_b64(p) for p in self.path],
        }


def parse_entry(doc: object) -> LogEntry:
    if not isinstance(doc, dict) or set(doc) != {"index", "leaf_input"}:
        raise InclusionProofError("log entry has the wrong shape")
    idx = doc["index"]
    if not isinstance(idx, int) or isinstance(idx, bool) or idx < 0:
        raise InclusionProofError("log entry index invalid")
    return LogEntry(idx, b64decode(doc["leaf_input"], InclusionProofError))


def parse_hash_list(value: object, err: type[Exception]) -> tuple[bytes, ...]:
    if not isinstance(value, list) or len(value) > MAX_PROOF_LEN:
        raise err("proof must be a list of hashes")
    out = tuple(b64decode(v, err) for v in value)
    if not all(len(h) == HASH_LEN for h in out):
        raise err("proof element is not a 32-byte hash")
    return out


def parse_inclusion_proof(doc: object) -> InclusionProof:
    if not isinstance(doc, dict) or set(doc) != {"leaf_index", "tree_size", "inclusion_path"}:
        raise InclusionProofError("inclusion proof has the wrong shape")
    i, n = doc["leaf_index"], doc["tree_size"]
    for v in (i, n):
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise InclusionProofError("inclusion proof index invalid")
    return InclusionProof(i, n, parse_hash_list(doc["inclusion_path"], InclusionProofError))


class LogReader(Protocol):
    """What a verifier needs from a log: served over HTTP or by a TransparencyLog object."""

    def get_sth(self) -> SignedTreeHead: ...

    def get_inclusion_proof(self, leaf_hash: bytes, tree_size: int) -> InclusionProof: ...

    def get_consistency_proof(self, first: int, second: int) -> Sequence[bytes]: ...

    def lookup(self, manifest_digest: bytes) -> Sequence[LogEntry]: ...


class TreeHeadStore(Protocol):
    """Where a client keeps the last tree head it verified, per log."""

    def load(self, log_id: bytes) -> SignedTreeHead | None: ...

    def save(self, sth: SignedTreeHead) -> None: ...


class MemoryTreeHeadStore:
    def __init__(self) -> None:
        self._heads: dict[bytes, SignedTreeHead] = {}

    def load(self, log_id: bytes) -> SignedTreeHead | None:
        return self._heads.get(log_id)

    def save(self, sth: SignedTreeHead) -> None:
        self._heads[sth.log_id] = sth


def advance_tree_head(reader: LogReader, log_public_key: bytes, store: TreeHeadStore) -> SignedTreeHead:
    """Fetch and verify the current head; prove it consistent with the last one seen; remember it.

    A head smaller than the last one seen must itself be proven a prefix of it (a lagging mirror);
    the newer one is kept. Any failure is a fork or a rollback: ConsistencyProofError.
    """
    sth = reader.get_sth()
    verify_tree_head(sth, log_public_key)
    last = store.load(sth.log_id)
    if last is None or last.tree_size == 0:
        store.save(sth)
        return sth
    if sth.tree_size == 0:
        raise ConsistencyProofError("log shrank to nothing")
    if sth.tree_size >= last.tree_size:
        path = (
            reader.get_consistency_proof(last.tree_size, sth.tree_size)
            if sth.tree_size > last.tree_size
            else ()
        )
        verify_consistency(last.tree_size, sth.tree_size, last.root_hash, sth.root_hash, path)
        store.save(sth)
        return sth
    path = reader.get_consistency_proof(sth.tree_size, last.tree_size)
    verify_consistency(sth.tree_size, last.tree_size, sth.root_hash, last.root_hash, path)
    return sth


@dataclass(frozen=True)
class InclusionCheck:
    release: SignedRelease
    index: int
    tree_head: SignedTreeHead
    approvers: tuple[str, ...]


def check_release_included(
    reader: LogReader,
    *,
    log_public_key: bytes,
    store: TreeHeadStore,
    manifest_digest: bytes,
    claims: Claims | None = None,
    release_keys: Collection[bytes] = (),
    approvers: ApproverSet | None = None,
) -> InclusionCheck:
    """The attested manifest digest is published, as a signed release record, in a log we can trust.

    Order: tree head signature (TreeHeadInvalidError); consistency with the last head seen
    (ConsistencyProofError); an entry for this digest (LogEntryNotFoundError); its inclusion under the
    verified head (InclusionProofError); the record itself: the same digest, measurements matching the
    claims (ReleaseRecordInvalidError), release signature and approvals when keys are configured
    (ReleaseSignatureError, ApprovalQuorumError).
    """
    sth = advance_tree_head(reader, log_public_key, store)
    candidates = [e for e in reader.lookup(manifest_digest) if e.index < sth.tree_size]
    if not candidates:
        raise LogEntryNotFoundError()
    entry = max(candidates, key=lambda e: e.index)
    proof = reader.get_inclusion_proof(entry.leaf_hash, sth.tree_size)
    if proof.tree_size != sth.tree_size:
        raise InclusionProofError("proof is for another tree size")
    verify_inclusion(proof.leaf_index, sth.tree_size, entry.leaf_hash, proof.path, sth.root_hash)
    release = parse_signed_release(entry.leaf_input)
    if not hmac.compare_digest(release.record.manifest_digest, manifest_digest):
        raise ReleaseRecordInvalidError("log entry is for another manifest")
    if claims is not None and not release.record.matches_claims(claims):
        raise ReleaseRecordInvalidError("published measurement differs from the attested one")
    names: tuple[str, ...] = ()
    if release_keys:
        names = verify_release(release, release_keys=release_keys, approvers=approvers)
    return InclusionCheck(release=release, index=proof.leaf_index, tree_head=sth, approvers=names)
