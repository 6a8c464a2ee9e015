"""Prometheus metrics. Labels are fixed vocabularies (routes, outcomes, error codes, kinds): never content.

Where each family comes from (docs/observability.md has the table, deploy/prometheus/alerts.yml the alerts):

* host (``GET /metrics`` on the host): requests and latency by route and outcome, rate limiting, enclave
  up/restarts, key-broker relay attempts by outcome.
* enclave (fetched by the host over the socket and appended): inner requests and latency by route and
  outcome, attestation bundles, gateway errors by code, the measurement in service, usage anomalies.
* broker (``GET /metrics`` on the broker): decisions, attestation failures and key-release denials by code,
  latency, plus ``enclavia.broker.ops`` gauges read from the database at scrape time (policy revision, audit
  ledger height, last checkpoint), so every replica reports the shared truth.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# Outcome label values: "ok" or a stable error code (enclavia.errors), never free text.
OK = "ok"
ANOMALY_KINDS = ("rate", "volume")


class HostMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "enclavia_host_requests", "Host requests by route and outcome", ["route", "outcome"], registry=r
        )
        self.latency = Histogram(
            "enclavia_host_request_seconds",
            "Host request latency by route and outcome",
            ["route", "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.enclave_restarts = Counter("enclavia_enclave_restarts", "Enclave process restarts", registry=r)
        self.enclave_up = Gauge("enclavia_enclave_up", "1 when the enclave process answers", registry=r)
        self.rate_limited = Counter(
            "enclavia_host_rate_limited", "Requests refused by the rate limiter", ["route"], registry=r
        )
        self.kbs_attempts = Counter(
            "enclavia_host_kbs_attempts",
            "Key-broker relay passes (challenge, attest, release) by outcome code",
            ["outcome"],
            registry=r,
        )
        self.secrets_ready = Gauge(
            "enclavia_host_kbs_complete",
            "1 once the current enclave process holds every secret it asked the broker for",
            registry=r,
        )


class EnclaveMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "enclavia_enclave_requests",
            "Inner requests by route and outcome",
            ["route", "outcome"],
            registry=r,
        )
        self.latency = Histogram(
            "enclavia_enclave_request_seconds",
            "Inner request latency inside the enclave, by route and outcome",
            ["route", "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.attestations = Counter(
            "enclavia_enclave_attestations", "Attestation bundles produced", ["outcome"], registry=r
        )
        self.attestation_failures = Counter(
            "enclavia_enclave_attestation_failures",
            "Attestation bundles the enclave could not produce, by error code",
            ["code"],
            registry=r,
        )
        self.gateway_errors = Counter(
            "enclavia_enclave_gateway_errors", "OHTTP decapsulation failures by code", ["code"], registry=r
        )
        self.measurement = Gauge(
            "enclavia_enclave_measurement_info", "Measurement in service (label)", ["measurement"], registry=r
        )
        self.usage = UsageMetrics(r)


class UsageMetrics:
    """Per-tenant usage anomalies (enclavia.observability.anomaly). No tenant label: the audit event carries
    the tenant as a keyed reference; the metric only says that, and which kind, happened."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.anomalies = Counter(
            "enclavia_usage_anomalies",
            "Per-tenant usage anomalies by kind (rate, volume)",
            ["kind"],
            registry=r,
        )
        self.active = Gauge(
            "enclavia_usage_anomalous_tenants",
            "Tenants whose last closed window was anomalous, by kind",
            ["kind"],
            registry=r,
        )
        for kind in ANOMALY_KINDS:
            self.anomalies.labels(kind)
            self.active.labels(kind).set(0)
