"""Transparency log, log side: an append-only RFC 9162 Merkle log of signed releases, stored in SQL.

Tables (``prefix`` lets several logs, or test runs, share one database)::

    {prefix}tlog_leaves  idx PK, leaf_hash UNIQUE, leaf_input, manifest_digest (hex, indexed), appended_at_ms
    {prefix}tlog_heads   tree_size PK, timestamp_ms, root_hash, signature   (one signed head per size)

Appends are serialised (a process lock, ``BEGIN IMMEDIATE`` on SQLite, a ``FOR UPDATE`` lock on the
newest head row on PostgreSQL), so an index is never handed out twice. Each append signs the new head.
Proofs are computed from the leaf hashes, cached in memory and extended incrementally (the log only
grows); at release-log sizes (thousands of entries) that is microseconds to milliseconds.

Only signed releases are accepted; with ``release_keys`` the release signature must verify too, and
with ``approvers`` the k-of-n approvals (otherwise the drift monitor reports unapproved entries).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    LargeBinary,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from enclavia.attestation.release import ApproverSet, parse_signed_release, verify_release
from enclavia.attestation.tlog import (
    InclusionProof,
    LogEntry,
    SignedTreeHead,
    sign_tree_head,
)
from enclavia.crypto.merkle import consistency_path, inclusion_path, leaf_hash, root_from_hashes
from enclavia.crypto.signing import SigningKey
from enclavia.errors import (
    ConsistencyProofError,
    EnclaviaError,
    InclusionProofError,
    LogAppendError,
    StoreUnavailableError,
)

MAX_ENTRIES_PER_PAGE = 256
MAX_LEAF_BYTES = 1 << 20


def _tables(prefix: str) -> tuple[MetaData, Table, Table]:
    if prefix and not prefix.replace("_", "").isalnum():
        raise ValueError("table prefix must be alphanumeric or _")
    md = MetaData()
    leaves = Table(
        f"{prefix}tlog_leaves",
        md,
        Column("idx", BigInteger, primary_key=True, autoincrement=False),
        Column("leaf_hash", LargeBinary(32), nullable=False, unique=True),
        Column("leaf_input", LargeBinary, nullable=False),
        Column("manifest_digest", String(96), nullable=False, index=True),
        Column("appended_at_ms", BigInteger, nullable=False),
    )
    heads = Table(
        f"{prefix}tlog_heads",
        md,
        Column("tree_size", BigInteger, primary_key=True, autoincrement=False),
        Column("timestamp_ms", BigInteger, nullable=False),
        Column("root_hash", LargeBinary(32), nullable=False),
        Column("signature", LargeBinary(64), nullable=False),
    )
    return md, leaves, heads


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin_immediate(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True)


@dataclass(frozen=True)
class AppendResult:
    index: int
    leaf_hash: bytes
    tree_head: SignedTreeHead
    duplicate: bool


class TransparencyLog:
    """The log. Implements :class:`enclavia.attestation.tlog.LogReader`, so a client can use it directly."""

    def __init__(
        self,
        url_or_engine: str | Engine,
        signing_key: SigningKey,
        *,
        prefix: str = "",
        clock: Callable[[], float] = time.time,
        release_keys: Collection[bytes] = (),
        approvers: ApproverSet | None = None,
    ) -> None:
        self._engine = make_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
        self._key = signing_key
        self._clock = clock
        self._release_keys = tuple(release_keys)
        self._approvers = approvers
        self._metadata, self._leaves, self._heads = _tables(prefix)
        self._lock = threading.RLock()
        self._hashes: list[bytes] = []
        try:
            self._metadata.create_all(self._engine)
        except SQLAlchemyError:
            raise StoreUnavailableError() from None
        if self._latest_head() is None:
            self._sign_head_for(0)

    @property
    def public_key(self) -> bytes:
        return self._key.public_bytes

    def dispose(self) -> None:
        self._engine.dispose()

    def drop(self) -> None:
        """Drop this log's tables (tests)."""
        self._metadata.drop_all(self._engine)

    # -- internals -----------------------------------------------------------------------------

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _sync_hashes(self) -> list[bytes]:
        """Leaf hashes of every committed entry, loaded incrementally (entries never change)."""
        with self._lock:
            try:
                with self._engine.connect() as conn:
                    rows = conn.execute(
                        select(self._leaves.c.idx, self._leaves.c.leaf_hash)
                        .where(self._leaves.c.idx >= len(self._hashes))
                        .order_by(self._leaves.c.idx)
                    ).all()
            except SQLAlchemyError:
                raise StoreUnavailableError() from None
            for idx, h in rows:
                if idx != len(self._hashes):
                    raise StoreUnavailableError("log table has a gap")
                self._hashes.append(bytes(h))
            return self._hashes

    def _hashes_upto(self, size: int) -> list[bytes]:
        hashes = self._sync_hashes()
        if size > len(hashes):
            raise ValueError("tree size beyond the log")
        return hashes[:size]

    def _latest_head(self) -> SignedTreeHead | None:
        try:
            with self._engine.connect() as conn:
                row = conn.execute(
                    select(self._heads).order_by(self._heads.c.tree_size.desc()).limit(1)
                ).first()
        except SQLAlchemyError:
            raise StoreUnavailableError() from None
        if row is None:
            return None
        return SignedTreeHead(
            self._key_log_id(),
            int(row.tree_size),
            int(row.timestamp_ms),
            bytes(row.root_hash),
            bytes(row.signature),
        )

    def _key_log_id(self) -> bytes:
        from enclavia.attestation.tlog import log_id_for

        return log_id_for(self._key.public_bytes)

    def _sign_head_for(self, size: int) -> SignedTreeHead:
        root = root_from_hashes(self._hashes_upto(size))
        sth = sign_tree_head(self._key, size, self._now_ms(), root)
        try:
            with self._engine.begin() as conn:
                conn.execute(
                    self._heads.insert().values(
                        tree_size=size, timestamp_ms=sth.timestamp, root_hash=root, signature=sth.signature
                    )
                )
        except IntegrityError:
            pass  # another process signed this size first: serve its head
        except SQLAlchemyError:
            raise StoreUnavailableError() from None
        head = self._latest_head()
        assert head is not None
        return head

    def _check_leaf(self, leaf: bytes) -> str:
        if not 0 < len(leaf) <= MAX_LEAF_BYTES:
            raise LogAppendError("leaf size out of range")
        try:
            release = parse_signed_release(leaf)
        except EnclaviaError:
            raise LogAppendError("leaf is not a signed release") from None
        if release.encode() != leaf:
            raise LogAppendError("leaf is not in canonical form")
        if self._release_keys:
            try:
                verify_release(release, release_keys=self._release_keys, approvers=self._approvers)
            except EnclaviaError:
                raise LogAppendError("release signature or approvals do not verify") from None
        return release.record.manifest_digest.hex()

    # -- writer --------------------------------------------------------------------------------

    def append(self, leaf: bytes) -> AppendResult:
        """Append one signed release (its canonical bytes); idempotent for a leaf already present."""
        digest_hex = self._check_leaf(leaf)
        h = leaf_hash(leaf)
        with self._lock:
            for _ in range(5):
                try:
                    with self._engine.begin() as conn:
                        existing = conn.execute(
                            select(self._leaves.c.idx).where(self._leaves.c.leaf_hash == h)
                        ).scalar()
                        if existing is not None:
                            break
                        # serialise writers: lock the newest head row (PostgreSQL); SQLite: BEGIN IMMEDIATE
                        conn.execute(
                            select(self._heads.c.tree_size)
                            .order_by(self._heads.c.tree_size.desc())
                            .limit(1)
                            .with_for_update()
                        ).first()
                        size = int(conn.execute(select(func.count()).select_from(self._leaves)).scalar_one())
                        conn.execute(
                            self._leaves.insert().values(
                                idx=size,
                                leaf_hash=h,
                                leaf_input=leaf,
                                manifest_digest=digest_hex,
                                appended_at_ms=self._now_ms(),
                            )
                        )
                    break
                except IntegrityError:
                    continue  # raced another writer for the index or the same leaf: look again
                except SQLAlchemyError:
                    raise StoreUnavailableError() from None
            else:
                raise StoreUnavailableError("append kept racing")
            if existing is not None:
                return AppendResult(int(existing), h, self.get_sth(), True)
            sth = self._sign_head_for(size + 1)
            return AppendResult(size, h, sth, False)

    # -- reader (LogReader) ----------------------------------------------------------------------

    def get_sth(self) -> SignedTreeHead:
        head = self._latest_head()
        size = len(self._sync_hashes())
        if head is None or head.tree_size < size:
            return self._sign_head_for(size)  # a writer died between the leaf and its head
        return head

    def size(self) -> int:
        return len(self._sync_hashes())

    def get_inclusion_proof(self, leaf_hash: bytes, tree_size: int) -> InclusionProof:
        hashes = self._sync_hashes()
        if not 0 < tree_size <= len(hashes):
            raise InclusionProofError("tree size out of range")
        try:
            with self._engine.connect() as conn:
                idx = conn.execute(
                    select(self._leaves.c.idx).where(self._leaves.c.leaf_hash == leaf_hash)
                ).scalar()
        except SQLAlchemyError:
            raise StoreUnavailableError() from None
        if idx is None or idx >= tree_size:
            raise InclusionProofError("leaf not in the tree of this size")
        return InclusionProof(int(idx), tree_size, tuple(inclusion_path(int(idx), hashes[:tree_size])))

    def get_consistency_proof(self, first: int, second: int) -> Sequence[bytes]:
        hashes = self._sync_hashes()
        if not 0 < first <= second <= len(hashes):
            raise ConsistencyProofError("sizes out of range")
        return consistency_path(first, hashes[:second])

    def get_entries(self, start: int, end: int) -> list[LogEntry]:
        """Entries ``start``..``end`` inclusive (RFC 6962 get-entries), at most 256 at a time."""
        if start < 0 or end < start:
            raise ValueError("need 0 <= start <= end")
        end = min(end, start + MAX_ENTRIES_PER_PAGE - 1)
        try:
            with self._engine.connect() as conn:
                rows = conn.execute(
                    select(self._leaves.c.idx, self._leaves.c.leaf_input)
                    .where(self._leaves.c.idx >= start, self._leaves.c.idx <= end)
                    .order_by(self._leaves.c.idx)
                ).all()
        except SQLAlchemyError:
            raise StoreUnavailableError() from None
        return [LogEntry(int(i), bytes(leaf)) for i, leaf in rows]

    def lookup(self, manifest_digest: bytes) -> list[LogEntry]:
        try:
            with self._engine.connect() as conn:
                rows = conn.execute(
                    select(self._leaves.c.idx, self._leaves.c.leaf_input)
                    .where(self._leaves.c.manifest_digest == manifest_digest.hex())
                    .order_by(self._leaves.c.idx)
                    .limit(MAX_ENTRIES_PER_PAGE)
                ).all()
        except SQLAlchemyError:
            raise StoreUnavailableError() from None
        return [LogEntry(int(i), bytes(leaf)) for i, leaf in rows]
