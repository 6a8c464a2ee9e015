"""Drift monitor: enclaves running what was not promoted, log entries without an approved release."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from prometheus_client import generate_latest

from enclavia.attestation.claims import Tee
from enclavia.attestation.release import sign_record
from enclavia.attestation.tlog import MemoryTreeHeadStore
from enclavia.policy.document import parse_policy
from enclavia.release.drift import Alert, DriftMonitor, LogScanState, Observation
from enclavia.release.tlog import TransparencyLog
from tests.release.helpers import Authority, record

MakeLog = Callable[..., TransparencyLog]
KEY = "33" * 32
POLICY = parse_policy(
    f"""policy_id: p
revision: 3
profile: dev
trust: {{simulated_platform_keys: ['{KEY}']}}
reference_values:
  simulated:
    - name: release-2.0.0
      measurement: '{"22" * 48}'
    - name: release-1.0.0
      measurement: '{"11" * 48}'
"""
)


def _monitor(auth: Authority) -> tuple[DriftMonitor, list[Alert]]:
    seen: list[Alert] = []
    return DriftMonitor(
        audit=seen.append, release_keys=[auth.release_key.public_bytes], approvers=auth.approvers
    ), seen


def _metric(monitor: DriftMonitor, name: str, kind: str) -> float:
    value = monitor.metrics.registry.get_sample_value(name, {"kind": kind})
    return float(value or 0.0)


def test_enclave_findings(authority: Authority) -> None:
    monitor, seen = _monitor(authority)
    observed = [
        Observation(Tee.SIMULATED, "22" * 48, "22" * 48, "release-2.0.0", published=True),  # primary: fine
        Observation(Tee.SIMULATED, "11" * 48, "11" * 48, "release-1.0.0", published=True),  # overlap
        Observation(Tee.SIMULATED, None, "99" * 48, None, error_code="policy.measurement_not_allowed"),
        Observation(
            Tee.SIMULATED,
            "22" * 48,
            "22" * 48,
            "release-2.0.0",
            published=False,
            error_code="tlog.not_included",
        ),
    ]
    alerts = monitor.check_enclaves(observed, POLICY)
    assert [a.kind for a in alerts] == [
        "measurement_not_promoted",
        "measurement_not_allowed",
        "measurement_not_published",
    ]
    assert alerts[1].manifest_digest == "99" * 48 and alerts[1].code == "policy.measurement_not_allowed"
    assert seen == alerts  # one audit event each
    assert _metric(monitor, "enclavia_release_drift_total", "measurement_not_allowed") == 1
    assert _metric(monitor, "enclavia_release_drift_active", "measurement_not_allowed") == 1
    # the next pass is clean: the active gauge drops, the counter keeps its history
    assert monitor.check_enclaves(observed[:1], POLICY) == []
    assert _metric(monitor, "enclavia_release_drift_active", "measurement_not_allowed") == 0
    assert _metric(monitor, "enclavia_release_drift_total", "measurement_not_allowed") == 1
    assert b"enclavia_release_drift_total" in generate_latest(monitor.metrics.registry)


def test_log_entries_without_an_approved_release(make_log: MakeLog, authority: Authority) -> None:
    log = make_log(release_keys=())  # an operator's log that accepts any well-formed release
    monitor, seen = _monitor(authority)
    heads, scan = MemoryTreeHeadStore(), LogScanState()
    log.append(authority.release(b"\x01" * 48, "1.0.0").encode())
    assert monitor.scan_log(log, log.public_key, heads, scan) == []
    log.append(authority.release(b"\x02" * 48, "1.1.0", approvals=1).encode())  # 1 of 2
    log.append(sign_record(record(b"\x03" * 48, "1.2.0"), Authority().release_key).encode())  # rogue key
    log.append(authority.release(b"\x04" * 48, "1.3.0").encode())
    alerts = monitor.scan_log(log, log.public_key, heads, scan)
    assert [(a.kind, a.log_index, a.code) for a in alerts] == [
        ("unapproved_log_entry", 1, "release.approvals_missing"),
        ("unapproved_log_entry", 2, "release.bad_signature"),
    ]
    assert len(scan.leaf_hashes) == 4 and seen == alerts
    assert monitor.scan_log(log, log.public_key, heads, scan) == []  # only new entries are examined


def test_log_serving_entries_that_do_not_match_its_head(make_log: MakeLog, authority: Authority) -> None:
    log = make_log()
    for i in range(3):
        log.append(authority.release(bytes([i + 1]) * 48, f"1.0.{i}").encode())
    monitor, _ = _monitor(authority)

    class Lying:
        def __getattr__(self, name: str) -> Any:
            return getattr(log, name)

        def get_entries(self, start: int, end: int) -> list[Any]:
            entries = log.get_entries(start, end)
            doc = json.loads(entries[-1].leaf_input)
            doc["record"]["notes"] = "edited"
            return [*entries[:-1], type(entries[-1])(entries[-1].index, json.dumps(doc).encode())]

    alerts = monitor.scan_log(Lying(), log.public_key, MemoryTreeHeadStore(), LogScanState())
    assert [a.kind for a in alerts] == ["log_inconsistent"]
    assert _metric(monitor, "enclavia_release_drift_active", "log_inconsistent") == 1
