"""Operations view of the broker: gauges read from the database, read-only summaries, evidence receipts.

Everything here reads the shared store (so every replica reports the same truth) and never a secret value:

* ``OpsCollector``: Prometheus gauges computed at scrape time: policy revision, audit ledger height, last
  signed checkpoint (seq and time), the ledger verification result (re-run at most every
  ``verify_interval_s``), the age of the oldest current secret version (rotation due), and the earliest
  reference-value deadline per TEE.
* ``OpsView.summary()``: what the operator console and the auditor's report show: enclaves attested (from
  the ledger, measurements matched against every policy revision's reference values through the ledger's
  keyed references), policy history, decision statistics, recent denials, usage anomalies, the ledger
  verification result and the alerts those imply.
* ``OpsView.record_evidence(digest)``: append an ``evidence.report`` record (the digest as a keyed reference)
  and ``find_evidence(digest)`` to look it up again.

Admin routes (bearer admin token) are added by ``install``; the console page is ``enclavia.broker.console``.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import Counter as Tally
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import yaml
from fastapi import Request
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Connection, func, select

from enclavia.broker.audit import AuditRecord, iso_ms, latest_checkpoint, verify_ledger
from enclavia.broker.store import (
    attestations,
    audit_head,
    audit_records,
    policies,
    policy_head,
    secret_versions,
)
from enclavia.broker.surface import source_of
from enclavia.errors import AuditVerificationError, BadRequestError, EnclaviaError, NotFoundError
from enclavia.observability.trace import span

if TYPE_CHECKING:
    from fastapi import FastAPI

    from enclavia.broker.service import BrokerService

EVIDENCE_ACTION: Final = "evidence.report"
ANOMALY_ACTION: Final = "usage.anomaly"
RECENT_RECORDS: Final = 20_000  # how far back the console looks for attestations and denials
_HEX = re.compile(r"^[0-9a-f]{64,192}$")

# Alert name -> runbook file (docs/runbooks/); the same names as deploy/prometheus/alerts.yml.
RUNBOOKS: Final = {
    "AttestationFailing": "attestation-failing-after-deploy.md",
    "KeyReleaseDenied": "attestation-failing-after-deploy.md",
    "AuditLedgerVerificationFailed": "audit-ledger-verification-failure.md",
    "AuditCheckpointStale": "audit-ledger-verification-failure.md",
    "UnlistedMeasurementAttested": "measurement-drift.md",
    "UnusualUsage": "unusual-usage.md",
    "KeyRotationDue": "key-rotation.md",
    "CertificateOrCollateralExpired": "certificate-collateral-expiry.md",
    "ReferenceDeadlineNear": "measurement-drift.md",
}
CERT_CODES: Final = frozenset(
    {
        "attestation.cert_expired",
        "attestation.cert_not_yet_valid",
        "attestation.collateral",
        "attestation.revocation_unknown",
    }
)


def _ms_iso(ms: int | None) -> str | None:
    return None if ms is None else iso_ms(ms / 1000)


def _reference_values(source: str) -> list[dict[str, Any]]:
    """(tee, name, values, not_after) of each reference entry, read from the policy YAML as written."""
    try:
        doc = yaml.safe_load(source) or {}
    except yaml.YAMLError:
        return []
    out: list[dict[str, Any]] = []
    refs = doc.get("reference_values") if isinstance(doc, dict) else None
    for tee, entries in (refs or {}).items() if isinstance(refs, dict) else ():
        for entry in entries or ():
            if not isinstance(entry, dict):
                continue
            values = {
                str(k): str(v)
                for k, v in entry.items()
                if k not in ("name", "not_after", "unsafe_weak_pins") and isinstance(v, (str, int))
            }
            out.append(
                {
                    "tee": str(tee),
                    "name": str(entry.get("name", "")),
                    "values": values,
                    "not_after": str(entry["not_after"]) if entry.get("not_after") else None,
                    # an entry that pins only firmware-level values, kept by explicit choice (policy.strength)
                    "unsafe_weak_pins": entry.get("unsafe_weak_pins") is True,
                }
            )
    return out


@dataclass(frozen=True)
class LedgerCheck:
    ok: bool
    records: int
    checkpoints: int
    head_hash: str | None
    last_checkpoint_seq: int | None
    error_code: str | None
    detail: str | None
    checked_at: str
    kid: str | None = None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class OpsView:
    service: BrokerService
    verify_interval_s: float = 300.0
    _last_check: LedgerCheck | None = None
    _last_check_at: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- ledger verification ---------------------------------------------------------------------

    def verify(self, *, max_age_s: float | None = None) -> LedgerCheck:
        """Walk the ledger (cached for ``max_age_s``, default ``verify_interval_s``)."""
        max_age = self.verify_interval_s if max_age_s is None else max_age_s
        with self._lock:
            if self._last_check is not None and time.monotonic() - self._last_check_at < max_age:
                return self._last_check
            public_key = self.service.public_key
            now = iso_ms(self.service.clock())
            try:
                with self.service.store.transaction() as conn:
                    report = verify_ledger(conn, public_key)
                check = LedgerCheck(
                    ok=True,
                    records=report.records,
                    checkpoints=report.checkpoints,
                    head_hash=report.head_hash,
                    last_checkpoint_seq=report.last_checkpoint_seq,
                    error_code=None,
                    detail=None,
                    checked_at=now,
                    kid=report.kid,
                )
            except AuditVerificationError as err:
                check = LedgerCheck(False, 0, 0, None, None, err.code, err.detail, now)
            self._last_check, self._last_check_at = check, time.monotonic()
            return check

    # -- evidence receipts -----------------------------------------------------------------------

    def record_evidence(self, digest_hex: str) -> dict[str, Any]:
        if not isinstance(digest_hex, str) or not _HEX.match(digest_hex):
            raise BadRequestError("digest must be lowercase hex (32 to 96 bytes)")
        rt = self.service._ready()
        with self.service.store.transaction() as conn:
            revision = conn.execute(select(policy_head.c.revision).where(policy_head.c.id == 1)).scalar_one()
            record = rt.ledger.append(
                conn,
                action=EVIDENCE_ACTION,
                outcome="ok",
                code="ok",
                policy_revision=int(revision),
                ids={"report": digest_hex},
            )
        self.service.log("broker.event", action=EVIDENCE_ACTION, outcome="ok", policy_revision=int(revision))
        return {"seq": record.seq, "time": record.time, "ref": record.ids["report"], "hash": record.digest()}

    def find_evidence(self, digest_hex: str) -> dict[str, Any]:
        if not isinstance(digest_hex, str) or not _HEX.match(digest_hex):
            raise BadRequestError("digest must be lowercase hex (32 to 96 bytes)")
        ref = self.service._ready().ledger.ref("report", digest_hex)
        with self.service.store.transaction() as conn:
            rows = conn.execute(
                select(audit_records)
                .where(audit_records.c.action == EVIDENCE_ACTION)
                .order_by(audit_records.c.seq)
            ).all()
        for row in rows:
            record = AuditRecord.from_row(row)
            if record.ids.get("report") == ref:
                return {"seq": record.seq, "time": record.time, "ref": ref, "hash": row.hash}
        raise NotFoundError("no evidence record with this digest")

    # -- summary ---------------------------------------------------------------------------------

    def summary(self, *, window_s: float = 86400.0, verify_max_age_s: float | None = None) -> dict[str, Any]:
        rt = self.service._ready()
        now = self.service.clock()
        since = iso_ms(now - window_s)
        with self.service.store.transaction() as conn:
            head = conn.execute(select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)).one()
            revision = int(
                conn.execute(select(policy_head.c.revision).where(policy_head.c.id == 1)).scalar_one()
            )
            history = self._policy_history(conn)
            stats_all = self._stats(conn, None)
            stats_window = self._stats(conn, since)
            recent = self._recent(conn)
            checkpoint = latest_checkpoint(conn)
            live_tokens = self._live_tokens(conn, now)
            secrets_info = self._secrets(conn, now)
        # Measurements: every reference value of every revision, by keyed reference.
        by_ref: dict[str, dict[str, Any]] = {}
        for rev in history:
            for ref in rev["references"]:
                for value in ref["values"].values():
                    if re.fullmatch(r"[0-9a-f]{64,192}", value):
                        key = rt.ledger.ref("measurement", value)
                        by_ref.setdefault(
                            key,
                            {"tee": ref["tee"], "name": ref["name"], "measurement": value, "revisions": []},
                        )["revisions"].append(rev["revision"])
        current = history[-1] if history else None
        current_names = {(r["tee"], r["name"]) for r in current["references"]} if current else set()
        enclaves: dict[str, dict[str, Any]] = {}
        denials: list[dict[str, Any]] = []
        anomalies: list[dict[str, Any]] = []
        evidence: list[dict[str, Any]] = []
        for record in recent:
            if record.action == "attest" and record.time >= since:
                mref = record.ids.get("measurement")
                if mref is None:
                    continue
                known = by_ref.get(mref)
                entry = enclaves.setdefault(
                    mref,
                    {
                        "tee": known["tee"] if known else None,
                        "reference": known["name"] if known else None,
                        "measurement": known["measurement"] if known else None,
                        "measurement_ref": mref[:16],
                        "allowed_now": bool(known and (known["tee"], known["name"]) in current_names),
                        "attested_ok": 0,
                        "denied": 0,
                        "last_attested": None,
                        "codes": {},
                    },
                )
                if record.outcome == "ok":
                    entry["attested_ok"] += 1
                    entry["last_attested"] = record.time
                else:
                    entry["denied"] += 1
                    entry["codes"][record.code] = entry["codes"].get(record.code, 0) + 1
            if record.outcome == "denied" and record.action != "challenge":
                denials.append(
                    {
                        "seq": record.seq,
                        "time": record.time,
                        "action": record.action,
                        "code": record.code,
                        "policy_revision": record.policy_revision,
                    }
                )
            if record.action == ANOMALY_ACTION:
                anomalies.append({"seq": record.seq, "time": record.time, "kind": record.code})
            if record.action == EVIDENCE_ACTION:
                evidence.append({"seq": record.seq, "time": record.time, "ref": record.ids.get("report")})
        check = self.verify(max_age_s=verify_max_age_s)
        out: dict[str, Any] = {
            "generated_at": iso_ms(now),
            "window_s": window_s,
            "broker": {
                "kid": rt.ledger.kid,
                "public_key": rt.signing_key.public_bytes.hex(),
                "policy_revision": revision,
                "policy_id": current["policy_id"] if current else None,
            },
            "ledger": {
                "height": int(head.seq),
                "head_hash": head.hash,
                "last_checkpoint": checkpoint.to_json() if checkpoint else None,
                "verification": check.to_json(),
            },
            "enclaves": sorted(enclaves.values(), key=lambda e: e["last_attested"] or "", reverse=True),
            "live_tokens": live_tokens,
            "policy_history": [{k: v for k, v in rev.items() if k != "source"} for rev in history],
            "decisions": {"all_time": stats_all, "window": stats_window},
            "recent_denials": denials[-50:][::-1],
            "anomalies": anomalies[-50:][::-1],
            "evidence_reports": evidence[-20:][::-1],
            "secrets": secrets_info,
        }
        out["alerts"] = self._alerts(out, now)
        return out

    def _policy_history(self, conn: Connection) -> list[dict[str, Any]]:
        rows = conn.execute(select(policies).order_by(policies.c.revision)).all()
        out = []
        for row in rows:
            refs = _reference_values(row.source)
            try:
                doc = yaml.safe_load(row.source) or {}
            except yaml.YAMLError:
                doc = {}
            out.append(
                {
                    "revision": int(row.revision),
                    "policy_id": row.policy_id,
                    "applied_at": _ms_iso(row.created_at_ms),
                    "profile": str(doc.get("profile", "")) if isinstance(doc, dict) else "",
                    "references": refs,
                    "secret_rules": len(doc.get("secrets") or []) if isinstance(doc, dict) else 0,
                    "sha256": hashlib.sha256(row.source.encode()).hexdigest(),
                    "source": row.source,
                }
            )
        return out

    def _stats(self, conn: Connection, since: str | None) -> list[dict[str, Any]]:
        query = select(
            audit_records.c.action, audit_records.c.outcome, audit_records.c.code, func.count()
        ).group_by(audit_records.c.action, audit_records.c.outcome, audit_records.c.code)
        if since is not None:
            query = query.where(audit_records.c.time >= since)
        rows = conn.execute(query).all()
        return sorted(
            ({"action": a, "outcome": o, "code": c, "count": int(n)} for a, o, c, n in rows),
            key=lambda r: (r["action"], r["outcome"], r["code"]),
        )

    def _recent(self, conn: Connection) -> list[AuditRecord]:
        rows = conn.execute(
            select(audit_records).order_by(audit_records.c.seq.desc()).limit(RECENT_RECORDS)
        ).all()
        return [AuditRecord.from_row(r) for r in reversed(rows)]

    def _live_tokens(self, conn: Connection, now: float) -> list[dict[str, Any]]:
        rows = conn.execute(
            select(attestations.c.claims, attestations.c.policy_revision).where(
                attestations.c.expires_at_ms > int(now * 1000)
            )
        ).all()
        tally: Tally[tuple[str, str, str, int]] = Tally()
        for row in rows:
            try:
                claims = json.loads(row.claims)
            except ValueError:
                continue
            tally[
                (
                    str(claims.get("tee", "")),
                    str(claims.get("measurement", "")),
                    str(claims.get("reference", "")),
                    int(row.policy_revision),
                )
            ] += 1
        return [
            {"tee": t, "measurement": m, "reference": r, "policy_revision": p, "tokens": n}
            for (t, m, r, p), n in sorted(tally.items())
        ]

    def _secrets(self, conn: Connection, now: float) -> dict[str, Any]:
        rows = conn.execute(
            select(secret_versions.c.path, func.max(secret_versions.c.created_at_ms))
            .where(secret_versions.c.destroyed_at_ms.is_(None))
            .group_by(secret_versions.c.path)
        ).all()
        ages = [now - int(ms) / 1000 for _, ms in rows]
        return {"paths": len(rows), "oldest_current_version_age_s": round(max(ages), 3) if ages else None}

    def _alerts(self, summary: Mapping[str, Any], now: float) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = []

        def add(name: str, severity: str, summary_text: str) -> None:
            alerts.append(
                {"alert": name, "severity": severity, "summary": summary_text, "runbook": RUNBOOKS[name]}
            )

        check = summary["ledger"]["verification"]
        if not check["ok"]:
            add("AuditLedgerVerificationFailed", "page", f"audit ledger: {check['error_code']}")
        cp = summary["ledger"]["last_checkpoint"]
        if summary["ledger"]["height"] > 0 and (
            cp is None or now - datetime.fromisoformat(cp["time"].replace("Z", "+00:00")).timestamp() > 86400
        ):
            add("AuditCheckpointStale", "ticket", "no signed audit checkpoint in the last 24 h")
        window = summary["decisions"]["window"]
        attest_denied = sum(
            r["count"] for r in window if r["action"] == "attest" and r["outcome"] == "denied"
        )
        release_denied = sum(
            r["count"] for r in window if r["action"] == "release" and r["outcome"] == "denied"
        )
        cert = sum(r["count"] for r in window if r["code"] in CERT_CODES)
        if attest_denied:
            add("AttestationFailing", "page", f"{attest_denied} attestation(s) refused in the window")
        if release_denied:
            add("KeyReleaseDenied", "ticket", f"{release_denied} key release(s) denied in the window")
        if cert:
            add("CertificateOrCollateralExpired", "page", f"{cert} refusal(s) for certificates or collateral")
        if any(e["attested_ok"] and not e["allowed_now"] for e in summary["enclaves"]):
            add("UnlistedMeasurementAttested", "page", "an attested measurement is not allowed by the policy")
        if summary["anomalies"]:
            add("UnusualUsage", "ticket", f"{len(summary['anomalies'])} usage anomaly record(s)")
        age = summary["secrets"]["oldest_current_version_age_s"]
        if age is not None and age > 90 * 86400:
            add("KeyRotationDue", "ticket", "a secret's current version is older than 90 days")
        return alerts


# -- Prometheus ----------------------------------------------------------------------------------


class OpsCollector(Collector):
    """Gauges read from the database at scrape time. A store failure yields ``store_up 0`` only."""

    def __init__(self, view: OpsView) -> None:
        self.view = view

    def describe(self) -> list[Any]:
        return []  # collected lazily: no database access when the collector is registered

    def collect(self) -> Iterator[GaugeMetricFamily]:
        service = self.view.service
        up = GaugeMetricFamily("enclavia_broker_store_up", "1 when the broker's database answered the scrape")
        try:
            yield from self._collect(service)
            up.add_metric([], 1)
        except (EnclaviaError, ValueError):
            up.add_metric([], 0)
        yield up

    def _collect(self, service: BrokerService) -> Iterator[GaugeMetricFamily]:
        now = service.clock()
        service._ready()
        with service.store.transaction() as conn:
            revision = conn.execute(select(policy_head.c.revision).where(policy_head.c.id == 1)).scalar_one()
            height = conn.execute(select(audit_head.c.seq).where(audit_head.c.id == 1)).scalar_one()
            cp = latest_checkpoint(conn)
            source = conn.execute(select(policies.c.source).where(policies.c.revision == revision)).scalar()
            secrets_info = self.view._secrets(conn, now)
        check = self.view.verify()
        g = GaugeMetricFamily("enclavia_broker_policy_revision", "Policy revision in force")
        g.add_metric([], int(revision))
        yield g
        g = GaugeMetricFamily("enclavia_broker_audit_ledger_height", "Records in the audit ledger")
        g.add_metric([], int(height))
        yield g
        g = GaugeMetricFamily(
            "enclavia_broker_audit_checkpoint_seq", "Sequence number of the last checkpoint"
        )
        g.add_metric([], cp.seq if cp else 0)
        yield g
        g = GaugeMetricFamily(
            "enclavia_broker_audit_checkpoint_timestamp_seconds", "Time of the last signed checkpoint"
        )
        if cp is not None:
            g.add_metric([], datetime.fromisoformat(cp.time.replace("Z", "+00:00")).timestamp())
        yield g
        g = GaugeMetricFamily(
            "enclavia_broker_audit_ledger_verified",
            "1 when the last full ledger verification passed, 0 when it failed",
        )
        g.add_metric([], 1 if check.ok else 0)
        yield g
        g = GaugeMetricFamily(
            "enclavia_broker_secret_oldest_version_age_seconds",
            "Age of the oldest current (newest live) secret version: rotation due when large",
        )
        if secrets_info["oldest_current_version_age_s"] is not None:
            g.add_metric([], secrets_info["oldest_current_version_age_s"])
        yield g
        g = GaugeMetricFamily(
            "enclavia_broker_reference_deadline_timestamp_seconds",
            "Earliest not_after of the policy's reference values, per TEE",
            labels=["tee"],
        )
        deadlines: dict[str, float] = {}
        for ref in _reference_values(source or ""):
            if ref["not_after"]:
                try:
                    when = datetime.fromisoformat(ref["not_after"].replace("Z", "+00:00"))
                except ValueError:
                    continue
                if when.tzinfo is None:
                    when = when.replace(tzinfo=UTC)
                ts = when.timestamp()
                deadlines[ref["tee"]] = min(ts, deadlines.get(ref["tee"], ts))
        for tee, ts in sorted(deadlines.items()):
            g.add_metric([tee], ts)
        yield g


# -- HTTP ----------------------------------------------------------------------------------------


def install(
    app: FastAPI, service: BrokerService, *, view: OpsView | None = None, console_svg: str | None = None
) -> OpsView:
    """Add the ops collector to the broker's registry and the admin routes (and console) to ``app``."""
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import Response

    from enclavia.broker.console import install_console
    from enclavia.problem import PROBLEM_MEDIA_TYPE, problem_bytes

    ops = view or OpsView(service)
    service.metrics.registry.register(OpsCollector(ops))

    def ok(obj: Any, status: int = 200) -> Response:
        return Response(
            json.dumps(obj, separators=(",", ":")).encode(),
            status_code=status,
            media_type="application/json",
            headers={"cache-control": "no-store"},
        )

    def problem(err: EnclaviaError) -> Response:
        return Response(problem_bytes(err), status_code=err.status, media_type=PROBLEM_MEDIA_TYPE)

    async def guarded(request: Request, fn: Any, *args: Any, status: int = 200) -> Response:
        try:
            await run_in_threadpool(
                service.check_admin, request.headers.get("authorization"), source_of(request)
            )
            return ok(await run_in_threadpool(fn, *args), status)
        except EnclaviaError as err:
            return problem(err)

    @app.get("/kbs/v1/admin/ops/summary")
    async def ops_summary(request: Request) -> Response:
        fresh = request.query_params.get("verify") == "now"
        return await guarded(request, lambda: ops.summary(verify_max_age_s=0.0 if fresh else None))

    @app.post("/kbs/v1/admin/audit/evidence")
    async def evidence_append(request: Request) -> Response:
        raw = await request.body()
        try:
            doc = json.loads(raw[:4096]) if len(raw) <= 4096 else None
        except ValueError:
            doc = None
        digest = doc.get("digest") if isinstance(doc, dict) else None
        return await guarded(request, ops.record_evidence, digest, status=201)

    @app.get("/kbs/v1/admin/audit/evidence/{digest}")
    async def evidence_find(digest: str, request: Request) -> Response:
        return await guarded(request, ops.find_evidence, digest)

    @app.middleware("http")
    async def trace_requests(request: Request, call_next: Any) -> Any:
        route = _span_route(request.url.path)
        if route is None:
            return await call_next(request)
        with span(
            f"enclavia.broker.{route}",
            traceparent=request.headers.get("traceparent"),
            server=True,
            enclavia__route=route,
        ) as current:
            response = await call_next(request)
            current.set_attribute("http.status_code", response.status_code)
            return response

    install_console(app, service, svg=console_svg)
    return ops


def _span_route(path: str) -> str | None:
    """Fixed span names for the broker's routes (a secret path never becomes part of one)."""
    for prefix, name in (
        ("/kbs/v1/challenge", "challenge"),
        ("/kbs/v1/attest", "attest"),
        ("/kbs/v1/secrets/", "release"),
        ("/kbs/v1/admin/", "admin"),
    ):
        if path == prefix or (prefix.endswith("/") and path.startswith(prefix)):
            return name
    return None
