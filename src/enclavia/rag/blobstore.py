"""Where ciphertext goes: a blob store the enclave reaches only through the host.

The enclave never opens a file of its own. ``SocketBlobStore`` sends enclavia.channel frames of kind STORE
over the host's services socket; the host writes them under its state directory (enclavia.host.services).
Everything handed to a blob store is already encrypted and its name is a keyed HMAC: the host learns sizes,
counts and access times, not tenants, document ids or content.

STORE body: op (1 byte) || name_len (u16) || name || data.  ops: P put, G get, D delete, L list
(name = prefix).
"""

from __future__ import annotations

import re
import socket
import struct
import threading
from typing import Final, Protocol

from enclavia import channel
from enclavia.errors import StorageUnavailableError

__all__ = ["BlobStore", "MemoryBlobStore", "SocketBlobStore", "encode_op", "valid_name"]

NAME_RE: Final = re.compile(r"^[a-z]{1,8}/[0-9a-f]{16,128}$|^[a-z]{1,16}$")
PREFIX_RE: Final = re.compile(r"^[a-z]{0,8}/?[0-9a-f]{0,128}$")
OPS: Final = frozenset(b"PGDL")


def valid_name(name: str, *, prefix: bool = False) -> bool:
    return bool((PREFIX_RE if prefix else NAME_RE).fullmatch(name))


def encode_op(op: bytes, name: str, data: bytes = b"") -> bytes:
    raw = name.encode("ascii")
    return op + struct.pack(">H", len(raw)) + raw + data


class BlobStore(Protocol):
    def put(self, name: str, data: bytes) -> None: ...
    def get(self, name: str) -> bytes | None: ...
    def delete(self, name: str) -> None: ...
    def list(self, prefix: str) -> list[str]: ...


class MemoryBlobStore:
    """In-process store for tests and benchmarks (holds ciphertext only, like the host's)."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def put(self, name: str, data: bytes) -> None:
        if not valid_name(name):
            raise ValueError("bad blob name")
        self.blobs[name] = bytes(data)

    def get(self, name: str) -> bytes | None:
        return self.blobs.get(name)

    def delete(self, name: str) -> None:
        self.blobs.pop(name, None)

    def list(self, prefix: str) -> list[str]:
        return sorted(n for n in self.blobs if n.startswith(prefix))


class SocketBlobStore:
    """Blocking client for the host's services socket (one connection, serialised by a lock)."""

    def __init__(self, socket_path: str, timeout: float = 30.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()

    def _connect(self) -> socket.socket:
        if self._sock is None:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(self.timeout)
            try:
                s.connect(self.socket_path)
            except OSError:
                s.close()
                raise StorageUnavailableError() from None
            self._sock = s
        return self._sock

    def call(self, kind: int, body: bytes) -> bytes:
        """One request frame, one response frame. Raises StorageUnavailableError on any failure."""
        with self._lock:
            for attempt in (0, 1):
                sock = self._connect()
                try:
                    sock.sendall(channel.encode(kind, b"", body))
                    ok, code, payload = _read_response(sock)
                except (OSError, channel.ChannelError):
                    self._close()
                    if attempt:
                        raise StorageUnavailableError() from None
                    continue
                if not ok:
                    raise StorageUnavailableError(code if code in _FIXED else None)
                return payload
        raise StorageUnavailableError()

    def _close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def put(self, name: str, data: bytes) -> None:
        self.call(channel.Kind.STORE, encode_op(b"P", name, data))

    def get(self, name: str) -> bytes | None:
        out = self.call(channel.Kind.STORE, encode_op(b"G", name))
        return out[1:] if out[:1] == b"\x01" else None

    def delete(self, name: str) -> None:
        self.call(channel.Kind.STORE, encode_op(b"D", name))

    def list(self, prefix: str) -> list[str]:
        out = self.call(channel.Kind.STORE, encode_op(b"L", prefix))
        return [n for n in out.decode("ascii").split("\n") if n]


_FIXED: Final = frozenset({"store.not_found", "store.bad_name", "store.io"})


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise channel.ChannelError("peer closed")
        buf.extend(chunk)
    return bytes(buf)


def _read_response(sock: socket.socket) -> tuple[bool, str, bytes]:
    version, ok, code_len, body_len = channel.HEADER.unpack(_recv_exact(sock, channel.HEADER.size))
    if version != channel.VERSION or code_len > channel.MAX_CODE or body_len > channel.MAX_BODY:
        raise channel.ChannelError("bad frame header")
    code = _recv_exact(sock, code_len).decode("ascii", "replace")
    return ok == 1, code, _recv_exact(sock, body_len)
