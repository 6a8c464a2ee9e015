"""Prometheus metrics. Labels are fixed vocabularies (routes, outcomes, error codes): never content."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class HostMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "enclavia_host_requests", "Host requests by route and outcome", ["route", "outcome"], registry=r
        )
        self.latency = Histogram(
            "enclavia_host_request_seconds",
            "Host request latency",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.enclave_restarts = Counter("enclavia_enclave_restarts", "Enclave process restarts", registry=r)
        self.enclave_up = Gauge("enclavia_enclave_up", "1 when the enclave process answers", registry=r)
        self.rate_limited = Counter(
            "enclavia_host_rate_limited", "Requests refused by the rate limiter", ["route"], registry=r
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
            "Inner request latency inside the enclave",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.attestations = Counter(
            "enclavia_enclave_attestations", "Attestation bundles produced", ["outcome"], registry=r
        )
        self.gateway_errors = Counter(
            "enclavia_enclave_gateway_errors", "OHTTP decapsulation failures by code", ["code"], registry=r
        )
        self.measurement = Gauge(
            "enclavia_enclave_measurement_info", "Measurement in service (label)", ["measurement"], registry=r
        )
