"""Alert rules load in promtool, link existing runbooks, and use only metrics (and labels) our code exports;
the broker's ops gauges read the shared database."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics import MetricWrapperBase

from enclavia.broker.ops import OpsCollector, OpsView
from enclavia.broker.service import BrokerMetrics
from enclavia.observability.metrics import EnclaveMetrics, HostMetrics, UsageMetrics
from enclavia.release.drift import DriftMetrics
from tests.broker_support import Harness, make_harness

REPO = Path(__file__).resolve().parents[3]
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"
# Series Prometheus makes itself; anything else in an alert must be ours.
BUILTIN = {"up": {"job", "instance"}}


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = make_harness(f"sqlite:///{tmp_path / 'broker.db'}", tmp_path)
    yield h
    h.service.close()


def _families(obj: Any) -> dict[str, set[str]]:
    """metric family name -> label names, for every prometheus metric attribute of a metrics object."""
    out: dict[str, set[str]] = {}
    for value in vars(obj).values():
        if isinstance(value, MetricWrapperBase):
            name, labels, kind = value._name, set(value._labelnames), value._type
            names = {
                "counter": [name + "_total"],
                "histogram": [name + "_bucket", name + "_count", name + "_sum"],
            }.get(kind, [name])
            for n in names:
                out[n] = labels | ({"le"} if n.endswith("_bucket") else set())
        elif isinstance(value, UsageMetrics):
            out.update(_families(value))
    return out


def exported(harness: Harness) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for metrics in (HostMetrics(), EnclaveMetrics(), BrokerMetrics(), DriftMetrics()):
        out.update(_families(metrics))
    registry = CollectorRegistry()
    registry.register(OpsCollector(OpsView(harness.service)))
    for family in registry.collect():
        out[family.name] = {k for s in family.samples for k in s.labels}
    return out


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_promtool_loads_the_rules() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool missing: install Debian's prometheus package (.ci/run does)")
    out = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)], check=False, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(rules())} rules found" in out.stdout


def test_every_alert_links_a_runbook_and_uses_our_metrics(harness: Harness) -> None:
    metrics = exported(harness) | BUILTIN
    names = [r["alert"] for r in rules()]
    assert len(names) == len(set(names)) >= 15
    for rule in rules():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["labels"]["severity"] in {"page", "ticket"}
        runbook = rule["annotations"]["runbook_url"]
        assert runbook.startswith("docs/runbooks/") and (REPO / runbook).is_file(), runbook
        assert rule["annotations"]["summary"]
        expr = rule["expr"]
        words = re.findall(r"\b([a-z_][a-z0-9_]*)\b(?!\s*\()", expr)
        series = [m for m in words if m.startswith(("enclavia_", "up"))]
        assert series, rule["alert"]
        for name in series:
            assert name in metrics, f"{rule['alert']}: {name} is not exported by enclavia"
        # label matchers and grouping labels must be labels of the series they select
        for name, matchers in re.findall(r"\b(enclavia_[a-z0-9_]+|up)\{([^}]*)\}", expr):
            for label in re.findall(r"([a-z_]+)\s*(?:=~|!=|!~|=)", matchers):
                assert label in metrics[name], f"{rule['alert']}: {name} has no label {label}"
        for grouping in re.findall(r"by \(([^)]*)\)", expr):
            labels = {g.strip() for g in grouping.split(",")} - {"instance", "le"}
            assert labels <= set().union(*(metrics[s] for s in series)), (rule["alert"], labels)


def test_ops_gauges_follow_the_database(harness: Harness) -> None:
    h = harness
    registry = CollectorRegistry()
    view = OpsView(h.service, verify_interval_s=0.0)
    registry.register(OpsCollector(view))

    def value(name: str) -> float:
        for family in registry.collect():
            for sample in family.samples:
                if sample.name == name:
                    return float(sample.value)
        raise KeyError(name)

    assert value("enclavia_broker_policy_revision") == 1
    before = value("enclavia_broker_audit_ledger_height")
    h.service.put_secret("models/m1", b"k" * 32, rotate=False)
    h.service.release("models/m1", "Bearer " + h.attest()["token"])
    assert value("enclavia_broker_audit_ledger_height") == before + 3  # secret, attest, release
    assert value("enclavia_broker_audit_ledger_verified") == 1
    assert value("enclavia_broker_store_up") == 1
    assert 0 <= value("enclavia_broker_secret_oldest_version_age_seconds") < 60
    text = generate_latest(registry).decode()
    assert "models/m1" not in text and "enclavia_broker_audit_checkpoint_seq" in text
    # A tampered ledger shows as verified 0.
    from sqlalchemy import update

    from enclavia.broker.store import audit_records

    with h.service.store.engine.begin() as conn:
        conn.execute(update(audit_records).where(audit_records.c.seq == 2).values(code="edited"))
    assert value("enclavia_broker_audit_ledger_verified") == 0
