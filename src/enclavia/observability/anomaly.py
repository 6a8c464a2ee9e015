"""Per-tenant usage anomaly detection: request rate and volume per window against a robust baseline.

Traffic is counted per tenant in fixed windows (``window_s``, aligned to the clock). When a window closes,
each tenant's two values (requests, bytes) are compared with that tenant's own baseline:

* baseline: an EWMA of past windows (``alpha``), seeded with their median;
* spread: the median absolute deviation (MAD) of the last ``history`` windows, scaled by 1.4826 so it
  estimates a standard deviation for normal data while a few outliers cannot move it;
* threshold: ``max(baseline + k * 1.4826 * MAD, baseline * min_ratio, baseline + min_delta)``: the ratio and
  delta floors stop a perfectly steady tenant (MAD 0) from alerting on noise.

A window above the threshold is an anomaly. The value enters the baseline clipped to the threshold
(winsorised), so a burst does not teach the baseline that bursts are normal, yet a lasting change in a
tenant's traffic is learnt within a few windows. No alerts before ``warmup`` windows of history. Windows with
no traffic count as zeros (up to ``history`` of them), so a tenant that wakes up with a burst is caught.

Each anomaly goes to ``sink`` (the caller logs an audit event and counts it); tenants appear there only as
``ref(tenant)``, a keyed reference. Memory is bounded: at most ``max_tenants`` tenants (least recent dropped).
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Final

from enclavia.observability.metrics import ANOMALY_KINDS, UsageMetrics

MAD_TO_SIGMA: Final = 1.4826


@dataclass(frozen=True)
class Anomaly:
    tenant_ref: str
    kind: str  # "rate" (requests per window) or "volume" (bytes per window)
    window_start: float
    window_s: float
    value: float
    baseline: float
    threshold: float


@dataclass
class Baseline:
    """One tenant's history of one kind."""

    alpha: float
    k: float
    history: int
    warmup: int
    min_ratio: float
    min_delta: float
    ewma: float | None = None
    values: deque[float] = field(default_factory=deque)

    def threshold(self) -> tuple[float, float] | None:
        """(baseline, threshold), or None while warming up."""
        if self.ewma is None or len(self.values) < self.warmup:
            return None
        med = statistics.median(self.values)
        mad = statistics.median(abs(v - med) for v in self.values)
        base = self.ewma
        return base, max(base + self.k * MAD_TO_SIGMA * mad, base * self.min_ratio, base + self.min_delta)

    def update(self, value: float) -> tuple[float, float] | None:
        """Add one closed window. Returns (baseline, threshold) when ``value`` is anomalous, else None."""
        limits = self.threshold()
        anomalous = limits is not None and value > limits[1]
        kept = min(value, limits[1]) if limits is not None and anomalous else value
        self.values.append(kept)
        while len(self.values) > self.history:
            self.values.popleft()
        if self.ewma is None:
            self.ewma = kept
        elif len(self.values) <= self.warmup:
            self.ewma = statistics.median(self.values)
        else:
            self.ewma = self.alpha * kept + (1 - self.alpha) * self.ewma
        return limits if anomalous else None


@dataclass
class _Tenant:
    rate: Baseline
    volume: Baseline
    last_window: int
    requests: int = 0
    bytes: int = 0


class UsageMonitor:
    """Thread-safe. ``observe`` per request; windows close as the clock passes them (or on ``flush``)."""

    def __init__(
        self,
        *,
        ref: Callable[[str], str],
        sink: Callable[[Anomaly], None] | None = None,
        metrics: UsageMetrics | None = None,
        window_s: float = 60.0,
        alpha: float = 0.2,
        k: float = 6.0,
        history: int = 30,
        warmup: int = 5,
        min_ratio: float = 3.0,
        min_requests: float = 20.0,
        min_bytes: float = 64 * 1024,
        max_tenants: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if window_s <= 0 or not 0 < alpha <= 1 or history < warmup or warmup < 1:
            raise ValueError("invalid anomaly detector parameters")
        self.ref = ref
        self.sink = sink
        self.metrics = metrics
        self.window_s = window_s
        self.max_tenants = max_tenants
        self.clock = clock
        self._params = {"alpha": alpha, "k": k, "history": history, "warmup": warmup, "min_ratio": min_ratio}
        self._min = {"rate": min_requests, "volume": min_bytes}
        self._tenants: OrderedDict[str, _Tenant] = OrderedDict()
        self._window: int | None = None
        self._lock = threading.Lock()

    def _new(self, window: int) -> _Tenant:
        def base(kind: str) -> Baseline:
            p = self._params
            return Baseline(
                alpha=float(p["alpha"]),
                k=float(p["k"]),
                history=int(p["history"]),
                warmup=int(p["warmup"]),
                min_ratio=float(p["min_ratio"]),
                min_delta=self._min[kind],
            )

        return _Tenant(rate=base("rate"), volume=base("volume"), last_window=window)

    def observe(self, tenant: str, nbytes: int, now: float | None = None) -> list[Anomaly]:
        """Count one request of ``nbytes`` for ``tenant``. Returns anomalies of windows this call closed."""
        t = self.clock() if now is None else now
        window = math.floor(t / self.window_s)
        with self._lock:
            found = self._advance(window)
            state = self._tenants.get(tenant)
            if state is None:
                state = self._new(window)
                self._tenants[tenant] = state
                while len(self._tenants) > self.max_tenants:
                    self._tenants.popitem(last=False)
            self._tenants.move_to_end(tenant)
            state.requests += 1
            state.bytes += max(0, int(nbytes))
        self._emit(found)
        return found

    def flush(self, now: float | None = None) -> list[Anomaly]:
        """Close every window that ended before ``now``."""
        t = self.clock() if now is None else now
        with self._lock:
            found = self._advance(math.floor(t / self.window_s))
        self._emit(found)
        return found

    def _advance(self, window: int) -> list[Anomaly]:
        if self._window is None:
            self._window = window
        found: list[Anomaly] = []
        if window <= self._window:
            return found
        closed = self._window
        flagged = dict.fromkeys(ANOMALY_KINDS, 0)
        history = int(self._params["history"])
        for tenant, state in self._tenants.items():
            # The window that just closed, then empty windows up to now (at most `history` of them).
            values = [(closed, state.requests, state.bytes)]
            gap = min(window - closed - 1, history)
            values += [(closed + i + 1, 0, 0) for i in range(gap)]
            for start, requests, nbytes in values:
                for kind, baseline, value in (
                    ("rate", state.rate, requests),
                    ("volume", state.volume, nbytes),
                ):
                    limits = baseline.update(float(value))
                    if limits is not None:
                        flagged[kind] += start == closed
                        found.append(
                            Anomaly(
                                tenant_ref=self.ref(tenant),
                                kind=kind,
                                window_start=start * self.window_s,
                                window_s=self.window_s,
                                value=float(value),
                                baseline=round(limits[0], 3),
                                threshold=round(limits[1], 3),
                            )
                        )
            state.requests = state.bytes = 0
            state.last_window = window
        self._window = window
        if self.metrics is not None:
            for kind in ANOMALY_KINDS:
                self.metrics.active.labels(kind).set(flagged[kind])
        return found

    def _emit(self, found: list[Anomaly]) -> None:
        for anomaly in found:
            if self.metrics is not None:
                self.metrics.anomalies.labels(anomaly.kind).inc()
            if self.sink is not None:
                self.sink(anomaly)


# The tenant of the request being handled, set by whoever authenticates it (enclave data routes).
current_tenant: ContextVar[str | None] = ContextVar("enclavia_current_tenant", default=None)
