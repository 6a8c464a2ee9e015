"""Per-tenant usage anomalies on a synthetic trace: the burst is flagged, steady and slowly growing traffic
is not; metric and audit event carry only the kind and a keyed tenant reference."""

from __future__ import annotations

import random

from prometheus_client import CollectorRegistry, generate_latest

from enclavia.observability.anomaly import Anomaly, UsageMonitor
from enclavia.observability.metrics import UsageMetrics

WINDOW = 60.0
WINDOWS = 60


def trace(seed: int = 7) -> list[tuple[float, str, int]]:
    """(time, tenant, bytes). Steady tenants a and b (noisy), d growing slowly (x2 over the hour), c idle
    at first; b bursts x10 in windows 40-41, c sends two huge documents in window 50."""
    rng = random.Random(seed)
    events: list[tuple[float, str, int]] = []
    for w in range(WINDOWS):
        rates = {"a": 40, "b": 25, "d": 30 * (1 + w / WINDOWS), "c": 5 if w >= 10 else 0}
        if w in (40, 41):
            rates["b"] *= 10
        for tenant, rate in rates.items():
            n = max(0, round(rng.gauss(rate, rate**0.5)))
            for i in range(n):
                size = max(200, round(rng.gauss(2000, 400)))
                if tenant == "c" and w == 50 and i < 2:
                    size *= 200
                events.append((w * WINDOW + rng.uniform(0, WINDOW), tenant, size))
    return sorted(events)


def run(events: list[tuple[float, str, int]]) -> tuple[list[Anomaly], UsageMetrics]:
    metrics = UsageMetrics(CollectorRegistry())
    found: list[Anomaly] = []
    monitor = UsageMonitor(ref=lambda t: "ref-" + t, sink=found.append, metrics=metrics, window_s=WINDOW)
    for t, tenant, size in events:
        monitor.observe(tenant, size, now=t)
    monitor.flush(now=WINDOWS * WINDOW + 1)
    return found, metrics


def test_flags_the_burst_and_not_the_steady_trace() -> None:
    found, metrics = run(trace())
    flagged = {(a.tenant_ref, a.kind, int(a.window_start // WINDOW)) for a in found}
    assert ("ref-b", "rate", 40) in flagged and ("ref-b", "rate", 41) in flagged
    assert ("ref-c", "volume", 50) in flagged
    assert not {f for f in flagged if f[0] in {"ref-a", "ref-d"}}, "steady or slowly growing traffic flagged"
    # Only the burst windows: b's rate burst (and its volume, which grows with it), c's volume.
    assert {(r, w) for r, _, w in flagged} <= {("ref-b", 40), ("ref-b", 41), ("ref-c", 50)}
    b40 = next(a for a in found if a.tenant_ref == "ref-b" and a.kind == "rate")
    assert b40.value > b40.threshold > b40.baseline > 0
    text = generate_latest(metrics.registry).decode()
    assert 'enclavia_usage_anomalies_total{kind="rate"} 2.0' in text
    assert "ref-" not in text  # no tenant in the metric


def test_steady_trace_alone_is_quiet() -> None:
    quiet = [e for e in trace(seed=11) if e[1] in {"a", "d"}]
    found, _ = run(quiet)
    assert found == []


def test_burst_does_not_become_the_baseline() -> None:
    """After a burst, normal traffic is not flagged and a second burst still is."""
    found: list[Anomaly] = []
    monitor = UsageMonitor(ref=str, sink=found.append, window_s=1.0, warmup=3)
    counts = [20] * 10 + [400] + [20] * 10 + [400] + [20] * 3
    for w, n in enumerate(counts):
        for i in range(n):
            monitor.observe("t", 100, now=w + i / (n + 1))
    monitor.flush(now=len(counts) + 1)
    assert sorted({int(a.window_start) for a in found if a.kind == "rate"}) == [10, 21]


def test_enclave_usage_event_is_content_free(tmp_path: object) -> None:
    import io
    import json

    from enclavia.enclave.usage import tenant_ref, usage_monitor
    from enclavia.observability import logging as elog
    from enclavia.observability.metrics import EnclaveMetrics
    from enclavia.rag.keys import StaticKekSource

    stream = io.StringIO()
    elog.configure("enclave", stream=stream)
    kek = b"k" * 32
    monitor = usage_monitor(
        StaticKekSource({"k1": kek}, "k1"), EnclaveMetrics().usage, elog.get_logger().info
    )
    monitor.window_s = 1.0
    for w in range(8):
        for _ in range(300 if w == 7 else 10):
            monitor.observe("tenant-canary-7f3a", 1000, now=float(w))
    monitor.flush(now=9.0)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    events = [e for e in lines if e["event"] == "usage.anomaly"]
    assert events and "tenant-canary-7f3a" not in stream.getvalue()
    assert events[0]["tenant_ref"] == tenant_ref(kek, "tenant-canary-7f3a")
    assert set(events[0]) <= {
        "event", "level", "timestamp", "component", "pid", "kind", "tenant_ref", "value", "baseline",
        "threshold", "window_s", "window_start",
    }  # fmt: skip
