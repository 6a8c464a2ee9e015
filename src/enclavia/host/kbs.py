"""Key-broker relay: the host drives the KBS protocol for the enclave, which has no network of its own.

    host -> broker   POST /kbs/v1/challenge                  -> nonce
    host -> enclave  BROKER_ATTEST(nonce)                    -> bundle bound to nonce + secrets still needed
    host -> broker   POST /kbs/v1/attest {bundle}            -> token (useless without the enclave's key)
    host -> broker   GET  /kbs/v1/secrets/{path}[?version=N] -> release sealed to the enclave's HPKE key
    host -> enclave  INSTALL_SECRET(release)                 -> opened inside the enclave only

The host sees only the nonce, the bundle (public), the token and ciphertext: it imports nothing that could
open a release. When the broker is down, slow or refuses, the relay retries with capped exponential backoff
and jitter; routes that need the secrets keep answering 503 ``enclave.secrets_unavailable`` meanwhile. Each
new enclave process (a restart means a new HPKE key) goes through the whole flow again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from enclavia import channel
from enclavia.errors import EnclaviaError, TransportError, error_for_code
from enclavia.host.link import EnclaveLink, Supervisor
from enclavia.observability.logging import get_logger
from enclavia.observability.metrics import HostMetrics
from enclavia.observability.trace import current_traceparent, span, trace_headers


class BrokerRefusedError(EnclaviaError):
    """Internal to the relay: the broker answered with a problem (its code is logged, never the body)."""

    code = "host.broker_refused"
    status = 502


@dataclass
class KbsRelay:
    broker_url: str
    link: EnclaveLink
    supervisor: Supervisor | None = None
    timeout_s: float = 10.0
    initial_backoff_s: float = 0.25
    max_backoff_s: float = 30.0
    attempts: int = 0
    metrics: HostMetrics | None = None
    released: int = 0
    _generation: object = None
    _task: asyncio.Task[None] | None = None
    _client: httpx.AsyncClient | None = None
    _done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def complete(self) -> bool:
        """True once the current enclave process holds every secret it asked for."""
        return self._done.is_set()

    async def start(self) -> None:
        self._client = httpx.AsyncClient(base_url=self.broker_url.rstrip("/"), timeout=self.timeout_s)
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._client is not None:
            await self._client.aclose()

    def _current_generation(self) -> object:
        if self.supervisor is None:
            return "static"
        process = self.supervisor.process
        return (self.supervisor.restarts, process.pid if process is not None else None)

    async def _run(self) -> None:
        log = get_logger()
        delay = self.initial_backoff_s
        while True:
            if self.supervisor is not None and not self.supervisor.up:
                self._set_ready(False)
                await asyncio.sleep(0.1)
                continue
            generation = self._current_generation()
            if generation == self._generation:
                await asyncio.sleep(0.2)
                continue
            self._set_ready(False)  # a new enclave process holds none of its secrets yet
            self.attempts += 1
            try:
                with span("enclavia.host.kbs_release", enclavia__stage="release"):
                    count = await self.release_once()
            except EnclaviaError as err:
                if self.metrics is not None:
                    self.metrics.kbs_attempts.labels(err.code).inc()
                    self.metrics.secrets_ready.set(0)
                wait = delay * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not a secret
                log.info(
                    "host.kbs",
                    stage="retry",
                    outcome="error",
                    error_code=err.code,
                    attempt=self.attempts,
                    delay_ms=round(wait * 1000),
                )
                await asyncio.sleep(wait)
                delay = min(delay * 2, self.max_backoff_s)
                continue
            self._generation = generation
            self.released += count
            self._done.set()
            if self.metrics is not None:
                self.metrics.kbs_attempts.labels("ok").inc()
                self.metrics.secrets_ready.set(1)
            delay = self.initial_backoff_s
            log.info("host.kbs", stage="complete", outcome="ok", attempt=self.attempts, secrets=count)

    def _set_ready(self, ready: bool) -> None:
        if ready:
            self._done.set()
        else:
            self._done.clear()
        if self.metrics is not None:
            self.metrics.secrets_ready.set(1 if ready else 0)

    async def _broker(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        assert self._client is not None
        kwargs["headers"] = {**kwargs.get("headers", {}), **trace_headers()}
        try:
            resp = await self._client.request(method, path, **kwargs)
        except httpx.HTTPError:
            raise TransportError() from None
        try:
            doc = resp.json()
        except ValueError:
            raise BrokerRefusedError() from None
        if resp.status_code != 200 or not isinstance(doc, dict):
            code = doc.get("code") if isinstance(doc, dict) else None
            cls = error_for_code(str(code)) if code else BrokerRefusedError
            raise (cls if cls is not EnclaviaError else BrokerRefusedError)()
        return doc

    async def release_once(self) -> int:
        """One complete pass: challenge, attest through the enclave, fetch and install every secret."""
        challenge = await self._broker("POST", "/kbs/v1/challenge")
        nonce = challenge.get("nonce")
        if not isinstance(nonce, str):
            raise BrokerRefusedError()
        tp = current_traceparent() or ""
        reply = json.loads(await self.link.call(channel.Kind.BROKER_ATTEST, nonce.encode("ascii"), tp))
        wanted = reply.get("secrets") or []
        if not wanted:
            return 0
        attested = await self._broker("POST", "/kbs/v1/attest", json={"bundle": reply["bundle"]})
        token = attested.get("token")
        if not isinstance(token, str):
            raise BrokerRefusedError()
        headers = {"authorization": f"Bearer {token}"}
        for item in wanted:
            path = quote(str(item["path"]), safe="/")
            # No version (a KEK): the broker releases the latest one and names it in the release.
            params = {} if item.get("version") is None else {"version": str(item["version"])}
            release = await self._broker("GET", f"/kbs/v1/secrets/{path}", params=params, headers=headers)
            await self.link.call(channel.Kind.INSTALL_SECRET, json.dumps(release).encode(), tp)
        return len(wanted)
