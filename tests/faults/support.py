"""Fault-injection helpers: a TCP proxy that can refuse, stall or slow a connection, a broker served by
uvicorn in a thread, and the host's key-broker relay driving a real enclave socket server, all in this
process (one asyncio loop in a thread), so that a fault test starts no extra process."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

import uvicorn

from enclavia import channel
from enclavia.attestation.manifest import ImageManifest
from enclavia.broker.keystore import FileKeyStore
from enclavia.broker.service import BrokerConfig, BrokerService, create_app
from enclavia.crypto import aead
from enclavia.crypto.signing import SigningKey
from enclavia.enclave.boot import load_models
from enclavia.enclave.core import Enclave
from enclavia.enclave.routes import InnerApp
from enclavia.enclave.sealed import seal_artifact
from enclavia.enclave.server import EnclaveServer
from enclavia.host.kbs import KbsRelay
from enclavia.host.link import EnclaveLink
from enclavia.inference.linear import LinearClassifier
from enclavia.observability.metrics import EnclaveMetrics, HostMetrics
from enclavia.tee.simulated import SimulatedAttester
from tests.broker_support import ADMIN_TOKEN, ALLOW_MODELS, policy_text
from tests.support import ensure_model, free_port

T = TypeVar("T")
MODEL = "clinical-risk"
SECRET_PATH = f"models/{MODEL}"


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise TimeoutError(what)


class FaultProxy:
    """TCP proxy on loopback. Modes: ``up``; ``refuse`` (accept and close at once: connection refused as
    a client sees it); ``cut`` (close every open connection now, refuse new ones); ``delay_s`` > 0 holds
    each chunk from the server that long before passing it on (a slow or overloaded peer)."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.port = int(self.listener.getsockname()[1])
        self.mode = "up"
        self.delay_s = 0.0
        self.connections = 0
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            if self.mode != "up":
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, True), daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket, from_server: bool) -> None:
        try:
            while data := a.recv(65536):
                if from_server and self.delay_s:
                    time.sleep(self.delay_s)
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.mode = "cut"
        with self._lock:
            for s in self._open:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            self._open.clear()

    def restore(self) -> None:
        self.mode, self.delay_s = "up", 0.0

    def close(self) -> None:
        self.cut()
        self.listener.close()


class ThreadedServer:
    """A uvicorn server for an ASGI app on a loopback port, in a daemon thread."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_for(lambda: self.server.started, 30, "uvicorn did not start")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


def sealed_model_dir(root: Path) -> tuple[Path, bytes, LinearClassifier]:
    """A model directory holding only the sealed artifact; returns (dir, DEK, the plaintext model)."""
    root.mkdir(parents=True, exist_ok=True)
    plain = (ensure_model() / f"{MODEL}.json").read_bytes()
    dek = aead.generate_key()
    (root / f"{MODEL}.json.sealed").write_bytes(seal_artifact(plain, MODEL, dek, 1))
    return root, dek, LinearClassifier(plain)


@dataclass
class BrokerWorld:
    """A broker (in-thread HTTP) that holds a model key and trusts one simulated platform."""

    home: Path
    db_url: str
    platform: SigningKey = field(default_factory=SigningKey.generate)

    def __post_init__(self) -> None:
        self.model_dir, self.dek, self.plain = sealed_model_dir(self.home / "models")
        models = load_models(self.model_dir)
        self.manifest = ImageManifest(
            "0.1.0",
            {"enclavia/__init__.py": "00" * 32},
            (),
            {MODEL: models[MODEL].digest},
            {"tee": "simulated"},
        )
        config = BrokerConfig(
            db_url=self.db_url,
            keystore=f"file:{self.home / 'root.key'}",
            admin_token=ADMIN_TOKEN,
            checkpoint_every=8,
            bootstrap_policy=policy_text(self.platform, self.manifest.digest(), secrets_yaml=ALLOW_MODELS),
        )
        self.service = BrokerService(config, keystore=FileKeyStore(self.home / "root.key"))
        assert self.service.start()
        self.service.put_secret(SECRET_PATH, self.dek, rotate=False)
        self.http = ThreadedServer(create_app(self.service))

    def new_enclave(self) -> Enclave:
        """A fresh enclave process, as after a (re)start: new HPKE key, model sealed again."""
        attester = SimulatedAttester(platform_key=self.platform, measurement=self.manifest.digest())
        return Enclave(attester, self.manifest, InnerApp(models=load_models(self.model_dir)))

    def records(self) -> list[Any]:
        from sqlalchemy import select

        from enclavia.broker.store import audit_records

        with self.service.store.transaction() as conn:
            return list(conn.execute(select(audit_records).order_by(audit_records.c.seq)))

    def snapshot(self) -> dict[str, Any]:
        """What the broker stores that a fault must not lose or corrupt: secrets (listing and the value of
        every live version, read back through the root key), the policy, and a verified ledger."""
        from enclavia.broker.audit import verify_ledger

        with self.service.store.transaction() as conn:
            verify_ledger(conn, self.service.public_key)
        listing = self.service.list_secrets()
        rt = self.service._ready()
        values = {}
        from sqlalchemy import select

        from enclavia.broker.store import secret_versions

        with self.service.store.transaction() as conn:
            for row in conn.execute(select(secret_versions)):
                if row.wrapped_key is not None:
                    values[(row.path, row.version)] = self.service._open_value(
                        rt, row.path, int(row.version), bytes(row.wrapped_key), bytes(row.ciphertext)
                    )
        return {"secrets": listing, "values": values, "policy": self.service.get_policy()}

    def close(self) -> None:
        self.http.stop()
        self.service.close()


class RelayStack:
    """The host side of key release, in this process: an enclave socket server (the real EnclaveServer),
    the host's EnclaveLink and KbsRelay, on one asyncio loop in a thread. ``restart`` swaps in a new
    enclave (new key, model sealed again) as the supervisor would after the process died."""

    def __init__(
        self, world: BrokerWorld, broker_url: str, socket_dir: Path, *, timeout_s: float = 0.5
    ) -> None:
        self.world = world
        self.socket_path = str(socket_dir / "enclave.sock")
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.supervisor = SimpleNamespace(up=True, restarts=0, process=SimpleNamespace(pid=1))
        self.installed: list[bytes] = []  # every INSTALL_SECRET body the relay sent (release ciphertexts)
        self.enclave = world.new_enclave()
        self.metrics = HostMetrics()
        self._server: asyncio.Server | None = None
        self.call(self._start(broker_url, timeout_s))

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _serve(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            Path(self.socket_path).unlink()
        server = EnclaveServer(self.enclave, EnclaveMetrics(), lambda *a, **k: None)
        self._server = await server.serve(self.socket_path)

    async def _start(self, broker_url: str, timeout_s: float) -> None:
        await self._serve()
        self.link = EnclaveLink(self.socket_path, pool_size=2)
        original = self.link.call

        async def recording_call(kind: channel.Kind, body: bytes, traceparent: str = "") -> bytes:
            if kind == channel.Kind.INSTALL_SECRET:
                self.installed.append(body)
            return await original(kind, body, traceparent)

        self.link.call = recording_call  # type: ignore[method-assign]
        self.relay = KbsRelay(
            broker_url,
            self.link,
            supervisor=self.supervisor,  # type: ignore[arg-type]
            timeout_s=timeout_s,
            initial_backoff_s=0.05,
            max_backoff_s=0.3,
            metrics=self.metrics,
        )
        await self.relay.start()

    async def _restart(self) -> None:
        self.supervisor.up = False
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self.link.reset()
        self.enclave = self.world.new_enclave()
        await self._serve()
        self.supervisor.restarts += 1
        self.supervisor.process = SimpleNamespace(pid=1000 + self.supervisor.restarts)
        self.supervisor.up = True

    def restart(self) -> None:
        self.call(self._restart())

    @property
    def model(self) -> Any:
        return self.enclave.app.models[MODEL]

    def serving(self) -> bool:
        return bool(self.model.unsealed)

    def attempts(self, code: str) -> float:
        return float(self.metrics.kbs_attempts.labels(code)._value.get())

    async def _shutdown(self) -> None:
        await self.relay.stop()
        self.link.reset()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in others:
            t.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    def close(self) -> None:
        self.call(self._shutdown())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
