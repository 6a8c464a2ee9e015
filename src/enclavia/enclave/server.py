"""The enclave's only door: an asyncio server on one Unix socket, speaking enclavia.channel frames."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import generate_latest

from enclavia import channel
from enclavia.attestation.bundle import parse_nonce_hex
from enclavia.enclave.core import Enclave
from enclavia.errors import CryptoError, EnclaviaError, EvidenceFormatError
from enclavia.observability.metrics import EnclaveMetrics
from enclavia.observability.trace import parse_traceparent, span

# Frames that get a span (health checks and metric scrapes do not).
TRACED_FRAMES: dict[int, str] = {
    channel.Kind.GATEWAY: "gateway",
    channel.Kind.ATTEST: "attest",
    channel.Kind.BROKER_ATTEST: "broker_attest",
    channel.Kind.INSTALL_SECRET: "install_secret",
}

LogFn = Callable[..., Any]


class EnclaveServer:
    def __init__(self, enclave: Enclave, metrics: EnclaveMetrics, log: LogFn) -> None:
        self.enclave = enclave
        self.metrics = metrics
        self.log = log

    async def serve(self, socket_path: str) -> asyncio.Server:
        return await asyncio.start_unix_server(
            self._connection, path=socket_path, limit=channel.MAX_BODY + 1024
        )

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                frame = await channel.read_frame(reader, channel.MAX_TRACEPARENT)
                if frame.kind == channel.Kind.GATEWAY_STREAM:
                    from enclavia.enclave.server_stream import serve_stream

                    await serve_stream(self, frame, writer)
                    continue
                ok, code, body = self._dispatch_traced(frame)
                writer.write(channel.encode(1 if ok else 0, code.encode(), body))
                await writer.drain()
        except (channel.ChannelError, ConnectionError):
            pass
        except asyncio.CancelledError:
            pass  # shutdown: the connection ends here, not as a traceback from asyncio's stream callback
        finally:
            writer.close()

    def _dispatch_traced(self, frame: channel.Frame) -> tuple[bool, str, bytes]:
        name = TRACED_FRAMES.get(frame.kind)
        if name is None:
            return self._dispatch(frame)
        tp = parse_traceparent(frame.meta.decode("ascii", "replace"))
        with span(f"enclavia.enclave.{name}", traceparent=tp, server=True, enclavia__frame=name) as current:
            ok, code, body = self._dispatch(frame)
            current.set_attribute("enclavia.outcome", code or "ok")
            return ok, code, body

    def _dispatch(self, frame: channel.Frame) -> tuple[bool, str, bytes]:
        traceparent = parse_traceparent(frame.meta.decode("ascii", "replace"))
        import structlog

        structlog.contextvars.bind_contextvars(correlation_id=traceparent)
        try:
            if frame.kind == channel.Kind.GATEWAY:
                return True, "", self._gateway(frame.body)
            if frame.kind == channel.Kind.ATTEST:
                return True, "", self._attest(frame.body)
            if frame.kind == channel.Kind.BROKER_ATTEST:
                return True, "", self._broker_attest(frame.body)
            if frame.kind == channel.Kind.INSTALL_SECRET:
                return True, "", self.enclave.key_release.install(frame.body)
            if frame.kind == channel.Kind.HEALTH:
                return True, "", b'{"status":"ok"}'
            if frame.kind == channel.Kind.METRICS:
                if self.enclave.app.usage is not None:
                    self.enclave.app.usage.flush()  # close finished windows before they are scraped
                return True, "", generate_latest(self.metrics.registry)
            return False, "request.not_found", b""
        except EnclaviaError as err:
            return False, err.code, b""
        finally:
            structlog.contextvars.unbind_contextvars("correlation_id")

    def _gateway(self, message: bytes) -> bytes:
        try:
            return self.enclave.handle_gateway(message)
        except CryptoError as err:
            self.metrics.gateway_errors.labels(err.code).inc()
            self.log("enclave.gateway_error", error_code=err.code)
            raise

    def _broker_attest(self, body: bytes) -> bytes:
        # A bundle bound to the broker's challenge, plus the secrets this enclave still waits for.
        bundle = json.loads(self._attest(body))
        return self.enclave.key_release.broker_response(bundle)

    def _attest(self, body: bytes) -> bytes:
        start = time.perf_counter()
        try:
            nonce = parse_nonce_hex(body.decode("ascii"))
        except UnicodeDecodeError:
            raise EvidenceFormatError("nonce must be hex") from None
        try:
            bundle = self.enclave.attestation_bundle(nonce).encode()
        except EnclaviaError as err:
            self.metrics.attestations.labels("error").inc()
            self.metrics.attestation_failures.labels(err.code).inc()
            self.log("enclave.attestation", outcome="error", error_code=err.code)
            raise
        self.metrics.attestations.labels("ok").inc()
        self.log(
            "enclave.attestation", outcome="ok", duration_ms=round((time.perf_counter() - start) * 1000, 3)
        )
        return bundle
