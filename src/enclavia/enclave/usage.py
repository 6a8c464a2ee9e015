"""Per-tenant usage monitoring inside the enclave: tenants leave only as keyed references.

``tenant_ref = HMAC-SHA256(usage_key, "tenant" || 0x00 || tenant)[:32 hex]`` with
``usage_key = HMAC-SHA256(current KEK, "enclavia-usage-ref-v1")``: the data owner, who provisions the KEK
through the broker, can compute the reference of a known tenant; the host operator cannot.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from typing import Any

from enclavia.errors import EnclaviaError
from enclavia.observability.anomaly import Anomaly, UsageMonitor
from enclavia.observability.metrics import UsageMetrics
from enclavia.rag.keys import KekSource

USAGE_REF_CONTEXT = b"enclavia-usage-ref-v1"


def tenant_ref(kek: bytes, tenant: str) -> str:
    key = hmac.new(kek, USAGE_REF_CONTEXT, hashlib.sha256).digest()
    return hmac.new(key, b"tenant\x00" + tenant.encode(), hashlib.sha256).hexdigest()[:32]


def usage_monitor(keks: KekSource, metrics: UsageMetrics, log: Callable[..., Any] | None) -> UsageMonitor:
    fallback = secrets.token_bytes(32)

    def ref(tenant: str) -> str:
        try:
            kek = keks.current()[1]
        except EnclaviaError:  # KEK not released yet: a reference stable for this process only
            kek = fallback
        return tenant_ref(kek, tenant)

    def sink(anomaly: Anomaly) -> None:
        if log is not None:
            log(
                "usage.anomaly",
                kind=anomaly.kind,
                tenant_ref=anomaly.tenant_ref,
                value=anomaly.value,
                baseline=anomaly.baseline,
                threshold=anomaly.threshold,
                window_s=anomaly.window_s,
                window_start=anomaly.window_start,
            )

    return UsageMonitor(ref=ref, sink=sink, metrics=metrics)
