"""W3C trace context (traceparent) as the correlation id."""

from __future__ import annotations

import functools
import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

F = TypeVar("F", bound=Callable[..., Any])

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def new_traceparent() -> str:
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def parse_traceparent(value: str | None) -> str | None:
    """The traceparent if well-formed (and not all-zero ids), else None. Never echo malformed input."""
    if not value or len(value) != 55:
        return None
    m = _TRACEPARENT.match(value)
    if not m or m.group(1) == "0" * 32 or m.group(2) == "0" * 16:
        return None
    return value


def trace_id(traceparent: str) -> str:
    return traceparent[3:35]


# -- OpenTelemetry spans ---------------------------------------------------------------------------
#
# Spans carry the same correlation id (the W3C trace id) from the client through the host and the enclave,
# and from the host's key-broker relay through the enclave to the broker. Like log events they are
# content-free: span names are fixed, attributes pass an allow-list (``SPAN_ATTRIBUTES``) and exceptions are
# never recorded (their text could hold input); a failed span carries only a stable error code.
#
# Export is off unless configured: ``ENCLAVIA_TRACE_EXPORT`` = ``none`` (default), ``console`` (stderr), or
# ``file:DIR`` (one JSON line per span in DIR/<component>-<pid>.jsonl). No network exporter is wired in;
# ship the files with the log pipeline. Tests pass an in-memory exporter to ``configure_tracing``.

SPAN_ATTRIBUTES = frozenset(
    {
        "enclavia.route",
        "enclavia.outcome",
        "enclavia.frame",
        "enclavia.stage",
        "enclavia.secrets",
        "enclavia.bytes_in",
        "enclavia.bytes_out",
        "enclavia.tee",
        "http.status_code",
    }
)
TRACE_EXPORT_ENV = "ENCLAVIA_TRACE_EXPORT"

_ROUTES = (
    ("/v1/models", "models"),
    ("/v1/predict/", "predict"),
    ("/v1/embeddings", "embeddings"),
    ("/v1/documents", "documents"),
    ("/v1/rag/query", "rag_query"),
    ("/v1/chat/completions", "chat"),
)
_provider: Any = None


class _NoopSpan:
    """Stands in for a span while tracing is off."""

    def set_attribute(self, key: str, value: Any) -> None:
        del key, value

    def set_status(self, status: Any) -> None:
        del status


_NOOP_SPAN = _NoopSpan()


def route_label(path: str) -> str:
    """Fixed vocabulary for an inner path (the model id and query never become a label)."""
    path = path.split("?", 1)[0]
    for prefix, label in _ROUTES:
        if path == prefix or (prefix.endswith("/") and path.startswith(prefix)):
            return label
    return "other"


def configure_tracing(component: str, exporter: Any = None) -> Any:
    """Install this process's tracer provider. ``exporter``: an OpenTelemetry SpanExporter; default from
    ``ENCLAVIA_TRACE_EXPORT``. Returns the exporter (None when tracing stays off)."""
    global _provider  # noqa: PLW0603 - one provider per process, replaced by tests
    import os

    if exporter is None:
        setting = os.environ.get(TRACE_EXPORT_ENV, "none")
        if setting == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            exporter = ConsoleSpanExporter(service_name=f"enclavia-{component}")
        elif setting.startswith("file:"):
            exporter = JsonLinesSpanExporter(setting[5:], component)
        else:
            _provider = None
            return None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": f"enclavia-{component}"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    _provider = provider
    return exporter


def _tracer() -> Any:
    from opentelemetry import trace as otel

    return (_provider or otel.get_tracer_provider()).get_tracer("enclavia")


def _clean(attributes: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v for k, v in attributes.items() if k in SPAN_ATTRIBUTES and isinstance(v, (str, int, float, bool))
    }


@contextmanager
def span(
    name: str, *, traceparent: str | None = None, server: bool = False, **attributes: Any
) -> Iterator[Any]:
    """A content-free span; child of ``traceparent`` when given (and well-formed), else of the current span.
    An ``EnclaviaError`` leaving the block sets ``enclavia.outcome`` to its code; nothing else is recorded."""
    if _provider is None:
        # Tracing off (the default): skip OpenTelemetry entirely; its no-op path still costs about 0.1 ms
        # a span, which is a tenth of the prediction path's latency budget.
        yield _NOOP_SPAN
        return
    from opentelemetry.trace import SpanKind, Status, StatusCode
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    from enclavia.errors import EnclaviaError

    ctx = None
    if traceparent and parse_traceparent(traceparent):
        ctx = TraceContextTextMapPropagator().extract({"traceparent": traceparent})
    kind = SpanKind.SERVER if server else SpanKind.INTERNAL
    with _tracer().start_as_current_span(
        name,
        context=ctx,
        kind=kind,
        attributes=_clean({k.replace("__", "."): v for k, v in attributes.items()}),
        record_exception=False,
        set_status_on_exception=False,
    ) as current:
        try:
            yield current
        except EnclaviaError as err:
            current.set_attribute("enclavia.outcome", err.code)
            current.set_status(Status(StatusCode.ERROR))
            raise
        except BaseException:
            current.set_attribute("enclavia.outcome", "error")
            current.set_status(Status(StatusCode.ERROR))
            raise


def set_span_attributes(**attributes: Any) -> None:
    """Add allow-listed attributes (``enclavia__route=...`` for ``enclavia.route``) to the current span."""
    if _provider is None:
        return
    from opentelemetry import trace as otel

    current = otel.get_current_span()
    for key, value in _clean({k.replace("__", "."): v for k, v in attributes.items()}).items():
        current.set_attribute(key, value)


def current_traceparent() -> str | None:
    """The W3C traceparent of the current span (to put in a frame or an HTTP header), if there is one."""
    if _provider is None:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return parse_traceparent(carrier.get("traceparent"))


def trace_headers() -> dict[str, str]:
    tp = current_traceparent()
    return {"traceparent": tp} if tp else {}


def traced(name: str, attributes: Callable[..., dict[str, Any]] | None = None) -> Callable[[F], F]:
    """Decorator form of ``span``: ``attributes(*args, **kwargs)`` gives the span's attributes."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            with span(name, **(attributes(*args, **kwargs) if attributes else {})):
                return fn(*args, **kwargs)

        return cast(F, inner)

    return wrap


class JsonLinesSpanExporter:
    """One compact JSON line per finished span, appended to DIR/<component>-<pid>.jsonl. No network."""

    def __init__(self, directory: str, component: str) -> None:
        import os

        os.makedirs(directory, exist_ok=True)
        self.path = os.path.join(directory, f"{component}-{os.getpid()}.jsonl")

    def export(self, spans: Any) -> Any:
        import json

        from opentelemetry.sdk.trace.export import SpanExportResult

        lines = []
        for s in spans:
            parent = s.parent.span_id if s.parent is not None else None
            lines.append(
                json.dumps(
                    {
                        "name": s.name,
                        "service": s.resource.attributes.get("service.name"),
                        "trace_id": f"{s.context.trace_id:032x}",
                        "span_id": f"{s.context.span_id:016x}",
                        "parent_span_id": f"{parent:016x}" if parent else None,
                        "kind": s.kind.name,
                        "start_ns": s.start_time,
                        "end_ns": s.end_time,
                        "status": s.status.status_code.name,
                        "attributes": dict(s.attributes or {}),
                    },
                    sort_keys=True,
                )
            )
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write("".join(line + "\n" for line in lines))
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        del timeout_millis
        return True
