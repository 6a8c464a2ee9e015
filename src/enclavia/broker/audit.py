"""Append-only, hash-chained audit ledger with signed checkpoints.

Record (canonical JSON, sorted keys, no whitespace)::

    {"action": "release", "code": "ok", "ids": {"jti": <hmac>, "secret": <hmac>}, "outcome": "ok",
     "policy_revision": 3, "prev_hash": <hex>, "seq": 42, "time": "2026-11-26T14:08:55.123Z"}

    hash(record) = SHA-256(canonical JSON)            prev_hash of seq 1 = 64 zeros

Identifiers (secret paths, token ids, nonces, measurements, tenant ids) are stored only as
HMAC-SHA256(audit key, name || 0x00 || value), so the ledger can be shared with auditors without
revealing which paths or tenants exist; whoever holds the audit key can compute the reference of a known
identifier and search for it. Secret material is never an input.

Checkpoint: every ``checkpoint_every`` records, and on demand, the broker signs::

    Ed25519(broker key, "enclavia-audit-checkpoint-v1\\x00"
            || canonical JSON {"head_hash", "kid", "seq", "time"})

Appends run inside the caller's transaction (the same one as the decision they record): the head row is
locked by ``UPDATE ... RETURNING``, so appends are serialised and ``seq`` order is commit order. If an
append fails, the transaction and the decision fail with it (``AuditWriteError``).

``verify`` walks the chain: a record whose content was edited no longer matches its hash; a deleted
record leaves a gap in ``seq`` and a broken ``prev_hash``; reordered records break both. Rewriting the
whole chain after an edit is caught by the signed checkpoints and by the head row.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Connection, Integer, Table, bindparam, insert, select, text, update
from sqlalchemy.exc import SQLAlchemyError

from enclavia.broker.store import ASYNC_COMMIT_FLAG, audit_checkpoints, audit_head, audit_records
from enclavia.broker.tokens import key_id
from enclavia.crypto.signing import SigningKey, verify_ed25519
from enclavia.errors import (
    AuditVerificationError,
    AuditWriteError,
    EnclaviaError,
    InvalidPublicKeyError,
    SignatureInvalidError,
)

GENESIS_HASH: Final = "0" * 64
_HEAD_BUMP = (
    update(audit_head)
    .where(audit_head.c.id == 1)
    .values(seq=audit_head.c.seq + 1)
    .returning(audit_head.c.seq, audit_head.c.hash)
)
_HEAD_SET = update(audit_head).where(audit_head.c.id == 1).values(hash=bindparam("hash"))
_TOKEN = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_ID_NAME = re.compile(r"^[a-z_]{1,32}$")
_PG_APPEND_CALL = (
    "SELECT out_seq, out_hash, out_prev FROM enclavia_audit_append("
    "CAST(:time AS text), CAST(:action AS text), CAST(:outcome AS text), CAST(:code AS text),"
    " CAST(:rev AS integer), CAST(:ids AS text), CAST(:async_commit AS boolean))"
)
_pg_cache: dict[tuple[str, tuple[str, ...]], Any] = {}


def _pg_append(also_insert: tuple[Table, Mapping[str, Any]] | None) -> tuple[Any, dict[str, Any]]:
    """The PostgreSQL append statement, optionally with one INSERT in front of it (a data-modifying CTE)."""
    if also_insert is None:
        key: tuple[str, tuple[str, ...]] = ("", ())
        params: dict[str, Any] = {}
    else:
        table, row = also_insert
        cols = tuple(sorted(row))
        key = (table.name, cols)
        params = {f"pre_{c}": row[c] for c in cols}
    stmt = _pg_cache.get(key)
    if stmt is None:
        sql = _PG_APPEND_CALL
        if key[0]:
            names = ", ".join(key[1])
            values = ", ".join(f":pre_{c}" for c in key[1])
            sql = f"WITH pre AS (INSERT INTO {key[0]} ({names}) VALUES ({values})) {sql}"  # noqa: S608 - trusted names
        stmt = text(sql).bindparams(bindparam("rev", type_=Integer))
        _pg_cache[key] = stmt
    return stmt, params


CHECKPOINT_CONTEXT: Final = b"enclavia-audit-checkpoint-v1\x00"
DEFAULT_CHECKPOINT_EVERY: Final = 256


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def iso_ms(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True)
class AuditRecord:
    seq: int
    time: str
    action: str
    outcome: str
    code: str
    policy_revision: int | None
    ids: Mapping[str, str]
    prev_hash: str

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": self.time,
            "action": self.action,
            "outcome": self.outcome,
            "code": self.code,
            "policy_revision": self.policy_revision,
            "ids": dict(sorted(self.ids.items())),
            "prev_hash": self.prev_hash,
        }

    def digest(self) -> str:
        return hashlib.sha256(canonical(self.to_json())).hexdigest()

    @classmethod
    def from_row(cls, row: Any) -> AuditRecord:
        try:
            ids = json.loads(row.ids)
        except ValueError:
            ids = {"_unparsable": row.ids}
        return cls(
            seq=int(row.seq),
            time=row.time,
            action=row.action,
            outcome=row.outcome,
            code=row.code,
            policy_revision=row.policy_revision,
            ids=ids if isinstance(ids, dict) else {"_unparsable": str(ids)},
            prev_hash=row.prev_hash,
        )


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    head_hash: str
    time: str
    kid: str
    signature: str

    def body(self) -> bytes:
        return canonical({"head_hash": self.head_hash, "kid": self.kid, "seq": self.seq, "time": self.time})

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "head_hash": self.head_hash,
            "time": self.time,
            "kid": self.kid,
            "signature": self.signature,
        }

    def verify(self, public_key: bytes) -> None:
        if self.kid != key_id(public_key):
            raise AuditVerificationError("checkpoint signed by another key")
        try:
            verify_ed25519(public_key, CHECKPOINT_CONTEXT + self.body(), bytes.fromhex(self.signature))
        except (SignatureInvalidError, InvalidPublicKeyError, ValueError):
            raise AuditVerificationError("checkpoint signature invalid") from None


class Ledger:
    def __init__(
        self,
        audit_key: bytes,
        signing_key: SigningKey,
        *,
        checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
        clock: Callable[[], float],
    ) -> None:
        if len(audit_key) != 32:
            raise ValueError("audit key must be 32 bytes")
        if checkpoint_every < 1:
            raise ValueError("checkpoint_every must be positive")
        self._audit_key = audit_key
        self._signing_key = signing_key
        self.checkpoint_every = checkpoint_every
        self._clock = clock
        self.public_key = signing_key.public_bytes
        self.kid = key_id(self.public_key)

    def ref(self, name: str, value: str | bytes) -> str:
        """HMAC reference of one identifier (domain-separated by its name)."""
        raw = value.encode("utf-8") if isinstance(value, str) else value
        return hmac.new(self._audit_key, name.encode("ascii") + b"\x00" + raw, hashlib.sha256).hexdigest()

    def append(
        self,
        conn: Connection,
        *,
        action: str,
        outcome: str,
        code: str,
        policy_revision: int | None = None,
        ids: Mapping[str, str | bytes] | None = None,
        also_insert: tuple[Table, Mapping[str, Any]] | None = None,
    ) -> AuditRecord:
        """Append one record in ``conn``'s transaction. Any failure is ``AuditWriteError``.

        ``also_insert``: a row written in the same statement (PostgreSQL) or just before (SQLite), so the
        decision and its record cost one round trip while the ledger head is locked.
        """
        time_s = iso_ms(self._clock())
        refs = {name: self.ref(name, value) for name, value in sorted((ids or {}).items())}
        if not all(_TOKEN.match(v) for v in (action, outcome, code)) or not all(
            _ID_NAME.match(n) for n in refs
        ):
            raise ValueError(
                "audit fields must be plain identifiers"
            )  # never user input: a programming error
        ids_json = canonical(refs).decode()
        try:
            if conn.dialect.name == "postgresql":
                # One statement: lock the head, hash the canonical record, insert it, move the head.
                sql, params = _pg_append(also_insert)
                params.update(
                    time=time_s,
                    action=action,
                    outcome=outcome,
                    code=code,
                    rev=policy_revision,
                    ids=ids_json,
                    async_commit=bool(conn.info.get(ASYNC_COMMIT_FLAG, False)),
                )
                row = conn.execute(sql, params).one()
                record = AuditRecord(
                    int(row.out_seq), time_s, action, outcome, code, policy_revision, refs, row.out_prev
                )
                digest = row.out_hash
            else:
                if also_insert is not None:
                    conn.execute(insert(also_insert[0]), dict(also_insert[1]))
                head = conn.execute(_HEAD_BUMP).one()
                record = AuditRecord(
                    int(head.seq), time_s, action, outcome, code, policy_revision, refs, head.hash
                )
                digest = record.digest()
                conn.execute(
                    insert(audit_records),
                    {
                        "seq": record.seq,
                        "time": time_s,
                        "action": action,
                        "outcome": outcome,
                        "code": code,
                        "policy_revision": policy_revision,
                        "ids": ids_json,
                        "prev_hash": record.prev_hash,
                        "hash": digest,
                    },
                )
                conn.execute(_HEAD_SET, {"hash": digest})
            if record.seq % self.checkpoint_every == 0:
                self._insert_checkpoint(conn, record.seq, digest)
        except EnclaviaError:
            raise
        except (SQLAlchemyError, OSError):
            raise AuditWriteError() from None
        return record

    def _sign(self, seq: int, head_hash: str) -> Checkpoint:
        unsigned = Checkpoint(
            seq=seq, head_hash=head_hash, time=iso_ms(self._clock()), kid=self.kid, signature=""
        )
        signature = self._signing_key.sign(CHECKPOINT_CONTEXT + unsigned.body()).hex()
        return Checkpoint(seq, head_hash, unsigned.time, self.kid, signature)

    def _insert_checkpoint(self, conn: Connection, seq: int, head_hash: str) -> Checkpoint:
        cp = self._sign(seq, head_hash)
        conn.execute(insert(audit_checkpoints).values(**cp.to_json()))
        return cp

    def checkpoint(self, conn: Connection) -> Checkpoint | None:
        """Sign the current head now (on demand). None while the ledger is empty."""
        try:
            head = conn.execute(
                select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1).with_for_update()
            ).one()
            if head.seq == 0:
                return None
            existing = conn.execute(
                select(audit_checkpoints).where(audit_checkpoints.c.seq == head.seq)
            ).first()
            if existing is not None:
                return Checkpoint(
                    **{k: getattr(existing, k) for k in ("seq", "head_hash", "time", "kid", "signature")}
                )
            return self._insert_checkpoint(conn, int(head.seq), head.hash)
        except (SQLAlchemyError, OSError):
            raise AuditWriteError() from None


def latest_checkpoint(conn: Connection) -> Checkpoint | None:
    row = conn.execute(select(audit_checkpoints).order_by(audit_checkpoints.c.seq.desc()).limit(1)).first()
    if row is None:
        return None
    return Checkpoint(
        seq=int(row.seq), head_hash=row.head_hash, time=row.time, kid=row.kid, signature=row.signature
    )


@dataclass(frozen=True)
class VerifyReport:
    records: int
    checkpoints: int
    head_seq: int
    head_hash: str
    last_checkpoint_seq: int | None
    kid: str


def verify_ledger(conn: Connection, public_key: bytes) -> VerifyReport:
    """Walk the whole ledger. Raise ``AuditVerificationError`` naming the first bad sequence number."""
    checkpoints = [
        Checkpoint(seq=int(r.seq), head_hash=r.head_hash, time=r.time, kid=r.kid, signature=r.signature)
        for r in conn.execute(select(audit_checkpoints).order_by(audit_checkpoints.c.seq))
    ]
    wanted = {cp.seq for cp in checkpoints}
    hashes_at: dict[int, str] = {}
    expected_seq, prev = 1, GENESIS_HASH
    count = 0
    result = conn.execution_options(yield_per=2000).execute(
        select(audit_records).order_by(audit_records.c.seq)
    )
    for row in result:
        record = AuditRecord.from_row(row)
        if record.seq != expected_seq:
            raise AuditVerificationError(f"record missing or out of order before seq {record.seq}")
        if record.prev_hash != prev:
            raise AuditVerificationError(f"chain broken at seq {record.seq}")
        digest = record.digest()
        if not hmac.compare_digest(digest, row.hash):
            raise AuditVerificationError(f"record edited at seq {record.seq}")
        if record.seq in wanted:
            hashes_at[record.seq] = digest
        prev, expected_seq = digest, expected_seq + 1
        count += 1
    head = conn.execute(select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)).one()
    if int(head.seq) != count or head.hash != prev:
        raise AuditVerificationError(
            "ledger head does not match the last record (records deleted at the end)"
        )
    for cp in checkpoints:
        cp.verify(public_key)
        if cp.seq not in hashes_at or not hmac.compare_digest(hashes_at[cp.seq], cp.head_hash):
            raise AuditVerificationError(f"checkpoint at seq {cp.seq} does not match the chain")
    return VerifyReport(
        records=count,
        checkpoints=len(checkpoints),
        head_seq=count,
        head_hash=prev,
        last_checkpoint_seq=checkpoints[-1].seq if checkpoints else None,
        kid=key_id(public_key),
    )
