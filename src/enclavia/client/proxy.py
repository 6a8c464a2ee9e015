"""Local attesting proxy: a plain OpenAI-compatible API on localhost, every request sealed to an attested
enclave.

``enclavia proxy --upstream URL --policy FILE --listen 127.0.0.1:8080`` lets an existing OpenAI client (the
official ``openai`` package with ``base_url``) talk to an enclave unchanged:

* ``POST /v1/chat/completions`` (streamed or not), ``POST /v1/embeddings``, ``GET /v1/models``.
* Before the first request, and again when the evidence is older than ``reattest_after_s`` or the enclave's
  key configuration changed (a request sealed to a retired key comes back ``UnknownKeyIdError``), the proxy
  fetches fresh evidence and verifies it under the policy. Nothing is forwarded unless that succeeded: a
  failed or disallowed attestation is answered locally with an OpenAI-style error (status 403 or 503).
* Every request goes as chunked OHTTP; streamed tokens are decrypted as their chunks arrive. A chunk that
  was dropped, reordered or cut off by anything on the way is reported as an error, never passed on.
* Every response carries a receipt signed by the attested enclave key; the proxy verifies it and, with
  ``receipts_dir``, keeps it (with the attestation bundle it was verified against) for ``enclavia receipt
  verify``. Non-streamed responses also return it in the ``x-enclavia-receipt`` header.

Only local software can use it (DNS rebinding and cross-site requests from a web page are refused before
anything is read or forwarded, see :class:`LocalOnly`): the Host header must name a loopback address, a
request carrying an ``Origin`` header is refused unless that origin was allowed explicitly, a POST must be
``application/json``, and with ``token`` set every request needs ``Authorization: Bearer <token>`` (the
``api_key`` of an OpenAI client). No CORS headers are ever sent.

The proxy logs only content-free events (``proxy.*`` in enclavia.observability.logging).
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import json
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from enclavia.attestation.receipt import Receipt, encode_receipt
from enclavia.client.sdk import Client
from enclavia.client.stream import InnerStream
from enclavia.client.verify import VerifiedEnclave
from enclavia.errors import (
    AttestationError,
    BadRequestError,
    EnclaviaError,
    NotLocalError,
    PolicyError,
    UnauthenticatedError,
    error_for_code,
)
from enclavia.observability.logging import get_logger
from enclavia.policy.document import Policy

MAX_BODY = 1 << 20
RECEIPT_RESPONSE_HEADER = "x-enclavia-receipt"
_SSE_HEADERS = {"cache-control": "no-store", "x-accel-buffering": "no"}


def openai_error(err: EnclaviaError | type[EnclaviaError], status: int | None = None) -> Response:
    """OpenAI's error shape with our stable code; fixed text only, never the request."""
    cls = err if isinstance(err, type) else type(err)
    if issubclass(cls, AttestationError | PolicyError):
        kind = "attestation_failed"
    elif issubclass(cls, BadRequestError):
        kind = "invalid_request_error"
    else:
        kind = "server_error"
    body = {"error": {"message": cls.title, "type": kind, "code": cls.code, "param": None}}
    return JSONResponse(body, status_code=status or cls.status)


def _problem_code(content: bytes) -> str:
    try:
        doc = json.loads(content)
    except ValueError:
        return ""
    return str(doc.get("code", "")) if isinstance(doc, dict) else ""


class AttestingProxy:
    def __init__(
        self,
        upstream: str,
        policy: Policy | str | Path,
        *,
        receipts_dir: Path | None = None,
        reattest_after_s: float = 300.0,
        timeout: float = 120.0,
        token: str | None = None,
        allowed_origins: frozenset[str] = frozenset(),
    ) -> None:
        self.client = Client(upstream, policy, receipts=True, timeout=timeout)
        self.token = token
        self.allowed_origins = allowed_origins
        self.receipts_dir = receipts_dir
        self.reattest_after_s = reattest_after_s
        self._lock = threading.Lock()
        self._attested_at = 0.0
        self._attested: VerifiedEnclave | None = None
        self.log = get_logger()

    # -- attestation ---------------------------------------------------------------------------

    def ensure_attested(self) -> VerifiedEnclave:
        """The verified enclave; attests first if there is none yet, or it is stale or was replaced."""
        with self._lock:
            current = self.client._enclave
            fresh = time.monotonic() - self._attested_at < self.reattest_after_s
            if current is not None and current is self._attested and fresh:
                return current
            try:
                enclave = self.client.attest()
            except EnclaviaError as err:
                self.client._enclave = None
                self._attested = None
                self.log.info("proxy.attestation_failed", error_code=err.code)
                raise
            self._note(enclave)
            return enclave

    def _note(self, enclave: VerifiedEnclave) -> None:
        self._attested, self._attested_at = enclave, time.monotonic()
        self.log.info(
            "proxy.attested",
            tee=str(enclave.result.tee),
            measurement=enclave.measurement,
            policy_id=enclave.result.policy_id,
            policy_revision=enclave.result.policy_revision,
            key_id=enclave.key_config.key_id,
        )
        if self.receipts_dir is not None:
            self.receipts_dir.mkdir(parents=True, exist_ok=True)
            digest = enclave.bundle.manifest.digest().hex()
            (self.receipts_dir / f"attestation-{digest[:16]}.json").write_bytes(enclave.bundle.encode())

    def _keep(self, receipt: Receipt | None) -> None:
        if receipt is None or self.receipts_dir is None:
            return
        self.receipts_dir.mkdir(parents=True, exist_ok=True)
        name = f"receipt-{receipt.issued_at.replace(':', '')}-{receipt.response_sha256[:12]}.json"
        (self.receipts_dir / name).write_text(json.dumps(receipt.to_json(), indent=2), encoding="utf-8")

    # -- forwarding ----------------------------------------------------------------------------

    def _open(self, method: str, path: str, body: bytes | None) -> InnerStream:
        self.ensure_attested()
        stream = self.client.stream(method, path, body)
        if self.client._enclave is not self._attested and self.client._enclave is not None:
            self._note(self.client._enclave)
        return stream

    def forward(self, route: str, method: str, path: str, body: bytes | None) -> Response:
        """A whole (non-streamed) inner exchange."""
        start = time.perf_counter()
        try:
            with self._open(method, path, body) as stream:
                content = stream.read()
                receipt: Receipt | None = getattr(stream, "receipt", None)
                status, headers = stream.status, dict(stream.headers)
        except EnclaviaError as err:
            return self._refused(route, err, start, len(body or b""))
        self._keep(receipt)
        if status >= 400:
            resp = openai_error(error_for_code(_problem_code(content)), status)
        else:
            resp = Response(
                content, status_code=status, media_type=headers.get("content-type", "application/json")
            )
            if receipt is not None:
                resp.headers[RECEIPT_RESPONSE_HEADER] = encode_receipt(receipt)
        self._logged(
            route, resp.status_code, None, False, sizes=(len(body or b""), len(content)), start=start
        )
        return resp

    def forward_stream(self, route: str, path: str, body: bytes) -> Response:
        """A streamed chat completion: SSE pieces pass through as their chunks are decrypted."""
        start = time.perf_counter()
        try:
            stream = self._open("POST", path, body)
        except EnclaviaError as err:
            return self._refused(route, err, start, len(body))
        if stream.status != 200:
            content = stream.read()
            self._logged(
                route,
                stream.status,
                _problem_code(content),
                True,
                sizes=(len(body), len(content)),
                start=start,
            )
            return openai_error(error_for_code(_problem_code(content)), stream.status)

        def pieces() -> Iterator[bytes]:
            sent, code = 0, None
            try:
                for piece in stream:
                    sent += len(piece)
                    yield piece
                self._keep(getattr(stream, "receipt", None))
            except EnclaviaError as err:
                code = err.code
                yield _sse_error(err)  # the status was sent already: the client sees an error event
            finally:
                stream.close()
                self._logged(route, 200, code, True, sizes=(len(body), sent), start=start)

        return StreamingResponse(pieces(), media_type="text/event-stream", headers=_SSE_HEADERS)

    def _refused(self, route: str, err: EnclaviaError, start: float, size: int) -> Response:
        self._logged(route, err.status, err.code, False, sizes=(size, 0), start=start)
        return openai_error(err)

    def _logged(
        self,
        route: str,
        status: int,
        code: str | None,
        stream: bool,
        *,
        sizes: tuple[int, int],
        start: float,
    ) -> None:
        bytes_in, bytes_out = sizes
        self.log.info(
            "proxy.request",
            route=route,
            status=status,
            outcome="ok" if code is None and status < 400 else "error",
            error_code=code,
            stream=stream,
            bytes_in=bytes_in,
            bytes_out=bytes_out,
            duration_ms=round((time.perf_counter() - start) * 1000, 3),
        )

    # -- the local API -------------------------------------------------------------------------

    def app(self) -> ASGIApp:
        def models(_: Request) -> Response:
            return self.forward("models", "GET", "/v1/models", None)

        async def chat(request: Request) -> Response:
            body = await _body(request)
            if body is None:
                return openai_error(BadRequestError)
            doc = _json(body)
            if doc is None:
                return openai_error(BadRequestError)
            if doc.get("stream") is True:
                return await _in_thread(self.forward_stream, "chat", "/v1/chat/completions", body)
            return await _in_thread(self.forward, "chat", "POST", "/v1/chat/completions", body)

        async def embeddings(request: Request) -> Response:
            body = await _body(request)
            doc = _json(body) if body is not None else None
            if doc is None:
                return openai_error(BadRequestError)
            # The openai package asks for base64 by default; the enclave returns floats and we pack them here.
            as_base64 = doc.get("encoding_format") == "base64"
            if as_base64:
                doc["encoding_format"] = "float"
                body = json.dumps(doc, separators=(",", ":")).encode()
            resp = await _in_thread(self.forward, "embeddings", "POST", "/v1/embeddings", body)
            return _pack_base64(resp) if as_base64 and resp.status_code == 200 else resp

        async def health(_: Request) -> Response:
            return JSONResponse({"status": "ok", "attested": self._attested is not None})

        app = Starlette(
            routes=[
                Route("/v1/models", models, methods=["GET"]),
                Route("/v1/chat/completions", chat, methods=["POST"]),
                Route("/v1/embeddings", embeddings, methods=["POST"]),
                Route("/healthz", health, methods=["GET"]),
            ]
        )
        return LocalOnly(app, token=self.token, allowed_origins=self.allowed_origins)

    def close(self) -> None:
        self.client.close()


LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})


class LocalOnly:
    """ASGI guard in front of the proxy's routes: every check runs on the headers alone, before the body is
    read or anything is forwarded, and a refusal is an OpenAI-shaped error with a stable code.

    1. ``Host`` names a loopback address (``localhost``, ``127.0.0.1``, ``[::1]``, any port): a page that
       rebinds its own DNS name to 127.0.0.1 still sends its own name here.
    2. No ``Origin`` header, or one listed in ``allowed_origins`` (empty by default): browsers send Origin on
       cross-origin and on every POST, local tools and SDKs do not. No CORS headers are sent, so a browser
       never lets a page read an answer either.
    3. With ``token``: ``Authorization: Bearer <token>``, compared in constant time.
    4. A POST has ``Content-Type: application/json`` (a page can send ``text/plain`` without a preflight).
    """

    def __init__(self, app: ASGIApp, *, token: str | None, allowed_origins: frozenset[str]) -> None:
        self.app, self.token, self.allowed_origins = app, token, allowed_origins
        self.log = get_logger()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self.refusal(scope)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        reason, err = refusal
        self.log.info("proxy.refused", reason=reason, error_code=err.code)
        await openai_error(err)(scope, receive, send)

    def refusal(self, scope: Scope) -> tuple[str, type[EnclaviaError]] | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if _host_name(headers.get("host", "")) not in LOOPBACK_HOSTS:
            return "host", NotLocalError
        origin = headers.get("origin")
        if origin is not None and origin not in self.allowed_origins:
            return "origin", NotLocalError
        if self.token is not None and not _bearer_matches(headers.get("authorization", ""), self.token):
            return "token", UnauthenticatedError
        media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if scope["method"] == "POST" and media != "application/json":
            return "content_type", BadRequestError
        return None


def _host_name(host: str) -> str:
    """The Host header without its port (``[::1]:8080`` -> ``[::1]``)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else ""
    return host.rpartition(":")[0] if ":" in host else host


def _bearer_matches(header: str, token: str) -> bool:
    scheme, _, value = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())


async def _in_thread(fn: Any, *args: Any) -> Response:
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(fn, *args)


async def _body(request: Request) -> bytes | None:
    out = bytearray()
    async for chunk in request.stream():
        out += chunk
        if len(out) > MAX_BODY:
            return None
    return bytes(out)


def _json(body: bytes) -> dict[str, Any] | None:
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def _sse_error(err: EnclaviaError) -> bytes:
    body = {"error": {"message": err.title, "type": "server_error", "code": err.code}}
    return b"event: error\ndata: " + json.dumps(body).encode() + b"\n\n"


def _pack_base64(resp: Response) -> Response:
    doc = json.loads(bytes(resp.body))
    for item in doc.get("data", []):
        vector = item.get("embedding")
        if isinstance(vector, list):
            item["embedding"] = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    out = Response(json.dumps(doc, separators=(",", ":")).encode(), media_type="application/json")
    receipt = resp.headers.get(RECEIPT_RESPONSE_HEADER)
    if receipt:
        out.headers[RECEIPT_RESPONSE_HEADER] = receipt
    return out


def serve_proxy(proxy: AttestingProxy, listen: str) -> None:
    import uvicorn

    host, _, port = listen.rpartition(":")
    proxy.log.info("proxy.started", listen=listen, upstream=proxy.client.url)
    with contextlib.suppress(EnclaviaError):
        proxy.ensure_attested()  # verify up front; requests still re-check (and refuse) on their own
    try:
        uvicorn.run(
            proxy.app(), host=host or "127.0.0.1", port=int(port), log_level="warning", access_log=False
        )
    finally:
        proxy.close()
