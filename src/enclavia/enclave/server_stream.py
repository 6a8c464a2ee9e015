"""GATEWAY_STREAM frames: relay a sealed chunked response to the host as it is produced.

The request is opened and routed on the event loop (fast: decrypt and parse). The response is produced in
a worker thread (token generation must not block the loop), which hands each sealed piece back to the loop;
pieces already waiting are coalesced into one frame. If the host goes away, ``emit`` starts returning False
and the route stops generating.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING

import structlog

from enclavia import channel
from enclavia.errors import CryptoError, EnclaviaError
from enclavia.observability.trace import parse_traceparent

if TYPE_CHECKING:
    from enclavia.enclave.server import EnclaveServer


async def serve_stream(server: EnclaveServer, frame: channel.Frame, writer: asyncio.StreamWriter) -> None:
    traceparent = parse_traceparent(frame.meta.decode("ascii", "replace"))
    structlog.contextvars.bind_contextvars(correlation_id=traceparent)
    try:
        run = server.enclave.open_stream(frame.body)
    except EnclaviaError as err:
        if isinstance(err, CryptoError):
            server.metrics.gateway_errors.labels(err.code).inc()
            server.log("enclave.gateway_error", error_code=err.code)
        writer.write(channel.encode(0, err.code.encode(), b""))
        await writer.drain()
        return
    finally:
        structlog.contextvars.unbind_contextvars("correlation_id")

    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()
    gone = threading.Event()

    def emit(piece: bytes) -> bool:
        if gone.is_set():
            return False
        loop.call_soon_threadsafe(queue.put_nowait, piece)
        return True

    def worker() -> str | None:
        try:
            run(emit)
            return None
        except EnclaviaError as err:
            return err.code
        except Exception:  # noqa: BLE001 - the code only: exception text could hold content
            return EnclaviaError.code
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, None)

    done = loop.run_in_executor(None, worker)
    try:
        ended = False
        while not ended:
            batch = [await queue.get()]
            while not queue.empty():
                batch.append(queue.get_nowait())
            if batch[-1] is None:
                ended = True
                batch.pop()
            pieces = [p for p in batch if p is not None]
            if pieces:
                writer.write(channel.encode(channel.STREAM_MORE, b"", b"".join(pieces)))
                await writer.drain()
    except BaseException:
        gone.set()
        await asyncio.shield(done)
        raise
    code = await done
    writer.write(channel.encode(1 if code is None else 0, (code or "").encode(), b""))
    await writer.drain()
