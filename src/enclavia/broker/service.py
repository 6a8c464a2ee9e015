"""The key broker: challenge, attest, release (KBS protocol) and an admin API; FastAPI over ``BrokerService``.

Protocol (DESIGN.md, docs/broker.md)::

    POST /kbs/v1/challenge                     -> {"nonce": hex(32 bytes), "expires_at": iso}
    POST /kbs/v1/attest     {"bundle": {...}}  -> {"token": JWS, "expires_at": iso, "result": {...}}
    GET  /kbs/v1/secrets/{path}[?version=N]    -> {"path", "version", "policy_revision", "jti",
         Authorization: Bearer <token>             "current_version", "enc", "ciphertext"}
                                                  (base64; HPKE to the attested key config)

Every decision (and every denial, with its stable code) is appended to the audit ledger in the same
database transaction as the decision: if the append fails, the request fails with it. Errors are RFC 9457
problem+json bodies with fixed text; nothing from the request is echoed or logged.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from sqlalchemy import Connection, Integer, bindparam, delete, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from enclavia.attestation.bundle import AttestationBundle
from enclavia.broker import tokens
from enclavia.broker.audit import Checkpoint, Ledger, cadence_gap_ok, iso_ms, latest_checkpoint
from enclavia.broker.keystore import KeyStore, open_keystore
from enclavia.broker.policychain import (
    GENESIS,
    PolicyGuard,
    SignedRevision,
    VerifiedRevision,
    sign_revision,
)
from enclavia.broker.store import (
    Store,
    attestations,
    audit_checkpoints,
    audit_head,
    audit_records,
    challenges,
    key_material,
    policies,
    policy_head,
    secret_versions,
)
from enclavia.broker.surface import Aggregates, SourceLimiter, source_of
from enclavia.broker.verify import AttestedEnclave, parse, verify_presented_bundle
from enclavia.broker.witness import Witnesses
from enclavia.crypto import aead
from enclavia.crypto.kbs import release_aad, seal_secret
from enclavia.crypto.signing import SigningKey
from enclavia.errors import (
    AdminUnauthorizedError,
    AuditVerificationError,
    AuditWriteError,
    BadRequestError,
    BrokerRateLimitedError,
    CryptoError,
    DecryptionError,
    EnclaviaError,
    EvidenceFormatError,
    LedgerBehindWitnessError,
    MeasurementNotAllowedError,
    NotFoundError,
    PayloadTooLargeError,
    PolicyChainBrokenError,
    PolicyRevisionConflictError,
    ReplayedNonceError,
    SecretExistsError,
    SecretNotFoundError,
    SecretPathInvalidError,
    StoreTamperedError,
    StoreUnavailableError,
    TokenInvalidError,
    TokenStaleError,
)
from enclavia.policy.document import Policy, parse_policy
from enclavia.policy.rules import cel_claims, check_release, validate_secret_path
from enclavia.problem import PROBLEM_MEDIA_TYPE, problem_bytes

NONCE_LEN: Final = 32
MAX_SECRET_BYTES: Final = 64 << 10
MAX_ATTEST_BODY: Final = (2 << 20) + 1024
MAX_ADMIN_BODY: Final = (1 << 20) + 1024
KEY_CONTEXT: Final = b"enclavia-broker-key-v1\x00"
DEK_CONTEXT: Final = b"enclavia-secret-dek-v1\x00"
PURGE_EVERY: Final = 256
RETRY_INIT_S: Final = 1.0
# Identifier kinds the ledger stores as HMACs (see audit.py); a report digest is added by broker.ops.
AUDIT_ID_NAMES: Final = frozenset({"secret", "jti", "nonce", "measurement", "policy_id", "report"})


@dataclass(frozen=True)
class BrokerConfig:
    db_url: str = "sqlite:///.enclavia/broker.db"
    keystore: str = "file:.enclavia/broker-root.key"
    admin_token: str | None = None
    audience: str = "enclavia-kbs"
    token_ttl_s: int = 60
    challenge_ttl_s: int = 60
    checkpoint_every: int = 256
    witnesses: tuple[str, ...] = ()  # file:PATH or http(s) URLs each checkpoint is published to
    metrics_token: str | None = None  # bearer token /metrics requires (None: open, e.g. a sidecar scrape)
    challenge_rate: float = 5.0  # challenges per second per source (broker.surface)
    challenge_burst: float = 50.0
    admin_fail_rate: float = 0.2  # failed admin authentications per second per source
    admin_fail_burst: float = 10.0
    aggregate_every_s: float = 60.0  # ledger aggregate window for challenges and failed admin logins
    bootstrap_policy: str | None = None  # YAML applied at start when the store has no policy yet
    # Sign a policy history that predates signing, once, at the upgrade start. The operator's choice (a
    # process argument), never the database's: a store wiped to look old would otherwise get its text signed.
    adopt_unsigned_policies: bool = False
    threads: int = 8  # blocking work in flight per process (more threads only queue on the GIL and locks)

    def __repr__(self) -> str:
        return f"BrokerConfig(audience={self.audience!r}, token_ttl_s={self.token_ttl_s})"


class BrokerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.decisions = Counter(
            "enclavia_broker_decisions",
            "Broker decisions by action, outcome and code",
            ["action", "outcome", "code"],
            registry=r,
        )
        self.release_denials = Counter(
            "enclavia_broker_key_release_denials", "Key-release denials by code", ["code"], registry=r
        )
        self.attestation_failures = Counter(
            "enclavia_broker_attestation_failures", "Attestations refused by code", ["code"], registry=r
        )
        self.latency = Histogram(
            "enclavia_broker_request_seconds",
            "Broker request latency by route and outcome (ok or the error code)",
            ["route", "outcome"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )
        self.store_errors = Counter(
            "enclavia_broker_store_unavailable", "Requests refused because the store was down", registry=r
        )
        self.witness_failures = Counter(
            "enclavia_broker_witness_failures",
            "Checkpoints a witness sink did not take",
            ["sink"],
            registry=r,
        )
        self.integrity_failures = Counter(
            "enclavia_broker_integrity_failures",
            "Stored state that failed verification (policy chain, ledger behind a witness): an alert",
            ["code"],
            registry=r,
        )


_SELECT_REVISION = select(policy_head.c.revision).where(policy_head.c.id == 1)
# Consume a challenge and read the revision in force, in one round trip.
_CONSUME_CHALLENGE = text(
    "DELETE FROM challenges WHERE nonce = :nonce AND expires_at_ms > :now"
    " RETURNING (SELECT revision FROM policy_head WHERE id = 1) AS revision"
)
# The revision in force, the attestation behind a token and the secret version asked for (or the newest
# live one), in one round trip. Missing attestation or secret: NULL columns.
_RELEASE_LOOKUP = text(
    "SELECT ph.revision AS revision, a.key_config AS key_config, a.claims AS claims,"
    " a.expires_at_ms AS expires_at_ms, s.version AS version, s.wrapped_key AS wrapped_key,"
    " s.ciphertext AS ciphertext,"
    " (SELECT MAX(c.version) FROM secret_versions c WHERE c.path = :path AND c.destroyed_at_ms IS NULL)"
    "   AS current_version"
    " FROM policy_head ph"
    " LEFT JOIN attestations a ON a.jti = :jti"
    " LEFT JOIN secret_versions s ON s.path = :path AND s.destroyed_at_ms IS NULL AND s.version = COALESCE("
    "   :version, (SELECT MAX(v.version) FROM secret_versions v"
    "              WHERE v.path = :path AND v.destroyed_at_ms IS NULL))"
    " WHERE ph.id = 1"
).bindparams(bindparam("version", type_=Integer))


def _cel_for(attested: AttestedEnclave) -> dict[str, Any]:
    result = attested.result
    claims = result.claims
    return cel_claims(
        tee=str(result.tee),
        measurement=result.measurement,
        debug=claims.debug,
        reference=result.reference_name,
        policy_id=result.policy_id,
        policy_revision=result.policy_revision,
        measurements={k: v.hex() for k, v in claims.measurements.items()},
        tcb={k: v for k, v in claims.tcb.items() if isinstance(v, (str, int, bool))},
    )


@dataclass
class _Runtime:
    keystore: KeyStore
    signing_key: SigningKey
    ledger: Ledger


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _json_object(body: bytes, limit: int) -> dict[str, Any]:
    if len(body) > limit:
        raise PayloadTooLargeError()
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BadRequestError("body is not valid JSON") from None
    if not isinstance(doc, dict):
        raise BadRequestError("body must be a JSON object")
    return doc


def _bearer(authorization: str | None) -> str:
    if not authorization or not authorization.startswith("Bearer "):
        raise TokenInvalidError("bearer token missing")
    return authorization[len("Bearer ") :].strip()


def _secret_record_aad(path: str, version: int) -> bytes:
    return json.dumps({"path": path, "version": version}, sort_keys=True, separators=(",", ":")).encode()


class BrokerService:
    """Framework-free broker logic; ``create_app`` puts HTTP around it. Thread-safe."""

    def __init__(
        self,
        config: BrokerConfig,
        *,
        clock: Callable[[], float] = time.time,
        keystore: KeyStore | None = None,
        metrics: BrokerMetrics | None = None,
        log: Callable[..., Any] | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.metrics = metrics or BrokerMetrics()
        self.log = log or (lambda *a, **k: None)
        self.store = Store(config.db_url)
        self._keystore = keystore
        self._runtime: _Runtime | None = None
        self._init_lock = threading.Lock()
        self._last_init_attempt = 0.0
        self._init_error: StoreUnavailableError | None = None
        self._guard: PolicyGuard | None = None
        self._aggregates = Aggregates(config.aggregate_every_s, time.monotonic)
        self._challenge_limit = SourceLimiter(config.challenge_rate, config.challenge_burst, time.monotonic)
        self._admin_limit = SourceLimiter(config.admin_fail_rate, config.admin_fail_burst, time.monotonic)
        self._signing_public = b""  # set once the key is loaded (witnesses publish during start-up too)
        self._witnesses = Witnesses(config.witnesses, lambda: self._signing_public, self._witness_result)
        self.store.on_commit = self._witnesses.publish
        self._challenge_count = 0

    # -- start-up --------------------------------------------------------------------------------

    def start(self) -> bool:
        """Try to initialise now (migrations, keys, bootstrap policy). False if the store is down: the
        service still answers, with 503, and retries on later requests."""
        try:
            self._ready(force=True)
        except StoreUnavailableError:
            return False
        return True

    def _ready(self, force: bool = False) -> _Runtime:
        rt = self._runtime
        if rt is not None:
            return rt
        with self._init_lock:
            if self._runtime is not None:
                return self._runtime
            now = time.monotonic()
            if not force and now - self._last_init_attempt < RETRY_INIT_S:
                self.metrics.store_errors.inc()
                raise self._init_error or StoreUnavailableError()
            self._last_init_attempt = now
            try:
                self._runtime = self._initialise()
            except StoreUnavailableError as err:
                self._init_error = err  # the same typed error until a retry succeeds (e.g. tampering)
                self.metrics.store_errors.inc()
                self.log("broker.store_error", stage="start", error_code=err.code)
                raise
            return self._runtime

    def _initialise(self) -> _Runtime:
        self.store.migrate()
        keystore = self._keystore or open_keystore(self.config.keystore)
        self._keystore = keystore
        signing_seed = self._key(keystore, "signing", _new_signing)
        audit_key = self._key(keystore, "audit", lambda: (secrets.token_bytes(32), None))
        signing_key = SigningKey.from_private_bytes(signing_seed)
        self._signing_public = signing_key.public_bytes
        ledger = Ledger(
            audit_key, signing_key, checkpoint_every=self.config.checkpoint_every, clock=self.clock
        )
        rt = _Runtime(keystore=keystore, signing_key=signing_key, ledger=ledger)
        guard = PolicyGuard(signing_key.public_bytes, self._integrity_alert)
        ledger.policy_state = guard.state
        self._guard = guard
        try:
            self._adopt_legacy_policies(rt)
            self._load_policies(rt, guard)
        except StoreTamperedError:
            return rt  # the guard is broken: every decision refuses, with the same typed error
        if self.config.bootstrap_policy is not None:
            self._bootstrap_policy(rt, self.config.bootstrap_policy)
        return rt

    def _witness_result(self, sink: str, ok: bool, seq: int) -> None:
        if not ok:
            self.metrics.witness_failures.labels(sink).inc()
        self.log("broker.witness", sink=sink, outcome="ok" if ok else "error", seq=seq)

    def _integrity_alert(self, error: StoreTamperedError) -> None:
        self.metrics.integrity_failures.labels(error.code).inc()
        self.log("broker.integrity", check=error.code, error_code=error.code)

    def _load_policies(self, rt: _Runtime, guard: PolicyGuard) -> None:
        """Verify the stored policy history and the high-water mark: the highest revision the signed
        checkpoints (and the ledger's policy updates) have seen. Any break leaves ``guard`` broken."""
        with self.store.transaction() as conn:
            rows = [
                SignedRevision.from_row(r)
                for r in conn.execute(select(policies).order_by(policies.c.revision))
            ]
            floor = self._signed_floor(conn, rt, guard)
            head_revision = int(conn.execute(_SELECT_REVISION).scalar_one())
        guard.load(rows, floor)
        if head_revision != (guard.head.revision if guard.head else 0):
            guard.fail(PolicyChainBrokenError("policy head does not name the newest signed revision"))

    def _signed_floor(self, conn: Connection, rt: _Runtime, guard: PolicyGuard) -> int:
        cp = latest_checkpoint(conn)
        head = conn.execute(select(audit_head.c.seq)).scalar_one()
        if cp is not None:
            try:
                cp.verify(rt.signing_key.public_bytes)
            except AuditVerificationError:
                guard.fail(StoreTamperedError("latest ledger checkpoint does not verify"))
        if not cadence_gap_ok(cp, int(head), self.config.checkpoint_every, self.config.checkpoint_every):
            guard.fail(
                StoreTamperedError("ledger checkpoints missing: the policy high-water mark is unknown")
            )
        witnessed = self._witnessed_floor(conn, rt, guard)
        updates = conn.execute(
            select(func.max(audit_records.c.policy_revision)).where(
                audit_records.c.action == "policy.update", audit_records.c.outcome == "ok"
            )
        ).scalar_one()
        return max(int(updates or 0), (cp.policy_revision or 0) if cp else 0, witnessed)

    def _witnessed_floor(self, conn: Connection, rt: _Runtime, guard: PolicyGuard) -> int:
        """The last checkpoint this broker published to its file witness, if any: the ledger must still
        reach it (a database restored to an older state, or cut, is refused)."""
        cp = self._witnesses.last_published(rt.signing_key.public_bytes)
        if cp is None:
            return 0
        row = conn.execute(select(audit_records.c.hash).where(audit_records.c.seq == cp.seq)).first()
        if row is None or not hmac.compare_digest(str(row.hash), cp.head_hash):
            guard.fail(
                LedgerBehindWitnessError(f"ledger does not reach the witnessed checkpoint at seq {cp.seq}")
            )
        return cp.policy_revision or 0

    def _adopt_legacy_policies(self, rt: _Runtime) -> None:
        """Once, at the first start after the upgrade to signed policies, when the operator asks for it
        (``adopt_unsigned_policies``): sign the existing history. Only while no signed state exists at all
        (no signed row, no checkpoint or record naming a policy): an attacker who strips the signatures
        later meets a broken chain, not a second adoption. Without the flag, unsigned rows are a broken
        chain."""
        if not self.config.adopt_unsigned_policies:
            return
        with self.store.transaction() as conn:
            self.store.lock_policy(conn, exclusive=True)
            rows = list(conn.execute(select(policies).order_by(policies.c.revision).with_for_update()))
            if not rows or any(r.signature for r in rows):
                return
            signed_state = (
                conn.execute(
                    select(func.count())
                    .select_from(audit_checkpoints)
                    .where(audit_checkpoints.c.policy_revision.is_not(None))
                ).scalar_one()
                + conn.execute(
                    select(func.count())
                    .select_from(audit_records)
                    .where(audit_records.c.policy_digest.is_not(None))
                ).scalar_one()
            )
            if signed_state:
                return  # unsigned rows in a signed history: the chain check refuses them
            prev: VerifiedRevision | None = None
            for row in rows:
                try:
                    policy = parse_policy(row.source)
                except EnclaviaError:
                    return  # left unsigned: the chain check refuses it
                signed = sign_revision(rt.signing_key, policy, prev.digest if prev else GENESIS)
                conn.execute(
                    update(policies)
                    .where(policies.c.revision == row.revision)
                    .values(prev_digest=signed.prev_digest, digest=signed.digest, signature=signed.signature)
                )
                prev = VerifiedRevision(signed, policy)
            assert prev is not None
            rt.ledger.append(
                conn,
                action="policy.adopt",
                outcome="ok",
                code="ok",
                policy_revision=prev.revision,
                policy_digest=prev.digest,
                policy_checkpoint=(prev.revision, prev.digest),
            )

    def _key(self, keystore: KeyStore, name: str, make: Callable[[], tuple[bytes, bytes | None]]) -> bytes:
        context = KEY_CONTEXT + name.encode()
        with self.store.transaction() as conn:
            row = conn.execute(select(key_material).where(key_material.c.name == name)).first()
            ledger_height = int(conn.execute(select(audit_head.c.seq)).scalar_one())
        if row is None and ledger_height > 0:
            # A database with a ledger always has its keys: a deleted key row would otherwise give the
            # broker a new identity whose signatures nothing pinned recognises.
            raise StoreTamperedError("broker key missing from a database that has a ledger")
        if row is None:
            secret, public = make()
            try:
                with self.store.engine.begin() as conn:
                    conn.execute(
                        insert(key_material).values(
                            name=name,
                            wrapped=keystore.wrap(secret, context),
                            public=public,
                            created_at_ms=int(self.clock() * 1000),
                        )
                    )
            except IntegrityError:
                pass  # another worker created it first; use theirs
            with self.store.transaction() as conn:
                row = conn.execute(select(key_material).where(key_material.c.name == name)).one()
        try:
            return keystore.unwrap(row.wrapped, context)
        except DecryptionError:
            raise StoreUnavailableError(
                "key store does not hold the key this database was made with"
            ) from None

    def _bootstrap_policy(self, rt: _Runtime, text: str) -> None:
        policy = parse_policy(text)
        with self.store.transaction() as conn:
            self.store.lock_policy(conn, exclusive=True)
            head = conn.execute(
                select(policy_head.c.revision).where(policy_head.c.id == 1).with_for_update()
            ).one()
            if head.revision != 0:
                return
            verified = self._write_policy(conn, rt, policy, head.revision)
        self._policy_guard().accept(verified)

    def _policy_guard(self) -> PolicyGuard:
        guard = self._guard
        if guard is None:
            raise StoreUnavailableError()
        return guard

    @property
    def public_key(self) -> bytes:
        return self._ready().signing_key.public_bytes

    # -- helpers ---------------------------------------------------------------------------------

    def _verified(self, conn: Connection, revision: int) -> VerifiedRevision | None:
        """The verified revision the store says is in force (``PolicyChainBrokenError`` if it cannot be)."""

        def fetch(lo: int, hi: int) -> list[SignedRevision]:
            query = select(policies).where(policies.c.revision >= lo, policies.c.revision <= hi)
            return [SignedRevision.from_row(r) for r in conn.execute(query.order_by(policies.c.revision))]

        return self._policy_guard().at(revision, fetch)

    def _policy(self, conn: Connection, revision: int) -> Policy | None:
        verified = self._verified(conn, revision)
        return verified.policy if verified else None

    def _checked_digest(
        self, conn: Connection, revision: int
    ) -> tuple[str | None, StoreTamperedError | None]:
        """The signed digest a decision under ``revision`` names in its ledger record, or the integrity
        error that refuses the decision (recorded as a denial with that code)."""
        try:
            verified = self._verified(conn, revision)
        except StoreTamperedError as exc:
            return None, exc
        return (verified.digest if verified else None), None

    def _record(self, action: str, outcome: str, code: str, **fields: Any) -> None:
        self.metrics.decisions.labels(action, outcome, code).inc()
        self.log(
            "broker.event",
            action=action,
            outcome=outcome,
            error_code=None if code == "ok" else code,
            **fields,
        )

    def _now_dt(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), tz=UTC)

    # -- protocol --------------------------------------------------------------------------------

    def challenge(self, source: str = "local") -> dict[str, Any]:
        """A single-use nonce. Anonymous: limited per source, and counted in the ledger's periodic
        aggregate instead of one record each (broker.surface)."""
        self._ready()
        self.flush_aggregates()
        if not self._challenge_limit.allow(source):
            self._count_surface("challenge", "denied", BrokerRateLimitedError.code)
            raise BrokerRateLimitedError()
        now = self.clock()
        nonce = secrets.token_bytes(NONCE_LEN)
        expires = now + self.config.challenge_ttl_s
        with self.store.transaction(durable=False) as conn:
            if self.store.is_postgres:  # a lost challenge costs a retry, never a record (none is written)
                conn.execute(text("SET LOCAL synchronous_commit = off"))
            conn.execute(insert(challenges).values(nonce=nonce.hex(), expires_at_ms=int(expires * 1000)))
            self._challenge_count += 1
            if self._challenge_count % PURGE_EVERY == 0:
                self._purge(conn, now)
        self._count_surface("challenge", "ok", "ok")
        return {"nonce": nonce.hex(), "expires_at": iso_ms(expires)}

    def _count_surface(self, action: str, outcome: str, code: str) -> None:
        self._aggregates.add(action, outcome, code)
        self._record(action, outcome, code)

    def flush_aggregates(self, *, force: bool = False) -> int:
        """Write the finished window's counts as aggregate records, then a signed checkpoint."""
        items = self._aggregates.take_due(force=force)
        if not items:
            return 0
        rt = self._ready()
        try:
            with self.store.transaction() as conn:
                for i, ((action, outcome, code), n) in enumerate(items):
                    rt.ledger.append(
                        conn,
                        action=action,
                        outcome=outcome,
                        code=code,
                        count=n,
                        checkpoint=i == len(items) - 1,
                    )
        except (StoreUnavailableError, AuditWriteError):
            self._aggregates.put_back(items)
            raise
        return len(items)

    def _purge(self, conn: Connection, now: float) -> None:
        cutoff = int(now * 1000)
        conn.execute(delete(challenges).where(challenges.c.expires_at_ms < cutoff))
        conn.execute(delete(attestations).where(attestations.c.expires_at_ms < cutoff))

    def _verify_body(
        self, body: bytes, policy: Policy | None
    ) -> tuple[AttestationBundle | None, AttestedEnclave | None, EnclaviaError | None]:
        bundle: AttestationBundle | None = None
        try:
            try:
                doc = _json_object(body, MAX_ATTEST_BODY)
            except BadRequestError:
                raise EvidenceFormatError("attest body is not a JSON object") from None
            if set(doc) != {"bundle"} or not isinstance(doc["bundle"], dict):
                raise EvidenceFormatError('body must be {"bundle": <attestation bundle>}')
            bundle = parse(json.dumps(doc["bundle"]).encode())
            return bundle, *self._verify_bundle(bundle, policy)
        except EnclaviaError as exc:
            return bundle, None, exc
        except ValueError:
            return bundle, None, EvidenceFormatError()

    def _verify_bundle(
        self, bundle: AttestationBundle, policy: Policy | None
    ) -> tuple[AttestedEnclave | None, EnclaviaError | None]:
        try:
            if policy is None:
                raise MeasurementNotAllowedError("no policy installed")
            return verify_presented_bundle(bundle, policy=policy, now=self._now_dt()), None
        except EnclaviaError as exc:
            return None, exc
        except ValueError:
            return None, EvidenceFormatError()

    def _known_policy(self) -> tuple[int, Policy | None]:
        """The newest verified policy this process has seen (verification runs outside the transaction and
        is re-run inside it in the rare case that the revision moved meanwhile)."""
        head = self._policy_guard().head  # a broken guard refuses inside the transaction, audited
        return (head.revision, head.policy) if head else (0, None)

    def attest(self, body: bytes) -> dict[str, Any]:
        rt = self._ready()
        now = self.clock()
        used_revision, policy = self._known_policy()
        # 1-7. Parse and verify outside any transaction (CPU only).
        bundle, attested, error = self._verify_body(body, policy)
        jti = tokens.new_jti()
        exp = int(now) + self.config.token_ttl_s
        with self.store.transaction() as conn:
            # 2. Freshness: the nonce is an outstanding challenge of ours, consumed exactly once (even when
            #    the evidence is refused). Replay takes precedence over every other verdict.
            revision: int | None = None
            if bundle is not None:
                row = conn.execute(
                    _CONSUME_CHALLENGE, {"nonce": bundle.nonce.hex(), "now": int(now * 1000)}
                ).first()
                if row is None:
                    error = ReplayedNonceError()
                else:
                    revision = int(row.revision)
            if revision is None:
                revision = int(conn.execute(_SELECT_REVISION).scalar_one())
            # The revision the store names must be a verified one, not below the high-water mark.
            digest, broken = self._checked_digest(conn, revision)
            if broken is not None:
                attested, error = None, broken
            elif (
                revision != used_revision and bundle is not None and not isinstance(error, ReplayedNonceError)
            ):
                attested, error = self._verify_bundle(bundle, self._policy(conn, revision))
            measurement = attested.result.measurement if attested else None
            ids: dict[str, str | bytes] = {}
            if bundle is not None:
                ids["nonce"] = bundle.nonce
            if measurement is not None:
                ids["measurement"] = measurement
            if error is None and attested is not None and bundle is not None:
                ids["jti"] = jti
                attestation_row = {
                    "jti": jti,
                    "key_config": bundle.key_config,
                    "claims": json.dumps(_cel_for(attested), sort_keys=True),
                    "policy_revision": revision,
                    "expires_at_ms": exp * 1000,
                }
                rt.ledger.append(
                    conn,
                    action="attest",
                    outcome="ok",
                    code="ok",
                    policy_revision=revision,
                    policy_digest=digest,
                    ids=ids,
                    also_insert=(attestations, attestation_row),
                )
            else:
                assert error is not None
                rt.ledger.append(
                    conn,
                    action="attest",
                    outcome="denied",
                    code=error.code,
                    policy_revision=revision,
                    policy_digest=digest,
                    ids=ids,
                )
        tee = str(bundle.tee) if bundle else None
        if error is not None:
            self.metrics.attestation_failures.labels(error.code).inc()
            self._record(
                "attest", "denied", error.code, policy_revision=revision, tee=tee, measurement=measurement
            )
            raise error
        assert attested is not None and bundle is not None
        result = attested.result
        claims_out = tokens.TokenClaims(
            status=str(result.status),
            tee=str(result.tee),
            measurement=result.measurement,
            policy_id=result.policy_id,
            policy_revision=revision,
            key_config_digest=tokens.key_config_digest(bundle.key_config),
            claims=_cel_for(attested),
            iat=int(now),
            exp=exp,
            jti=jti,
            aud=self.config.audience,
        )
        token = tokens.issue(rt.signing_key, claims_out)
        self._record("attest", "ok", "ok", policy_revision=revision, tee=tee, measurement=measurement)
        return {
            "token": token,
            "expires_at": iso_ms(exp),
            "result": {
                "status": str(result.status),
                "tee": str(result.tee),
                "measurement": result.measurement,
                "policy_id": result.policy_id,
                "policy_revision": revision,
                "reference": result.reference_name,
            },
        }

    def release(self, path: str, authorization: str | None, version: str | None = None) -> dict[str, Any]:
        rt = self._ready()
        now = self.clock()
        error: EnclaviaError | None = None
        claims: tokens.TokenClaims | None = None
        wanted: int | None = None
        # Checks that need no database: path shape, token signature, expiry, audience, algorithm.
        try:
            validate_secret_path(path)
            if version is not None:
                if not version.isdigit() or not 0 < len(version) <= 9:
                    raise SecretPathInvalidError("version must be a positive integer")
                wanted = int(version)
            claims = tokens.verify(
                _bearer(authorization),
                public_key=rt.ledger.public_key,
                audience=self.config.audience,
                now=now,
            )
        except EnclaviaError as exc:
            error = exc
        out: dict[str, Any] | None = None
        ids: dict[str, str | bytes] = {"secret": path[:512]}
        if claims is not None:
            ids["jti"] = claims.jti
        with self.store.transaction() as conn:
            # The current policy revision, read under the shared policy lock: a policy update (exclusive)
            # waits for this release to commit, or this release waits for the update and sees its revision.
            # One statement reads the revision, the attestation behind the token and the secret version.
            self.store.lock_policy(conn, exclusive=False)
            row = conn.execute(
                _RELEASE_LOOKUP,
                # Only validated values reach the database (an invalid path may hold NUL or worse).
                {
                    "jti": claims.jti if claims else "",
                    "path": path if error is None else "",
                    "version": wanted,
                },
            ).one()
            revision = int(row.revision)
            digest, broken = self._checked_digest(conn, revision)
            error = broken or error
            if error is None and claims is not None:
                try:
                    out = self._decide_release(conn, rt, row, path=path, claims=claims, now=now)
                except EnclaviaError as exc:
                    error = exc
            rt.ledger.append(
                conn,
                action="release",
                outcome="ok" if error is None and out is not None else "denied",
                code="ok" if error is None else error.code,
                policy_revision=revision,
                policy_digest=digest,
                ids=ids,
            )
        secret_ref = rt.ledger.ref("secret", path[:512])[:16]
        if error is not None:
            self.metrics.release_denials.labels(error.code).inc()
            self._record("release", "denied", error.code, policy_revision=revision, secret_ref=secret_ref)
            raise error
        assert out is not None
        self._record("release", "ok", "ok", policy_revision=revision, secret_ref=secret_ref)
        return out

    def _decide_release(
        self,
        conn: Connection,
        rt: _Runtime,
        row: Any,
        *,
        path: str,
        claims: tokens.TokenClaims,
        now: float,
    ) -> dict[str, Any]:
        revision = int(row.revision)
        # The token was appraised under the revision in force now; otherwise the enclave re-attests.
        if claims.policy_revision != revision:
            raise TokenStaleError()
        if row.key_config is None or row.expires_at_ms <= int(now * 1000):
            raise TokenInvalidError("token not issued by this broker or expired")
        key_config = bytes(row.key_config)
        if not hmac.compare_digest(tokens.key_config_digest(key_config), claims.key_config_digest):
            raise TokenInvalidError("token does not match its attestation")
        policy = self._policy(conn, revision)
        if policy is None:
            raise MeasurementNotAllowedError("no policy installed")
        # The claims signed into the token, never the attestations row (which anyone with write access to
        # the database could edit): the row only supplies the key config, checked against the token's digest.
        cel = claims.claims
        reference = cel.get("reference")
        check_release(
            policy.secret_rules, path, reference if isinstance(reference, str) and reference else None, cel
        )
        if row.version is None or row.wrapped_key is None:
            raise SecretNotFoundError()
        version = int(row.version)
        value = self._open_value(rt, path, version, bytes(row.wrapped_key), bytes(row.ciphertext))
        # The version floor: the newest live version, bound into the sealed release with the rest.
        current = int(row.current_version)
        aad = release_aad(path, version, revision, claims.jti, current)
        try:
            enc, ct = seal_secret(key_config, value, aad)
        except CryptoError:
            raise TokenInvalidError("attested key configuration unusable") from None
        return {
            "path": path,
            "version": version,
            "policy_revision": revision,
            "jti": claims.jti,
            "current_version": current,
            "enc": _b64(enc),
            "ciphertext": _b64(ct),
        }

    def _open_value(self, rt: _Runtime, path: str, version: int, wrapped: bytes, ciphertext: bytes) -> bytes:
        context = DEK_CONTEXT + _secret_record_aad(path, version)
        try:
            dek = rt.keystore.unwrap(wrapped, context)
            return aead.open_(dek, ciphertext, _secret_record_aad(path, version))
        except DecryptionError:
            # Wrapped with (path, version) as associated data: a row moved to another path or version, or
            # edited, fails here. Typed, and never a fallback to another version.
            raise StoreTamperedError("stored secret does not open under the root key") from None

    # -- admin -----------------------------------------------------------------------------------

    def metrics_authorized(self, authorization: str | None) -> bool:
        expected = self.config.metrics_token
        if not expected:
            return True
        presented = (authorization or "").removeprefix("Bearer ")
        return hmac.compare_digest(presented.encode(), expected.encode())

    def check_admin(self, authorization: str | None, source: str = "local") -> None:
        """Constant-time compare of the admin token. Failures are limited per source (a source out of
        tokens is refused before its attempt is compared) and aggregated in the ledger."""
        self._ready()
        self.flush_aggregates()
        if self._admin_limit.blocked(source):
            self._count_surface("admin.auth", "denied", BrokerRateLimitedError.code)
            raise BrokerRateLimitedError()
        expected = self.config.admin_token
        presented = (
            authorization[len("Bearer ") :] if authorization and authorization.startswith("Bearer ") else ""
        )
        ok = bool(expected) and hmac.compare_digest(presented.encode(), (expected or "").encode())
        if not ok:
            self._admin_limit.allow(source)  # only failures take a token
            self._count_surface("admin.auth", "denied", AdminUnauthorizedError.code)
            raise AdminUnauthorizedError()

    def put_secret(self, path: str, value: bytes, *, rotate: bool) -> dict[str, Any]:
        """Create (``rotate=False``: the path must not exist) or rotate (new version of an existing path)."""
        rt = self._ready()
        validate_secret_path(path)
        if not 0 < len(value) <= MAX_SECRET_BYTES:
            raise BadRequestError("secret value must be 1 byte to 64 KiB")
        now_ms = int(self.clock() * 1000)
        action = "secret.rotate" if rotate else "secret.create"
        with self.store.transaction() as conn:
            live = conn.execute(
                select(func.count())
                .select_from(secret_versions)
                .where(secret_versions.c.path == path, secret_versions.c.destroyed_at_ms.is_(None))
            ).scalar_one()
            if rotate and live == 0:
                raise SecretNotFoundError()
            if not rotate and live > 0:
                raise SecretExistsError()
            top = conn.execute(
                select(func.max(secret_versions.c.version)).where(secret_versions.c.path == path)
            ).scalar_one()
            version = int(top or 0) + 1
            dek = aead.generate_key()
            record_aad = _secret_record_aad(path, version)
            try:
                conn.execute(
                    insert(secret_versions).values(
                        path=path,
                        version=version,
                        wrapped_key=rt.keystore.wrap(dek, DEK_CONTEXT + record_aad),
                        ciphertext=aead.seal(dek, value, record_aad),
                        created_at_ms=now_ms,
                        destroyed_at_ms=None,
                    )
                )
            except IntegrityError:
                raise SecretExistsError("a concurrent writer created this version") from None
            rt.ledger.append(conn, action=action, outcome="ok", code="ok", ids={"secret": path})
        self._record(action, "ok", "ok", secret_ref=rt.ledger.ref("secret", path)[:16])
        return {"path": path, "version": version}

    def destroy_secret(self, path: str, version: str | None = None) -> dict[str, Any]:
        rt = self._ready()
        validate_secret_path(path)
        if version is not None and (not version.isdigit() or len(version) > 9):
            raise SecretPathInvalidError("version must be a positive integer")
        with self.store.transaction() as conn:
            stmt = (
                update(secret_versions)
                .where(secret_versions.c.path == path, secret_versions.c.destroyed_at_ms.is_(None))
                .values(wrapped_key=None, ciphertext=None, destroyed_at_ms=int(self.clock() * 1000))
            )
            if version is not None:
                stmt = stmt.where(secret_versions.c.version == int(version))
            destroyed = conn.execute(stmt).rowcount
            if destroyed == 0:
                raise SecretNotFoundError()
            rt.ledger.append(conn, action="secret.destroy", outcome="ok", code="ok", ids={"secret": path})
        self._record("secret.destroy", "ok", "ok", secret_ref=rt.ledger.ref("secret", path)[:16])
        return {"path": path, "destroyed_versions": destroyed}

    def list_secrets(self) -> dict[str, Any]:
        self._ready()
        out: dict[str, list[dict[str, Any]]] = {}
        with self.store.transaction() as conn:
            rows = conn.execute(
                select(
                    secret_versions.c.path,
                    secret_versions.c.version,
                    secret_versions.c.created_at_ms,
                    secret_versions.c.destroyed_at_ms,
                ).order_by(secret_versions.c.path, secret_versions.c.version)
            ).all()
        for row in rows:
            out.setdefault(row.path, []).append(
                {
                    "version": int(row.version),
                    "created_at": iso_ms(row.created_at_ms / 1000),
                    "destroyed": row.destroyed_at_ms is not None,
                }
            )
        return {"secrets": [{"path": p, "versions": v} for p, v in out.items()]}

    def get_policy(self) -> dict[str, Any]:
        """The verified revision in force: its signed content, never the stored text as such."""
        self._ready()
        with self.store.transaction() as conn:
            revision = int(conn.execute(_SELECT_REVISION).scalar_one())
            verified = self._verified(conn, revision)
        if verified is None:
            raise NotFoundError("no policy installed")
        return {
            "revision": verified.revision,
            "policy_id": verified.policy.policy_id,
            "source": verified.signed.content,
            "digest": verified.digest,
            "prev_digest": verified.signed.prev_digest,
            "signature": verified.signed.signature,
        }

    def put_policy(self, text: str, expected_revision: int | None) -> dict[str, Any]:
        """Compare-and-set: the new document's revision must be the current one + 1 (and the current one
        must equal ``expected_revision`` when given). Otherwise ``PolicyRevisionConflictError`` (409).
        The new revision is signed with the broker key and chained to the verified current one; a broken
        history refuses the update (``PolicyChainBrokenError``) as it refuses every decision."""
        rt = self._ready()
        policy = parse_policy(text)
        error: EnclaviaError | None
        verified: VerifiedRevision | None = None
        with self.store.transaction() as conn:
            self.store.lock_policy(conn, exclusive=True)
            current = int(
                conn.execute(
                    select(policy_head.c.revision).where(policy_head.c.id == 1).with_for_update()
                ).scalar_one()
            )
            digest, error = self._checked_digest(conn, current)
            if error is None and (
                (expected_revision is not None and expected_revision != current)
                or policy.revision != current + 1
            ):
                error = PolicyRevisionConflictError()
            if error is not None:
                rt.ledger.append(
                    conn,
                    action="policy.update",
                    outcome="denied",
                    code=error.code,
                    policy_revision=current,
                    policy_digest=digest,
                    ids={"policy_id": policy.policy_id},
                )
            else:
                verified = self._write_policy(conn, rt, policy, current)
        if error is not None:
            self._record("policy.update", "denied", error.code, policy_revision=current)
            raise error
        assert verified is not None
        self._policy_guard().accept(verified)
        self._record("policy.update", "ok", "ok", policy_revision=policy.revision)
        return {
            "revision": policy.revision,
            "policy_id": policy.policy_id,
            "previous_revision": current,
            "digest": verified.digest,
        }

    def _write_policy(self, conn: Connection, rt: _Runtime, policy: Policy, current: int) -> VerifiedRevision:
        if policy.revision != current + 1:
            raise PolicyRevisionConflictError()
        head = self._verified(conn, current)
        signed = sign_revision(rt.signing_key, policy, head.digest if head else GENESIS)
        now_ms = int(self.clock() * 1000)
        conn.execute(
            insert(policies).values(
                revision=policy.revision,
                policy_id=policy.policy_id,
                source=policy.source,
                created_at_ms=now_ms,
                prev_digest=signed.prev_digest,
                digest=signed.digest,
                signature=signed.signature,
            )
        )
        conn.execute(
            update(policy_head)
            .where(policy_head.c.id == 1)
            .values(revision=policy.revision, updated_at_ms=now_ms)
        )
        # Signed into a checkpoint at once: the new high-water mark survives a restart.
        rt.ledger.append(
            conn,
            action="policy.update",
            outcome="ok",
            code="ok",
            policy_revision=policy.revision,
            policy_digest=signed.digest,
            ids={"policy_id": policy.policy_id},
            policy_checkpoint=(policy.revision, signed.digest),
        )
        return VerifiedRevision(signed, policy)

    def audit_ref(self, name: str, value: str) -> dict[str, Any]:
        """The ledger reference (HMAC) of a known identifier, so an operator can find its records without
        the ledger ever holding the identifier itself."""
        rt = self._ready()
        if name not in AUDIT_ID_NAMES or not isinstance(value, str) or not 0 < len(value) <= 1024:
            raise BadRequestError("name must be one of the ledger's identifier kinds")
        raw: str | bytes = value
        if name == "nonce":
            try:
                raw = bytes.fromhex(value)
            except ValueError:
                raise BadRequestError("a nonce is hex") from None
        return {"name": name, "ref": rt.ledger.ref(name, raw)}

    def checkpoint(self, *, create: bool) -> dict[str, Any]:
        rt = self._ready()
        with self.store.transaction() as conn:
            cp: Checkpoint | None = rt.ledger.checkpoint(conn) if create else latest_checkpoint(conn)
        if cp is None:
            raise NotFoundError("no checkpoint yet")
        return {**cp.to_json(), "public_key": rt.signing_key.public_bytes.hex()}

    def key_info(self) -> dict[str, Any]:
        pub = self.public_key
        return {"alg": tokens.ALG, "kid": tokens.key_id(pub), "public_key": pub.hex()}

    def health(self) -> dict[str, Any]:
        """Ready only while stored state verifies: a broken policy chain or a ledger behind its witness
        takes the replica out of service (503 with that code), as every decision already refuses."""
        self._ready()
        self.store.ping()
        self._policy_guard().check()
        return {"status": "ok"}

    def close(self) -> None:
        if self._runtime is not None:
            with contextlib.suppress(EnclaviaError):
                self.flush_aggregates(force=True)
        if self._keystore is not None:
            self._keystore.close()
        self.store.dispose()


def _new_signing() -> tuple[bytes, bytes | None]:
    key = SigningKey.generate()
    return key.private_bytes(), key.public_bytes


def decode_secret_value(doc: Mapping[str, Any]) -> bytes:
    value = doc.get("value")
    if not isinstance(value, str):
        raise BadRequestError("value must be base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequestError("value must be base64 text") from None


def public_key_digest(public_key: bytes) -> str:
    return hashlib.sha256(public_key).hexdigest()


# -- HTTP ----------------------------------------------------------------------------------------


@dataclass
class _Timer:
    metrics: BrokerMetrics
    route: str
    start: float = field(default_factory=time.perf_counter)
    outcome: str = "ok"

    def done(self) -> None:
        self.metrics.latency.labels(self.route, self.outcome).observe(time.perf_counter() - self.start)


def create_app(service: BrokerService) -> FastAPI:  # noqa: PLR0915 - one closure per route
    """The FastAPI application. Blocking work runs in the thread pool; bodies are read raw and bounded."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Bound the worker threads: beyond a handful, threads holding the ledger's row lock wait for the
        # GIL behind threads that cannot progress, and tail latency explodes (benchmarks/broker_release.py).
        anyio.to_thread.current_default_thread_limiter().total_tokens = service.config.threads
        await run_in_threadpool(service.start)
        yield
        await run_in_threadpool(service.close)

    app = FastAPI(
        title="enclavia key broker", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )

    def ok(obj: Any, status: int = 200) -> Response:
        return Response(
            json.dumps(obj, separators=(",", ":")).encode(),
            status_code=status,
            media_type="application/json",
            headers={"cache-control": "no-store"},
        )

    def problem(err: EnclaviaError | type[EnclaviaError]) -> Response:
        cls = err if isinstance(err, type) else type(err)
        headers = {"cache-control": "no-store"}
        if cls.status == 503:
            headers["retry-after"] = "1"
        return Response(
            problem_bytes(cls), status_code=cls.status, media_type=PROBLEM_MEDIA_TYPE, headers=headers
        )

    async def call(route: str, fn: Callable[..., Any], *args: Any, status: int = 200) -> Response:
        timer = _Timer(service.metrics, route)
        try:
            return ok(await run_in_threadpool(fn, *args), status)
        except EnclaviaError as err:
            timer.outcome = err.code
            return problem(err)
        finally:
            timer.done()

    async def body(request: Request, limit: int) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            raise PayloadTooLargeError()
        data = bytearray()
        async for chunk in request.stream():
            data.extend(chunk)
            if len(data) > limit:
                raise PayloadTooLargeError()
        return bytes(data)

    async def admin(request: Request) -> None:
        await run_in_threadpool(service.check_admin, request.headers.get("authorization"), source_of(request))

    @app.post("/kbs/v1/challenge")
    async def challenge(request: Request) -> Response:
        return await call("challenge", service.challenge, source_of(request))

    @app.post("/kbs/v1/attest")
    async def attest(request: Request) -> Response:
        try:
            data = await body(request, MAX_ATTEST_BODY)
        except EnclaviaError as err:
            return problem(err)
        return await call("attest", service.attest, data)

    @app.get("/kbs/v1/secrets/{path:path}")
    async def release(path: str, request: Request) -> Response:
        return await call(
            "release",
            service.release,
            path,
            request.headers.get("authorization"),
            request.query_params.get("version"),
        )

    @app.get("/kbs/v1/public-key")
    async def public_key() -> Response:
        return await call("public_key", service.key_info)

    @app.get("/healthz")
    async def healthz() -> Response:
        return await call("health", service.health)

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        # Ledger height, policy revision and denial counts are reconnaissance: production requires a token.
        if not service.metrics_authorized(request.headers.get("authorization")):
            return problem(AdminUnauthorizedError)
        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # -- admin (bearer admin token, constant-time compare) --------------------------------------

    @app.get("/kbs/v1/admin/secrets")
    async def list_secrets(request: Request) -> Response:
        try:
            await admin(request)
        except EnclaviaError as err:
            return problem(err)
        return await call("admin", service.list_secrets)

    @app.post("/kbs/v1/admin/secrets/{path:path}/versions")
    async def rotate_secret(path: str, request: Request) -> Response:
        try:
            await admin(request)
            value = decode_secret_value(_json_object(await body(request, MAX_ADMIN_BODY), MAX_ADMIN_BODY))
        except EnclaviaError as err:
            return problem(err)
        return await call("admin", lambda: service.put_secret(path, value, rotate=True), status=201)

    @app.post("/kbs/v1/admin/secrets/{path:path}")
    async def create_secret(path: str, request: Request) -> Response:
        try:
            await admin(request)
            value = decode_secret_value(_json_object(await body(request, MAX_ADMIN_BODY), MAX_ADMIN_BODY))
        except EnclaviaError as err:
            return problem(err)
        return await call("admin", lambda: service.put_secret(path, value, rotate=False), status=201)

    @app.delete("/kbs/v1/admin/secrets/{path:path}")
    async def destroy_secret(path: str, request: Request) -> Response:
        try:
            await admin(request)
        except EnclaviaError as err:
            return problem(err)
        return await call("admin", service.destroy_secret, path, request.query_params.get("version"))

    @app.get("/kbs/v1/admin/policy")
    async def get_policy(request: Request) -> Response:
        try:
            await admin(request)
        except EnclaviaError as err:
            return problem(err)
        return await call("admin", service.get_policy)

    @app.put("/kbs/v1/admin/policy")
    async def put_policy(request: Request) -> Response:
        try:
            await admin(request)
            doc = _json_object(await body(request, MAX_ADMIN_BODY), MAX_ADMIN_BODY)
            text, expected = doc.get("policy"), doc.get("expected_revision")
            if not isinstance(text, str) or not (
                expected is None or (isinstance(expected, int) and not isinstance(expected, bool))
            ):
                raise BadRequestError('body must be {"policy": <yaml>, "expected_revision": <int>}')
        except EnclaviaError as err:
            return problem(err)
        return await call("admin", service.put_policy, text, expected)

    @app.get("/kbs/v1/admin/audit/checkpoint")
    async def get_checkpoint(request: Request) -> Response:
        try:
            await admin(request)
        except EnclaviaError as err:
            return problem(err)
        return await call("admin", lambda: service.checkpoint(create=False))

    @app.post("/kbs/v1/admin/audit/checkpoint")
    async def make_checkpoint(request: Request) -> Response:
        try:
            await admin(request)
        except EnclaviaError as err:
            return problem(err)
        return await call("admin", lambda: service.checkpoint(create=True), status=201)

    @app.get("/kbs/v1/admin/audit/ref")
    async def audit_ref(request: Request) -> Response:
        try:
            await admin(request)
        except EnclaviaError as err:
            return problem(err)
        q = request.query_params
        return await call("admin", service.audit_ref, q.get("name", ""), q.get("value", ""))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        return problem(NotFoundError if exc.status_code == 404 else BadRequestError)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, __: RequestValidationError) -> Response:
        return problem(BadRequestError)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, __: Exception) -> Response:
        return problem(EnclaviaError)

    return app
