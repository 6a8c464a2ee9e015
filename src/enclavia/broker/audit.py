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

import dataclasses
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import BigInteger, Connection, Integer, Table, bindparam, insert, select, text, update
from sqlalchemy.exc import SQLAlchemyError

from enclavia.broker.policychain import SignedRevision, verify_chain
from enclavia.broker.store import (
    ASYNC_COMMIT_FLAG,
    NEW_CHECKPOINTS,
    audit_checkpoints,
    audit_head,
    audit_records,
    policies,
)
from enclavia.broker.tokens import key_id
from enclavia.crypto.signing import SigningKey, verify_ed25519
from enclavia.errors import (
    AuditVerificationError,
    AuditWriteError,
    EnclaviaError,
    InvalidPublicKeyError,
    LedgerBehindCheckpointError,
    PolicyChainBrokenError,
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
    "SELECT out_seq, out_hash, out_prev FROM enclavia_audit_append2("
    "CAST(:time AS text), CAST(:action AS text), CAST(:outcome AS text), CAST(:code AS text),"
    " CAST(:rev AS integer), CAST(:ids AS text), CAST(:async_commit AS boolean),"
    " CAST(:digest AS text), CAST(:count AS bigint))"
)
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
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
        stmt = text(sql).bindparams(bindparam("rev", type_=Integer), bindparam("count", type_=BigInteger))
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
    policy_digest: str | None = None  # the signed policy revision a decision was made under
    count: int | None = None  # a periodic aggregate: how many events this one record stands for

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "seq": self.seq,
            "time": self.time,
            "action": self.action,
            "outcome": self.outcome,
            "code": self.code,
            "policy_revision": self.policy_revision,
            "ids": dict(sorted(self.ids.items())),
            "prev_hash": self.prev_hash,
        }
        # Only when present, so the hashes of records written before these fields existed do not change.
        if self.policy_digest is not None:
            out["policy_digest"] = self.policy_digest
        if self.count is not None:
            out["count"] = self.count
        return out

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
            policy_digest=row.policy_digest,
            count=None if row.count is None else int(row.count),
        )


_CHECKPOINT_FIELDS: Final = (
    "seq",
    "head_hash",
    "time",
    "kid",
    "signature",
    "policy_revision",
    "policy_digest",
    "every",
)


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    head_hash: str
    time: str
    kid: str
    signature: str
    # Signed with the checkpoint: the highest policy revision the broker had verified (its digest), and
    # the cadence in force. None on checkpoints made before these existed (then not in the signed body).
    policy_revision: int | None = None
    policy_digest: str | None = None
    every: int | None = None

    def body(self) -> bytes:
        doc: dict[str, Any] = {
            "head_hash": self.head_hash,
            "kid": self.kid,
            "seq": self.seq,
            "time": self.time,
        }
        for name in ("policy_revision", "policy_digest", "every"):
            if getattr(self, name) is not None:
                doc[name] = getattr(self, name)
        return canonical(doc)

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _CHECKPOINT_FIELDS}

    @classmethod
    def from_row(cls, row: Any) -> Checkpoint:
        return cls(
            seq=int(row.seq),
            head_hash=row.head_hash,
            time=row.time,
            kid=row.kid,
            signature=row.signature,
            policy_revision=None if row.policy_revision is None else int(row.policy_revision),
            policy_digest=row.policy_digest,
            every=None if row.every is None else int(row.every),
        )

    @classmethod
    def from_json(cls, doc: object) -> Checkpoint:
        """A checkpoint kept outside the broker (a witness file, an auditor's report): untrusted input."""
        if not isinstance(doc, dict) or not {"seq", "head_hash", "time", "kid", "signature"} <= set(doc):
            raise AuditVerificationError("not a checkpoint")
        ints = ("seq", "policy_revision", "every")
        for name in _CHECKPOINT_FIELDS:
            value = doc.get(name)
            if value is None and name not in ("seq", "head_hash", "time", "kid", "signature"):
                continue
            want_int = name in ints
            if want_int != (isinstance(value, int) and not isinstance(value, bool)) or (
                not want_int and not isinstance(value, str)
            ):
                raise AuditVerificationError("checkpoint field has the wrong type")
        fields: dict[str, Any] = {name: doc.get(name) for name in _CHECKPOINT_FIELDS}
        return cls(**fields)

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
        # The verified policy head (revision, digest) signed into each checkpoint; set by the service.
        self.policy_state: Callable[[], tuple[int, str] | None] = lambda: None

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
        policy_digest: str | None = None,
        count: int | None = None,
        policy_checkpoint: tuple[int, str] | None = None,
        checkpoint: bool = False,
    ) -> AuditRecord:
        """Append one record in ``conn``'s transaction. Any failure is ``AuditWriteError``.

        ``also_insert``: a row written in the same statement (PostgreSQL) or just before (SQLite), so the
        decision and its record cost one round trip while the ledger head is locked. ``policy_checkpoint``:
        sign a checkpoint of this record now, with that (revision, digest) as the policy high-water mark
        (after a policy update), not only at the cadence; ``checkpoint``: the same with the current state.
        """
        time_s = iso_ms(self._clock())
        refs = {name: self.ref(name, value) for name, value in sorted((ids or {}).items())}
        if not all(_TOKEN.match(v) for v in (action, outcome, code)) or not all(
            _ID_NAME.match(n) for n in refs
        ):
            raise ValueError(
                "audit fields must be plain identifiers"
            )  # never user input: a programming error
        if (policy_digest is not None and not _HEX64.match(policy_digest)) or (
            count is not None and (isinstance(count, bool) or count < 0)
        ):
            raise ValueError("policy digest must be 64 hex, count a non-negative integer")
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
                    digest=policy_digest,
                    count=count,
                )
                row = conn.execute(sql, params).one()
                record = AuditRecord(
                    int(row.out_seq),
                    time_s,
                    action,
                    outcome,
                    code,
                    policy_revision,
                    refs,
                    row.out_prev,
                    policy_digest,
                    count,
                )
                digest = row.out_hash
            else:
                if also_insert is not None:
                    conn.execute(insert(also_insert[0]), dict(also_insert[1]))
                head = conn.execute(_HEAD_BUMP).one()
                record = AuditRecord(
                    int(head.seq),
                    time_s,
                    action,
                    outcome,
                    code,
                    policy_revision,
                    refs,
                    head.hash,
                    policy_digest,
                    count,
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
                        "policy_digest": policy_digest,
                        "count": count,
                    },
                )
                conn.execute(_HEAD_SET, {"hash": digest})
            if checkpoint or policy_checkpoint is not None or record.seq % self.checkpoint_every == 0:
                self._insert_checkpoint(conn, record.seq, digest, policy_checkpoint)
        except EnclaviaError:
            raise
        except (SQLAlchemyError, OSError):
            raise AuditWriteError() from None
        return record

    def _sign(self, seq: int, head_hash: str, state: tuple[int, str] | None) -> Checkpoint:
        unsigned = Checkpoint(
            seq=seq,
            head_hash=head_hash,
            time=iso_ms(self._clock()),
            kid=self.kid,
            signature="",
            policy_revision=state[0] if state else None,
            policy_digest=state[1] if state else None,
            every=self.checkpoint_every,
        )
        signature = self._signing_key.sign(CHECKPOINT_CONTEXT + unsigned.body()).hex()
        return dataclasses.replace(unsigned, signature=signature)

    def _insert_checkpoint(
        self, conn: Connection, seq: int, head_hash: str, state: tuple[int, str] | None = None
    ) -> Checkpoint:
        existing = conn.execute(select(audit_checkpoints).where(audit_checkpoints.c.seq == seq)).first()
        if existing is not None:
            return Checkpoint.from_row(existing)
        cp = self._sign(seq, head_hash, state or self.policy_state())
        conn.execute(insert(audit_checkpoints).values(**cp.to_json()))
        conn.info.setdefault(NEW_CHECKPOINTS, []).append(cp)  # published to witnesses after commit
        return cp

    def checkpoint(self, conn: Connection) -> Checkpoint | None:
        """Sign the current head now (on demand). None while the ledger is empty."""
        try:
            head = conn.execute(
                select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1).with_for_update()
            ).one()
            if head.seq == 0:
                return None
            return self._insert_checkpoint(conn, int(head.seq), head.hash)
        except (SQLAlchemyError, OSError):
            raise AuditWriteError() from None


def latest_checkpoint(conn: Connection) -> Checkpoint | None:
    row = conn.execute(select(audit_checkpoints).order_by(audit_checkpoints.c.seq.desc()).limit(1)).first()
    return None if row is None else Checkpoint.from_row(row)


@dataclass(frozen=True)
class VerifyReport:
    records: int
    checkpoints: int
    head_seq: int
    head_hash: str
    last_checkpoint_seq: int | None
    kid: str
    policy_revisions: int = 0
    external_checkpoints: int = 0


DECISIONS: Final = frozenset({"attest", "release"})
POLICY_CHANGES: Final = frozenset({"policy.update", "policy.adopt"})


def _signed_policies(conn: Connection, public_key: bytes) -> dict[str, int]:
    """Digest -> revision of the verified policy chain (``AuditVerificationError`` if it breaks)."""
    rows = [SignedRevision.from_row(r) for r in conn.execute(select(policies).order_by(policies.c.revision))]
    if any(not r.signature for r in rows) and not any(r.signature for r in rows):
        return {}  # a ledger from before signed policies (the broker signs the chain at its next start)
    try:
        return {v.digest: v.revision for v in verify_chain(rows, public_key)}
    except PolicyChainBrokenError as err:
        raise AuditVerificationError(f"policy history: {err.detail}") from None


@dataclass
class _PolicyWalk:
    """Per-record policy checks: revisions only grow, decisions name a signed revision."""

    signed: Mapping[str, int]
    last_update: int = 0
    signed_era: bool = False
    # Seqs of signed policy changes: each was checkpointed in its own transaction, so each must have one.
    policy_changes: list[int] = dataclasses.field(default_factory=list)

    def check(self, record: AuditRecord) -> None:
        digest, revision = record.policy_digest, record.policy_revision
        if digest is not None:
            self.signed_era = True
            if self.signed.get(digest) != revision:
                raise AuditVerificationError(f"record at seq {record.seq} names an unsigned policy revision")
        if record.action in POLICY_CHANGES and record.outcome == "ok":
            # An update moves to a higher revision; the one-time adoption signs the revision in force.
            floor = self.last_update + (1 if record.action == "policy.update" else 0)
            if revision is None or revision < floor:
                raise AuditVerificationError(f"policy revision went backwards at seq {record.seq}")
            self.last_update = revision
            if digest is not None:
                self.policy_changes.append(record.seq)
        if (
            self.signed_era
            and record.action in DECISIONS
            and record.outcome == "ok"
            and (revision or 0) > 0
            and digest is None
        ):
            raise AuditVerificationError(f"decision at seq {record.seq} names no signed policy revision")


def cadence_gap_ok(prev: Checkpoint | None, cur_seq: int, cur_every: int | None, default: int) -> bool:
    """Checkpoints come at every multiple of the cadence (and on demand in between), so two consecutive
    ones are at most one cadence apart; across a cadence change, at most the two cadences."""
    before = (prev.every if prev else None) or default
    after = cur_every or default
    limit = before if before == after else before + after
    return cur_seq - (prev.seq if prev else 0) <= limit


def _check_cadence(checkpoints: Sequence[Checkpoint], head_seq: int, every: int | None) -> None:
    default = every or DEFAULT_CHECKPOINT_EVERY
    prev: Checkpoint | None = None
    floor = 0
    for cp in checkpoints:
        if not cadence_gap_ok(prev, cp.seq, cp.every, default):
            raise AuditVerificationError(
                f"checkpoint missing between seq {prev.seq if prev else 0} and {cp.seq}"
            )
        if cp.policy_revision is not None:
            if cp.policy_revision < floor:
                raise AuditVerificationError(f"policy revision went backwards at checkpoint {cp.seq}")
            floor = cp.policy_revision
        prev = cp
    if head_seq - (prev.seq if prev else 0) >= ((prev.every if prev else None) or default):
        raise AuditVerificationError(f"checkpoint missing after seq {prev.seq if prev else 0}")


def verify_ledger(
    conn: Connection,
    public_key: bytes,
    *,
    external: Sequence[Checkpoint] = (),
    checkpoint_every: int | None = None,
) -> VerifyReport:
    """Walk the whole ledger. Raise ``AuditVerificationError`` naming the first bad sequence number.

    1. The policy history verifies (signatures, chain) under ``public_key``.
    2. Every record: next seq, linked to the one before, hash matches; policy revisions of updates only
       grow; every decision since signed policies began names the digest of a signed revision.
    3. The head row matches the last record (the tail was not cut off).
    4. Every stored checkpoint is signed and matches the chain; one exists at every multiple of the
       cadence (``checkpoint_every``, else the cadence the checkpoints themselves sign).
    5. Every external checkpoint (a witness's copy, an auditor's report) is signed and the ledger still
       reaches it with the same hash (``LedgerBehindCheckpointError`` otherwise).
    """
    signed = _signed_policies(conn, public_key)
    checkpoints = [
        Checkpoint.from_row(r)
        for r in conn.execute(select(audit_checkpoints).order_by(audit_checkpoints.c.seq))
    ]
    for cp in external:
        cp.verify(public_key)
    wanted = {cp.seq for cp in checkpoints} | {cp.seq for cp in external}
    hashes_at: dict[int, str] = {}
    walk = _PolicyWalk(signed)
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
        walk.check(record)
        if record.seq in wanted:
            hashes_at[record.seq] = digest
        prev, expected_seq = digest, expected_seq + 1
        count += 1
    _check_external(external, hashes_at, count)
    head = conn.execute(select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)).one()
    if int(head.seq) != count or head.hash != prev:
        raise AuditVerificationError(
            "ledger head does not match the last record (records deleted at the end)"
        )
    for cp in checkpoints:
        cp.verify(public_key)
        if cp.seq not in hashes_at or not hmac.compare_digest(hashes_at[cp.seq], cp.head_hash):
            raise AuditVerificationError(f"checkpoint at seq {cp.seq} does not match the chain")
    have = {cp.seq for cp in checkpoints}
    for seq in walk.policy_changes:
        if seq not in have:
            raise AuditVerificationError(f"checkpoint missing at the policy change at seq {seq}")
    _check_cadence(checkpoints, count, checkpoint_every)
    return VerifyReport(
        records=count,
        checkpoints=len(checkpoints),
        head_seq=count,
        head_hash=prev,
        last_checkpoint_seq=checkpoints[-1].seq if checkpoints else None,
        kid=key_id(public_key),
        policy_revisions=len(signed),
        external_checkpoints=len(external),
    )


def _check_external(external: Sequence[Checkpoint], hashes_at: Mapping[int, str], count: int) -> None:
    for cp in external:
        if cp.seq > count:
            raise LedgerBehindCheckpointError(
                f"ledger ends at seq {count}, before the external checkpoint at seq {cp.seq}"
            )
        if not hmac.compare_digest(hashes_at.get(cp.seq, ""), cp.head_hash):
            raise LedgerBehindCheckpointError(
                f"ledger was rewritten before the external checkpoint at seq {cp.seq}"
            )
