"""Host HTTP API (FastAPI): attestation relay, OHTTP relay, health, metrics. Bytes only."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response, StreamingResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from enclavia import channel
from enclavia.errors import (
    BadRequestError,
    EnclaveUnavailableError,
    EnclaviaError,
    InternalError,
    NotFoundError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)
from enclavia.host.kbs import KbsRelay
from enclavia.host.link import EnclaveLink, Supervisor
from enclavia.host.services import HostServices
from enclavia.host.tracing import traced_call
from enclavia.observability.logging import get_logger
from enclavia.observability.metrics import HostMetrics
from enclavia.observability.trace import new_traceparent, parse_traceparent
from enclavia.problem import PROBLEM_MEDIA_TYPE, problem_bytes
from enclavia.ratelimit import TokenBucket

OHTTP_REQ = "message/ohttp-req"
OHTTP_RES = "message/ohttp-res"
# draft-ietf-ohai-chunked-ohttp: relayed as a stream of opaque bytes, like the non-chunked variant.
OHTTP_CHUNKED_REQ = "message/ohttp-chunked-req"
OHTTP_CHUNKED_RES = "message/ohttp-chunked-res"
MAX_GATEWAY_BODY = 2 << 20


class RateLimitedError(EnclaviaError):
    code = "request.rate_limited"
    status = 429
    title = "Too many attestation requests"


@dataclass
class HostState:
    link: EnclaveLink
    supervisor: Supervisor | None
    metrics: HostMetrics
    attest_bucket: TokenBucket
    kbs: KbsRelay | None = None  # key-broker relay (enclavia serve --broker URL)
    services: HostServices | None = None  # ciphertext blob store + egress relay for the enclave


class TypedErrors:
    """Innermost-but-one ASGI layer: an unexpected exception becomes a typed ``enclave.internal`` problem
    (or, once a streamed answer has started, a closed stream) and a ``host.internal_error`` event with the
    code only. Nothing reaches Starlette's error middleware or uvicorn, which would print a traceback whose
    text could hold request bytes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:  # noqa: BLE001 - last resort; the text is dropped on purpose
            get_logger().info("host.internal_error", error_code=InternalError.code, started=started)
            if not started:
                await _problem(InternalError, "")(scope, receive, send)


def _problem(err: EnclaviaError | type[EnclaviaError], traceparent: str) -> Response:
    cls = err if isinstance(err, type) else type(err)
    return Response(problem_bytes(cls, traceparent), status_code=cls.status, media_type=PROBLEM_MEDIA_TYPE)


async def _relay_stream(state: HostState, body: bytes, request: Request) -> Response:
    """Chunked OHTTP: pass the enclave's ciphertext pieces on as they come; sizes and timing only."""
    log = get_logger()
    tp = parse_traceparent(request.headers.get("traceparent")) or new_traceparent()
    start = time.perf_counter()
    pieces = state.link.stream(channel.Kind.GATEWAY_STREAM, body, tp)

    def done(status: int, outcome: str, sent: int) -> None:
        elapsed = time.perf_counter() - start
        state.metrics.requests.labels("gateway_stream", outcome).inc()
        log.info(
            "host.request",
            route="gateway_stream",
            status=status,
            outcome=outcome,
            bytes_in=len(body),
            bytes_out=sent,
            duration_ms=round(elapsed * 1000, 3),
            correlation_id=tp,
        )

    try:
        first = await anext(pieces)
    except EnclaviaError as err:
        resp = _problem(err, tp)
        done(resp.status_code, err.code, len(resp.body))
        return resp
    except StopAsyncIteration:
        done(502, EnclaveUnavailableError.code, 0)
        return _problem(EnclaveUnavailableError, tp)

    async def relayed() -> AsyncIterator[bytes]:
        sent, outcome = len(first), "ok"
        try:
            yield first
            async for piece in pieces:
                sent += len(piece)
                yield piece
        except EnclaviaError as err:
            outcome = err.code  # the enclave broke off: end the body early; the client sees truncation
        finally:
            await pieces.aclose()
            done(200, outcome, sent)

    return StreamingResponse(
        relayed(),
        media_type=OHTTP_CHUNKED_RES,
        headers={"cache-control": "no-store", "traceparent": tp},
    )


def _lifespan(state: HostState) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if state.services is not None:
            await state.services.start()
        if state.supervisor is not None:
            await state.supervisor.start()
        if state.kbs is not None:
            await state.kbs.start()
        yield
        if state.kbs is not None:
            await state.kbs.stop()
        if state.supervisor is not None:
            await state.supervisor.stop()
        if state.services is not None:
            await state.services.stop()

    return lifespan


async def _relay(
    state: HostState, request: Request, *, route: str, kind: channel.Kind, body: bytes, media: str
) -> Response:
    log = get_logger()
    tp = parse_traceparent(request.headers.get("traceparent")) or new_traceparent()
    start = time.perf_counter()
    try:
        out = await traced_call(state.link, kind, body, tp, route)
        resp = Response(out, media_type=media, headers={"cache-control": "no-store", "traceparent": tp})
        outcome = "ok"
    except EnclaviaError as err:
        resp, outcome = _problem(err, tp), err.code
        if isinstance(err, EnclaveUnavailableError):
            log.info("host.enclave_unreachable", route=route, error_code=err.code, correlation_id=tp)
    elapsed = time.perf_counter() - start
    state.metrics.requests.labels(route, outcome).inc()
    state.metrics.latency.labels(route, outcome).observe(elapsed)
    log.info(
        "host.request",
        route=route,
        status=resp.status_code,
        outcome=outcome,
        bytes_in=len(body),
        bytes_out=len(resp.body),
        duration_ms=round(elapsed * 1000, 3),
        correlation_id=tp,
    )
    return resp


def create_app(state: HostState) -> FastAPI:
    app = FastAPI(
        title="enclavia host", lifespan=_lifespan(state), docs_url=None, redoc_url=None, openapi_url=None
    )
    app.add_middleware(TypedErrors)
    log = get_logger()

    async def relay(route: str, kind: channel.Kind, body: bytes, request: Request, media: str) -> Response:
        return await _relay(state, request, route=route, kind=kind, body=body, media=media)

    @app.get("/v1/attestation")
    async def attestation(request: Request) -> Response:
        nonce = request.query_params.get("nonce", "")
        if not state.attest_bucket.allow():
            state.metrics.rate_limited.labels("attestation").inc()
            log.info("host.rate_limited", route="attestation")
            return _problem(RateLimitedError, "")
        if not 32 <= len(nonce) <= 128 or any(c not in "0123456789abcdefABCDEF" for c in nonce):
            return _problem(BadRequestError, "")
        return await relay(
            "attestation", channel.Kind.ATTEST, nonce.encode("ascii"), request, "application/json"
        )

    @app.post("/v1/gateway")
    async def gateway(request: Request) -> Response:
        ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if ctype not in {OHTTP_REQ, OHTTP_CHUNKED_REQ}:
            return _problem(UnsupportedMediaTypeError, "")
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_GATEWAY_BODY):
            return _problem(PayloadTooLargeError, "")
        body = bytearray()
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > MAX_GATEWAY_BODY:
                return _problem(PayloadTooLargeError, "")
        return await (
            _relay_stream(state, bytes(body), request)
            if ctype == OHTTP_CHUNKED_REQ
            else relay("gateway", channel.Kind.GATEWAY, bytes(body), request, OHTTP_RES)
        )

    @app.get("/healthz")
    async def healthz() -> Response:
        up = state.supervisor.up if state.supervisor is not None else True
        body = b'{"status":"ok","enclave":"up"}' if up else b'{"status":"degraded","enclave":"down"}'
        return Response(body, status_code=200 if up else 503, media_type="application/json")

    @app.get("/metrics")
    async def metrics() -> Response:
        text = generate_latest(state.metrics.registry)
        with suppress(EnclaviaError):
            text += await state.link.call(channel.Kind.METRICS, b"")
        return Response(text, media_type=CONTENT_TYPE_LATEST)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        # Starlette's own 404/405 bodies are fine, but keep one shape and never echo the path.
        return _problem(NotFoundError if exc.status_code == 404 else BadRequestError, "")

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, __: RequestValidationError) -> Response:
        # FastAPI's default body echoes the input; ours never does.
        return _problem(BadRequestError, "")

    return app
