"""The host's side of the enclave socket: a small connection pool and a process supervisor."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import sys
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Any

from enclavia import channel, launch
from enclavia.errors import EnclaveUnavailableError, EnclaviaError, error_for_code
from enclavia.observability.logging import get_logger
from enclavia.observability.metrics import HostMetrics


class EnclaveLink:
    """Pooled connections to the enclave socket; one request in flight per connection."""

    def __init__(self, socket_path: str, pool_size: int = 16) -> None:
        self.socket_path = socket_path
        self._idle: asyncio.LifoQueue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.LifoQueue()
        self._slots = asyncio.Semaphore(pool_size)

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            return await asyncio.open_unix_connection(self.socket_path, limit=channel.MAX_BODY + 1024)
        except OSError:
            raise EnclaveUnavailableError() from None

    async def call(self, kind: channel.Kind, body: bytes, traceparent: str = "") -> bytes:
        """Send one frame; return the body, or raise the enclave's error class (by stable code)."""
        async with self._slots:
            conn = self._idle.get_nowait() if not self._idle.empty() else await self._connect()
            reader, writer = conn
            try:
                writer.write(channel.encode(kind, traceparent.encode("ascii"), body))
                await writer.drain()
                frame = await channel.read_frame(reader, channel.MAX_CODE)
            except (channel.ChannelError, ConnectionError, OSError):
                writer.close()
                raise EnclaveUnavailableError() from None
            self._idle.put_nowait(conn)
        if frame.kind == 1:
            return frame.body
        raise error_for_code(frame.meta.decode("ascii", "replace"))()

    async def stream(
        self, kind: channel.Kind, body: bytes, traceparent: str = ""
    ) -> AsyncGenerator[bytes, None]:
        """Send one frame and yield the bodies of the STREAM_MORE frames that answer it, until the end
        frame. An error before the first piece raises the enclave's error class; a stream that breaks off
        later raises EnclaveUnavailableError. A consumer that stops early closes the connection."""
        async with self._slots:
            conn = self._idle.get_nowait() if not self._idle.empty() else await self._connect()
            reader, writer = conn
            finished = False
            try:
                writer.write(channel.encode(kind, traceparent.encode("ascii"), body))
                await writer.drain()
                started = False
                while True:
                    frame = await channel.read_frame(reader, channel.MAX_CODE)
                    if frame.kind == channel.STREAM_MORE:
                        started = True
                        yield frame.body
                        continue
                    finished = True
                    if frame.kind == 1:
                        if frame.body:
                            yield frame.body
                        break
                    if started:
                        raise EnclaveUnavailableError()
                    raise error_for_code(frame.meta.decode("ascii", "replace"))()
            except (channel.ChannelError, ConnectionError, OSError):
                raise EnclaveUnavailableError() from None
            finally:
                if finished:
                    self._idle.put_nowait(conn)
                else:
                    writer.close()

    def reset(self) -> None:
        while not self._idle.empty():
            _, writer = self._idle.get_nowait()
            writer.close()


@dataclass
class Supervisor:
    """Runs the enclave process, restarts it when it dies. Only argv strings cross: no imports.

    The process starts in isolated mode with an allow-listed environment (enclavia.launch): nothing from the
    host's own environment (``PYTHONPATH``, ``PYTHONHOME``, ``LD_PRELOAD``...) reaches it."""

    link: EnclaveLink
    args: Sequence[str]
    metrics: HostMetrics
    restart_delay: float = 0.2
    ready_timeout: float = 60.0
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    _task: asyncio.Task[None] | None = None
    _ready: asyncio.Event = field(default_factory=asyncio.Event)
    _stopping: bool = False
    _key_id_base: int = field(default_factory=lambda: secrets.randbelow(256))
    refused: bool = False  # the enclave exited with channel.EXIT_REFUSED: configuration, not restarted

    def command(self) -> list[str]:
        # A different OHTTP key id after each restart, so stale clients get UnknownKeyIdError and re-attest.
        key_id = (self._key_id_base + self.restarts) % 256
        return launch.enclave_command(
            sys.executable, ["--socket", self.link.socket_path, "--key-id", str(key_id), *self.args]
        )

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())
        ready = asyncio.create_task(self._ready.wait())
        await asyncio.wait(
            {ready, self._task}, timeout=self.ready_timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if self.refused:
            ready.cancel()
            raise EnclaveUnavailableError("enclave refused to start (see its enclave.refused event)")
        if not ready.done():
            ready.cancel()
            raise TimeoutError("enclave not ready")

    async def _spawn(self) -> None:
        log = get_logger()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.link.socket_path)
        self.process = await asyncio.create_subprocess_exec(
            *self.command(), env=launch.enclave_env(os.environ)
        )
        log.info("host.enclave_spawned", child_pid=self.process.pid, restarts=self.restarts)
        while self.process.returncode is None:
            if await self._healthy():
                self.metrics.enclave_up.set(1)
                self._ready.set()
                return
            await asyncio.sleep(0.05)

    async def _healthy(self) -> bool:
        if not os.path.exists(self.link.socket_path):
            return False
        try:
            await self.link.call(channel.Kind.HEALTH, b"")
        except EnclaviaError:
            return False
        return True

    async def _run(self) -> None:
        log = get_logger()
        while not self._stopping:
            await self._spawn()
            assert self.process is not None
            rc = await self.process.wait()
            self.metrics.enclave_up.set(0)
            self._ready.clear()
            self.link.reset()
            if self._stopping:
                return
            if rc == channel.EXIT_REFUSED:
                self.refused = True
                log.info("host.enclave_exited", returncode=rc, restarts=self.restarts)
                return
            self.restarts += 1
            self.metrics.enclave_restarts.inc()
            log.info("host.enclave_exited", returncode=rc, restarts=self.restarts)
            await asyncio.sleep(self.restart_delay)

    @property
    def up(self) -> bool:
        return self._ready.is_set()

    async def stop(self) -> None:
        self._stopping = True
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self.link.reset()

    def info(self) -> dict[str, Any]:
        return {"enclave_pid": self.process.pid if self.process else None, "restarts": self.restarts}
