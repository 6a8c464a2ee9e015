"""Drift monitor: alert when what runs, or what the log holds, is not what the release process approved.

Kinds (metric ``enclavia_release_drift_total{kind}``, gauge ``enclavia_release_drift_active{kind}`` and
one ``release.drift`` audit event each):

* ``measurement_not_allowed``: an enclave in service runs a measurement the policy in force does not
  allow (never released, retired, or past its rollout deadline).
* ``measurement_not_promoted``: it is allowed, but not the primary (promoted) reference for its TEE:
  expected while a rollout overlaps, a finding if it outlives the rollout.
* ``measurement_not_published``: its manifest digest has no release record in the transparency log.
* ``unapproved_log_entry``: a log entry that is not a release signed by a trusted release key with the
  required k-of-n approvals.
* ``log_inconsistent``: the log's signed head does not match the entries it serves, or does not extend
  the head seen before (a fork).

See docs/runbooks/measurement-drift.md for what to do about each.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge

from enclavia.attestation.claims import Tee
from enclavia.attestation.release import ApproverSet, parse_signed_release, verify_release
from enclavia.attestation.tlog import LogEntry, LogReader, TreeHeadStore, advance_tree_head
from enclavia.crypto.merkle import root_from_hashes
from enclavia.errors import EnclaviaError
from enclavia.policy.document import Policy

KINDS = (
    "measurement_not_allowed",
    "measurement_not_promoted",
    "measurement_not_published",
    "unapproved_log_entry",
    "log_inconsistent",
)


@dataclass(frozen=True)
class Alert:
    kind: str
    tee: str | None = None
    measurement: str | None = None
    manifest_digest: str | None = None
    log_index: int | None = None
    release: str | None = None
    code: str | None = None  # the error code behind it, when there is one

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


class DriftMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.alerts = Counter(
            "enclavia_release_drift", "Drift findings by kind", ["kind"], registry=self.registry
        )
        self.active = Gauge(
            "enclavia_release_drift_active",
            "Findings of the last check, by kind",
            ["kind"],
            registry=self.registry,
        )
        for kind in KINDS:
            self.active.labels(kind).set(0)


class EntryReader(LogReader, Protocol):
    def get_entries(self, start: int, end: int) -> Sequence[LogEntry]: ...


@dataclass
class LogScanState:
    """What the monitor has verified so far: every leaf hash, in order (a few MB for a million entries)."""

    leaf_hashes: list[bytes] = field(default_factory=list)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps([h.hex() for h in self.leaf_hashes]), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> LogScanState:
        try:
            return cls([bytes.fromhex(h) for h in json.loads(path.read_text(encoding="utf-8"))])
        except FileNotFoundError:
            return cls()


def _log_event(alert: Alert) -> None:
    from enclavia.observability import logging as elog

    elog.get_logger().warning(
        "release.drift",
        kind=alert.kind,
        tee=alert.tee,
        measurement=alert.measurement,
        manifest_digest=alert.manifest_digest,
        log_index=alert.log_index,
        release=alert.release,
    )


class DriftMonitor:
    def __init__(
        self,
        *,
        metrics: DriftMetrics | None = None,
        audit: Callable[[Alert], None] = _log_event,
        release_keys: Collection[bytes] = (),
        approvers: ApproverSet | None = None,
    ) -> None:
        self.metrics = metrics or DriftMetrics()
        self.audit = audit
        self.release_keys = tuple(release_keys)
        self.approvers = approvers

    def _report(self, alerts: list[Alert], kinds: Collection[str]) -> list[Alert]:
        for kind in kinds:
            self.metrics.active.labels(kind).set(sum(1 for a in alerts if a.kind == kind))
        for alert in alerts:
            self.metrics.alerts.labels(alert.kind).inc()
            self.audit(alert)
        return alerts

    # -- enclaves in service -------------------------------------------------------------------

    def check_enclaves(self, observed: Sequence[Observation], policy: Policy) -> list[Alert]:
        """``observed``: what attested enclaves in service reported (evidence verified by the caller)."""
        alerts: list[Alert] = []
        for obs in observed:

            def alert(
                kind: str, release: str | None = None, code: str | None = None, o: Observation = obs
            ) -> Alert:
                return Alert(kind, str(o.tee), o.measurement, o.manifest_digest, release=release, code=code)

            if obs.reference is None:
                alerts.append(alert("measurement_not_allowed", code=obs.error_code))
                continue
            refs = policy.references_for(obs.tee)
            if not refs or refs[0].name != obs.reference:
                alerts.append(alert("measurement_not_promoted", release=obs.reference))
            if obs.published is False:
                alerts.append(alert("measurement_not_published", code=obs.error_code))
        return self._report(
            alerts, ("measurement_not_allowed", "measurement_not_promoted", "measurement_not_published")
        )

    # -- the log -------------------------------------------------------------------------------

    def scan_log(
        self, log: EntryReader, log_key: bytes, store: TreeHeadStore, state: LogScanState
    ) -> list[Alert]:
        """Verify the head (and its consistency with the last one), fetch new entries, recompute the root,
        and check every new entry is a signed, approved release."""
        if not self.release_keys:
            raise ValueError("scanning the log needs the trusted release keys")
        alerts: list[Alert] = []
        try:
            sth = advance_tree_head(log, log_key, store)
        except EnclaviaError as err:
            return self._report([Alert("log_inconsistent", code=err.code)], ("log_inconsistent",))
        start = len(state.leaf_hashes)
        new: list[LogEntry] = []
        while start + len(new) < sth.tree_size:
            page = log.get_entries(start + len(new), sth.tree_size - 1)
            if not page:
                break
            new.extend(page)
        hashes = state.leaf_hashes + [e.leaf_hash for e in new]
        if len(hashes) < sth.tree_size or root_from_hashes(hashes[: sth.tree_size]) != sth.root_hash:
            return self._report([Alert("log_inconsistent", code="tlog.consistency")], ("log_inconsistent",))
        for entry in new[: sth.tree_size - start]:
            alert = self._check_entry(entry)
            if alert is not None:
                alerts.append(alert)
        state.leaf_hashes = hashes[: sth.tree_size]
        return self._report(alerts, ("unapproved_log_entry", "log_inconsistent"))

    def _check_entry(self, entry: LogEntry) -> Alert | None:
        try:
            release = parse_signed_release(entry.leaf_input)
        except EnclaviaError as err:
            return Alert("unapproved_log_entry", log_index=entry.index, code=err.code)
        try:
            verify_release(release, release_keys=self.release_keys, approvers=self.approvers)
        except EnclaviaError as err:
            return Alert(
                "unapproved_log_entry",
                log_index=entry.index,
                manifest_digest=release.record.manifest_digest.hex(),
                release=release.record.version,
                code=err.code,
            )
        return None


@dataclass(frozen=True)
class Observation:
    """One enclave in service, as attested: ``reference`` is the policy entry it matched (None: refused)."""

    tee: Tee
    measurement: str | None
    manifest_digest: str | None
    reference: str | None
    published: bool | None = None  # None: not checked against the log
    error_code: str | None = None
