"""Services the host offers the enclave on a second Unix socket: a ciphertext blob store and an egress relay.

The enclave is the client here. Blobs arrive already encrypted under keys the host never holds, named by
keyed HMACs; the host only writes and reads bytes under ``root``. Egress requests arrive already tokenized
by the enclave's egress guard (classified values replaced); the host performs the HTTP call the enclave's
network namespace cannot, and returns the reply as it came. Bytes only: nothing here decrypts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import struct
from pathlib import Path
from typing import Any, Final

import httpx

from enclavia import channel
from enclavia.observability.logging import get_logger

NAME_RE: Final = re.compile(r"^([a-z]{1,8})/([0-9a-f]{16,128})$|^([a-z]{1,16})$")
PREFIX_RE: Final = re.compile(r"^([a-z]{0,8})/?([0-9a-f]{0,128})$")
EGRESS_TIMEOUT: Final = 60.0
MAX_EGRESS_REPLY: Final = 4 << 20


class FileBlobs:
    """Blobs as files: ``root/<kind>/<hh>/<name>``, written to a temporary file then renamed."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True, mode=0o700)

    def _path(self, name: str) -> Path | None:
        m = NAME_RE.fullmatch(name)  # not .match: "$" also matches before a trailing newline
        if m is None:
            return None
        if m.group(3):
            return self.root / m.group(3)
        return self.root / m.group(1) / m.group(2)[:2] / m.group(2)

    def put(self, name: str, data: bytes) -> bool:
        path = self._path(name)
        if path is None:
            return False
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        return True

    def get(self, name: str) -> bytes | None:
        path = self._path(name)
        if path is None or not path.is_file():
            return None
        return path.read_bytes()

    def delete(self, name: str) -> None:
        path = self._path(name)
        if path is not None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def list(self, prefix: str) -> list[str]:
        m = PREFIX_RE.fullmatch(prefix)
        if m is None or not m.group(1):
            return []
        base = self.root / m.group(1)
        if not base.is_dir():
            return []
        out = [f"{m.group(1)}/{p.name}" for p in base.glob("*/*") if not p.name.endswith(".tmp")]
        return sorted(n for n in out if n.startswith(prefix))


class HostServices:
    def __init__(self, socket_path: str, blob_root: Path) -> None:
        self.socket_path = socket_path
        self.blobs = FileBlobs(blob_root)
        self._server: asyncio.Server | None = None
        self._http: httpx.AsyncClient | None = None

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
        self._http = httpx.AsyncClient(timeout=EGRESS_TIMEOUT, follow_redirects=False, trust_env=False)
        self._server = await asyncio.start_unix_server(
            self._connection, path=self.socket_path, limit=channel.MAX_BODY + 1024
        )
        os.chmod(self.socket_path, 0o600)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._http is not None:
            await self._http.aclose()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                frame = await channel.read_frame(reader, channel.MAX_TRACEPARENT)
                ok, code, body = await self._dispatch(frame)
                writer.write(channel.encode(1 if ok else 0, code.encode(), body))
                await writer.drain()
        except (channel.ChannelError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _dispatch(self, frame: channel.Frame) -> tuple[bool, str, bytes]:
        if frame.kind == channel.Kind.STORE:
            return await asyncio.to_thread(self._store, frame.body)
        if frame.kind == channel.Kind.EGRESS:
            return await self._egress(frame.body)
        return False, "request.not_found", b""

    def _store(self, body: bytes) -> tuple[bool, str, bytes]:
        if len(body) < 3:
            return False, "store.bad_name", b""
        op = body[:1]
        (n,) = struct.unpack(">H", body[1:3])
        try:
            name = body[3 : 3 + n].decode("ascii")
        except UnicodeDecodeError:
            return False, "store.bad_name", b""
        data = body[3 + n :]
        try:
            if op == b"P":
                return (True, "", b"") if self.blobs.put(name, data) else (False, "store.bad_name", b"")
            if op == b"G":
                got = self.blobs.get(name)
                return True, "", (b"\x00" if got is None else b"\x01" + got)
            if op == b"D":
                self.blobs.delete(name)
                return True, "", b""
            if op == b"L":
                return True, "", "\n".join(self.blobs.list(name)).encode("ascii")
        except OSError:
            return False, "store.io", b""
        return False, "store.bad_name", b""

    async def _egress(self, body: bytes) -> tuple[bool, str, bytes]:
        log = get_logger()
        try:
            req: Any = json.loads(body)
            url, payload = str(req["url"]), str(req["body"])
        except (ValueError, KeyError, TypeError):
            return False, "egress.failed", b""
        if not url.startswith(("https://", "http://")) or self._http is None:
            return False, "egress.failed", b""
        try:
            resp = await self._http.post(url, content=payload, headers={"content-type": "application/json"})
        except httpx.HTTPError:
            log.info("host.egress", outcome="unreachable", bytes_out=len(payload))
            return False, "egress.failed", b""
        content = resp.content[:MAX_EGRESS_REPLY]
        log.info(
            "host.egress",
            outcome="ok",
            status=resp.status_code,
            bytes_out=len(payload),
            bytes_in=len(content),
        )
        out = json.dumps({"status": resp.status_code, "body": content.decode("utf-8", "replace")})
        return True, "", out.encode()
