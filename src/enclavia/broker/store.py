"""Broker storage: SQLAlchemy 2 Core tables, engines for SQLite and PostgreSQL, Alembic at start.

Schema (migrations/versions/ are the source of truth for DDL; these tables mirror them). Nothing read back
from these tables is trusted for a decision unless it verifies under the broker's key (docs/threat-model.md):

* ``policy_head`` (one row): the current policy revision (0 = none). Releases read it under a shared
  policy lock, updates hold it exclusively (``Store.lock_policy``): a release either commits before an
  update or sees the new revision.
* ``policies``: every applied revision's YAML, signed and chained by the broker key (``policychain``);
  ``policy_head`` is only a lock anchor and a hint: the revision in force is the verified chain's head.
* ``secret_versions``: (path, version) -> data key wrapped by the key store, value encrypted under it.
* ``challenges``: outstanding single-use nonces with their expiry (deleted when consumed).
* ``attestations``: jti -> attested key config and claims, for the token's lifetime.
* ``audit_head`` (one row), ``audit_records``, ``audit_checkpoints``: the hash-chained ledger.
* ``key_material``: the broker's signing and audit keys, wrapped by the key store.

Every database failure surfaces as ``StoreUnavailableError`` (503). On SQLite each transaction starts with
``BEGIN IMMEDIATE`` (one writer at a time, WAL so readers do not block); PostgreSQL runs READ COMMITTED
with the row locks named above.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    create_engine,
    event,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from enclavia.errors import EnclaviaError, StoreUnavailableError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
ASYNC_COMMIT_FLAG = "enclavia.async_commit"
NEW_CHECKPOINTS = "enclavia.new_checkpoints"  # conn.info: checkpoints signed in this transaction
_PG_MIGRATION_LOCK = 0x656E636C61766961  # "enclavia": advisory lock id for concurrent starts
_PG_POLICY_LOCK = 0x656E636C706F6C31  # releases share it, policy updates take it exclusively

metadata = MetaData()

policy_head = Table(
    "policy_head",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("revision", Integer, nullable=False),
    Column("updated_at_ms", BigInteger, nullable=False),
)
policies = Table(
    "policies",
    metadata,
    Column("revision", Integer, primary_key=True),
    Column("policy_id", String(128), nullable=False),
    Column("source", Text, nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("prev_digest", String(64), nullable=True),
    Column("digest", String(64), nullable=True),
    Column("signature", String(128), nullable=True),
)
secret_versions = Table(
    "secret_versions",
    metadata,
    Column("path", String(256), nullable=False),
    Column("version", Integer, nullable=False),
    Column("wrapped_key", LargeBinary, nullable=True),
    Column("ciphertext", LargeBinary, nullable=True),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("destroyed_at_ms", BigInteger, nullable=True),
    PrimaryKeyConstraint("path", "version"),
)
challenges = Table(
    "challenges",
    metadata,
    Column("nonce", String(128), primary_key=True),
    Column("expires_at_ms", BigInteger, nullable=False),
)
attestations = Table(
    "attestations",
    metadata,
    Column("jti", String(64), primary_key=True),
    Column("key_config", LargeBinary, nullable=False),
    Column("claims", Text, nullable=False),
    Column("policy_revision", Integer, nullable=False),
    Column("expires_at_ms", BigInteger, nullable=False),
)
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)
audit_records = Table(
    "audit_records",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("time", String(32), nullable=False),
    Column("action", String(32), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("code", String(64), nullable=False),
    Column("policy_revision", Integer, nullable=True),
    Column("ids", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("policy_digest", String(64), nullable=True),
    Column("count", BigInteger, nullable=True),
)
audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("head_hash", String(64), nullable=False),
    Column("time", String(32), nullable=False),
    Column("kid", String(32), nullable=False),
    Column("signature", String(128), nullable=False),
    Column("policy_revision", Integer, nullable=True),
    Column("policy_digest", String(64), nullable=True),
    Column("every", Integer, nullable=True),
)
key_material = Table(
    "key_material",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("wrapped", LargeBinary, nullable=False),
    Column("public", LargeBinary, nullable=True),
    Column("created_at_ms", BigInteger, nullable=False),
)


def now_ms() -> int:
    return int(time.time() * 1000)


def redact_url(url: str) -> str:
    """The URL without its password (for logs and errors)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is shown as nothing at all
        return "<invalid url>"


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30},
        pool_size=8,
        max_overflow=24,
        pool_timeout=10,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _: Any) -> None:
        # Let SQLAlchemy's begin event issue BEGIN IMMEDIATE instead of pysqlite's deferred BEGIN.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _pg_engine(url: str) -> Engine:
    return create_engine(
        url,
        pool_size=24,
        max_overflow=24,
        pool_timeout=10,
        connect_args={"connect_timeout": 3, "application_name": "enclavia-broker"},
    )


def make_engine(url: str) -> Engine:
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        return _sqlite_engine(url)
    if u.get_backend_name() == "postgresql":
        return _pg_engine(url)
    raise ValueError("broker database must be sqlite or postgresql")


class Store:
    """An engine plus the transaction discipline every repository call uses."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.dialect = self.engine.dialect.name
        # SQLite allows one writer; queue this process's threads on a lock instead of letting them spin in
        # SQLite's busy handler (which sleeps in growing steps and ruins tail latency).
        self._writer = threading.Lock() if self.dialect == "sqlite" else contextlib.nullcontext()
        # Called with the checkpoints a transaction signed, once it has committed (publish to witnesses).
        self.on_commit: Callable[[list[Any]], None] | None = None

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @contextlib.contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[Connection]:
        """One database transaction. Commits on normal exit, rolls back on any exception.

        Database failures become ``StoreUnavailableError``; enclavia errors raised inside pass through.
        ``durable=False`` (PostgreSQL): commit without waiting for the WAL flush. Used only for issuing
        challenges: a crash may lose the last few challenges and their audit records, never a later
        record (WAL is sequential, so any durable commit makes every earlier one durable too).
        """
        pending: list[Any] = []
        try:
            with self._writer, self.engine.begin() as conn:
                try:
                    if durable:
                        yield conn
                    else:
                        # Applied by the audit append (audit.ASYNC_COMMIT_FLAG): one round trip fewer.
                        conn.info[ASYNC_COMMIT_FLAG] = True
                        try:
                            yield conn
                        finally:
                            conn.info.pop(ASYNC_COMMIT_FLAG, None)
                finally:
                    # conn.info outlives the checkout (it belongs to the pooled connection): always clear it.
                    pending = conn.info.pop(NEW_CHECKPOINTS, [])
        except EnclaviaError:
            raise
        except (OperationalError, PoolTimeoutError, DBAPIError, SQLAlchemyError, OSError):
            raise StoreUnavailableError() from None
        if pending and self.on_commit is not None:
            self.on_commit(pending)

    def lock_policy(self, conn: Connection, *, exclusive: bool) -> None:
        """Order releases against policy updates (PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises).

        A transaction-scoped advisory lock, not ``SELECT ... FOR SHARE``: PostgreSQL queues row-lock
        waiters unfairly, so a steady stream of share lockers can starve a policy update forever. The
        heavyweight lock manager queues a new shared request behind a waiting exclusive one. Take it before
        reading ``policy_head``: in READ COMMITTED the next statement then sees the committed revision.
        """
        if self.is_postgres:
            fn = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
            conn.execute(text(f"SELECT {fn}(:k)"), {"k": _PG_POLICY_LOCK})

    def ping(self) -> None:
        with self.transaction() as conn:
            conn.execute(text("SELECT 1"))

    def migrate(self) -> None:
        """Bring the schema to head with Alembic (run programmatically; safe for concurrent starts)."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        try:
            with self.engine.begin() as conn:
                if self.is_postgres:
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
        except (OperationalError, PoolTimeoutError, DBAPIError, OSError):
            raise StoreUnavailableError() from None

    def dispose(self) -> None:
        self.engine.dispose()


def fingerprint(public_key: bytes) -> str:
    return hashlib.sha256(public_key).hexdigest()[:16]
