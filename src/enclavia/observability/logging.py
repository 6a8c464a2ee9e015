"""structlog JSON events with an allow-list per event.

Every event name must be in EVENT_SCHEMA; any field not listed for it is dropped before rendering,
so a careless ``log.info("x", body=...)`` cannot leak content. Unknown events keep only the base
fields. Exception text is never rendered (it could hold input); only the exception's class name.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

import structlog

BASE_FIELDS = frozenset({"event", "level", "timestamp", "component", "correlation_id", "pid"})

# event name -> extra fields allowed on it. Values must be sizes, durations, codes, digests or ids.
EVENT_SCHEMA: dict[str, frozenset[str]] = {
    "host.started": frozenset({"listen", "socket"}),
    "host.request": frozenset({"route", "status", "outcome", "bytes_in", "bytes_out", "duration_ms"}),
    "host.enclave_spawned": frozenset({"child_pid", "restarts"}),
    "host.enclave_exited": frozenset({"returncode", "restarts"}),
    "host.enclave_unreachable": frozenset({"route", "error_code"}),
    "host.rate_limited": frozenset({"route"}),
    "host.internal_error": frozenset({"error_code", "started"}),
    "host.egress": frozenset({"outcome", "status", "bytes_out", "bytes_in"}),
    "enclave.starting": frozenset({"tee", "suite"}),
    "enclave.hardening": frozenset({"dumpable", "netns", "reason"}),
    "enclave.ready": frozenset({"measurement", "manifest_digest", "key_id", "socket", "models"}),
    "enclave.attestation": frozenset({"outcome", "error_code", "duration_ms"}),
    "enclave.request": frozenset(
        {"route", "model", "status", "outcome", "error_code", "bytes_in", "bytes_out", "duration_ms"}
    ),
    "enclave.gateway_error": frozenset({"error_code"}),
    "enclave.stopping": frozenset({"signal"}),
    "enclave.memory": frozenset({"mechanism", "limit_bytes", "reason", "need_bytes", "baseline_bytes"}),
    "enclave.refused": frozenset({"error_code", "detail", "need_bytes", "limit_bytes"}),
    "enclave.split": frozenset(
        {"provider", "outcome", "error_code", "tokens_out", "reidentify_refused", "duration_ms"}
    ),
    "client.attested": frozenset({"tee", "measurement", "policy_id", "policy_revision"}),
    "client.attestation_failed": frozenset({"error_code"}),
    "client.retry": frozenset({"reason"}),
    # the local attesting proxy (enclavia.client.proxy): no bodies, prompts, paths beyond the fixed routes
    "proxy.started": frozenset({"listen", "upstream"}),
    "proxy.attested": frozenset({"tee", "measurement", "policy_id", "policy_revision", "key_id"}),
    "proxy.attestation_failed": frozenset({"error_code"}),
    "proxy.refused": frozenset({"reason", "error_code"}),
    "proxy.request": frozenset(
        {"route", "status", "outcome", "error_code", "stream", "bytes_in", "bytes_out", "duration_ms"}
    ),
    "release.rollout": frozenset(
        {"step", "outcome", "error_code", "policy_revision", "tee", "release", "manifest_digest"}
    ),
    "release.drift": frozenset({"kind", "tee", "measurement", "manifest_digest", "log_index", "release"}),
    "broker.event": frozenset(
        {
            "action",
            "outcome",
            "error_code",
            "policy_revision",
            "secret_ref",
            "tee",
            "measurement",
            "duration_ms",
        }
    ),
    "broker.started": frozenset({"listen", "store", "keystore", "kid", "policy_revision"}),
    "broker.store_error": frozenset({"stage", "error_code"}),
    # an integrity check of stored state failed (policy chain, ledger vs witness): an alert, never content
    "broker.integrity": frozenset({"check", "error_code", "policy_revision", "seq"}),
    "broker.witness": frozenset({"sink", "outcome", "seq"}),
    "host.kbs": frozenset({"stage", "outcome", "error_code", "attempt", "delay_ms", "secrets"}),
    "enclave.secret": frozenset({"outcome", "error_code", "secret_ref", "version", "pending"}),
    "enclave.plaintext_refused": frozenset({"model"}),
    "usage.anomaly": frozenset(
        {"kind", "tenant_ref", "value", "baseline", "threshold", "window_s", "window_start"}
    ),
}


def drop_unlisted_fields(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> Mapping[str, Any]:
    allowed = BASE_FIELDS | EVENT_SCHEMA.get(str(event_dict.get("event")), frozenset())
    for key in [k for k in event_dict if k not in allowed]:
        del event_dict[key]
    return event_dict


def configure(component: str, stream: TextIO | None = None, level: int = logging.INFO) -> None:
    """Idempotent; call once per process."""
    import os

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            drop_unlisted_fields,
            structlog.processors.JSONRenderer(sort_keys=True),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.WriteLoggerFactory(file=stream or sys.stderr),
        cache_logger_on_first_use=False,
    )
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(component=component, pid=os.getpid())


def get_logger() -> Any:
    return structlog.get_logger()
