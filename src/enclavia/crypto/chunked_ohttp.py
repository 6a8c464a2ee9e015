"""Chunked Oblivious HTTP messages (draft-ietf-ohai-chunked-ohttp).

A chunked request or response is a prefix (request: the 7-byte header and the KEM ``enc``; response: the
``max(Nn, Nk)``-byte response nonce) followed by chunks::

    non-final chunk = varint(len(sealed)) || sealed          (len >= 1)
    final chunk     = varint(0)           || sealed          (extends to the end of the stream)

Request chunks are sealed with the HPKE context (its sequence number orders them); the info string is
``"message/bhttp chunked request" || 0x00 || hdr``. Response chunks are sealed with a key and nonce
derived like RFC 9458's, from the exporter label ``"message/bhttp chunked response"``; chunk ``i`` uses
``aead_nonce XOR encode(Nn, i)``. Non-final chunks have empty AAD, the final chunk the AAD ``"final"``.

So a relay that drops, repeats or reorders a chunk makes the next open fail (``ChunkIntegrityError``), and
one that cuts the stream short leaves it without a final chunk (``StreamTruncatedError``). The length
prefixes are not authenticated (the draft says so); the chunk order and finality are.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Final

from enclavia.crypto.bhttp import decode_varint, encode_varint
from enclavia.crypto.hpke import (
    N_ENC,
    N_T,
    RecipientContext,
    SenderContext,
    Suite,
    aead_key_size,
    aead_nonce_size,
    aead_open,
    aead_seal,
    check_suite,
    kdf_expand,
    kdf_extract,
    setup_base_recipient,
    setup_base_sender,
)
from enclavia.crypto.ohttp import GatewayKey, KeyConfig
from enclavia.errors import (
    ChunkIntegrityError,
    DecryptionError,
    MalformedMessageError,
    PayloadTooLargeError,
    StreamTruncatedError,
    UnknownKeyIdError,
    UnsupportedSuiteError,
)

__all__ = [
    "CHUNKED_REQUEST_MEDIA_TYPE",
    "CHUNKED_RESPONSE_MEDIA_TYPE",
    "MAX_CHUNK",
    "ChunkFramer",
    "ChunkedGateway",
    "ChunkedRequestSender",
    "ChunkedResponseOpener",
    "ChunkedResponseSealer",
    "encapsulate_chunked_request",
]

CHUNKED_REQUEST_MEDIA_TYPE: Final = "message/ohttp-chunked-req"
CHUNKED_RESPONSE_MEDIA_TYPE: Final = "message/ohttp-chunked-res"

_REQUEST_LABEL: Final = b"message/bhttp chunked request"
_RESPONSE_LABEL: Final = b"message/bhttp chunked response"
_FINAL_AAD: Final = b"final"
_HEADER_LEN: Final = 7
# One sealed chunk may carry at most 1 MiB; a whole request at most 16 MiB (as the non-chunked variant).
MAX_CHUNK: Final = 1 << 20
MAX_REQUEST: Final = 16 * 1024 * 1024 + 1024
# Responses stop well before the 2^96 nonce space of a 12-byte nonce could wrap.
MAX_RESPONSE_CHUNKS: Final = 1 << 32


def _response_nonce_len(suite: Suite) -> int:
    return max(aead_nonce_size(suite.aead_id), aead_key_size(suite.aead_id))


def _frame(sealed: bytes, *, final: bool) -> bytes:
    return (b"\x00" if final else encode_varint(len(sealed))) + sealed


# --- framing (no keys) ---------------------------------------------------------------------------


class ChunkFramer:
    """Splits a chunked stream into its prefix and sealed chunks, incrementally. Holds no keys.

    ``feed`` returns the non-final chunks completed by the new bytes; once the zero-length indicator is
    seen, everything after it is the final chunk, returned by ``close`` at the end of the stream.
    """

    __slots__ = ("_buf", "_final", "_prefix", "_prefix_len", "_total")

    def __init__(self, prefix_len: int, *, max_total: int | None = None) -> None:
        self._prefix_len = prefix_len
        self._prefix: bytes | None = None
        self._buf = bytearray()
        self._final: bytearray | None = None
        self._total = 0 if max_total is None else -max_total  # counts up to 0

    @property
    def prefix(self) -> bytes | None:
        return self._prefix

    @property
    def in_final(self) -> bool:
        return self._final is not None

    def feed(self, data: bytes) -> list[bytes]:
        if self._total < 0:
            self._total += len(data)
            if self._total > 0:
                raise PayloadTooLargeError()
        if self._final is not None:
            self._final += data
            if len(self._final) > MAX_CHUNK + N_T:
                raise PayloadTooLargeError()
            return []
        self._buf += data
        out: list[bytes] = []
        if self._prefix is None:
            if len(self._buf) < self._prefix_len:
                return out
            self._prefix = bytes(self._buf[: self._prefix_len])
            del self._buf[: self._prefix_len]
        while self._buf:
            try:
                length, at = decode_varint(bytes(self._buf[:8]))
            except MalformedMessageError:
                if len(self._buf) >= 8:
                    raise
                return out  # the varint itself is still incomplete
            if length == 0:
                self._final = bytearray(self._buf[at:])
                self._buf.clear()
                if len(self._final) > MAX_CHUNK + N_T:
                    raise PayloadTooLargeError()
                return out
            if length > MAX_CHUNK + N_T:
                raise PayloadTooLargeError()
            if len(self._buf) < at + length:
                return out
            out.append(bytes(self._buf[at : at + length]))
            del self._buf[: at + length]
        return out

    def close(self) -> bytes:
        """The sealed final chunk; ``StreamTruncatedError`` if the stream ended without one."""
        if self._prefix is None or self._final is None:
            raise StreamTruncatedError()
        return bytes(self._final)


# --- requests ------------------------------------------------------------------------------------


def _choose_suite(config: KeyConfig, suite: Suite | None) -> Suite:
    candidates = [suite] if suite is not None else [Suite(config.kem_id, k, a) for k, a in config.symmetric]
    for candidate in candidates:
        if candidate.kem_id != config.kem_id or (candidate.kdf_id, candidate.aead_id) not in config.symmetric:
            continue
        try:
            check_suite(candidate)
        except UnsupportedSuiteError:
            continue
        return candidate
    raise UnsupportedSuiteError()


class ChunkedRequestSender:
    """Client side of one chunked exchange: seals request chunks, then opens the response."""

    __slots__ = ("_context", "_done", "enc", "header", "suite")

    def __init__(self, config: KeyConfig, *, suite: Suite | None = None, ikm_e: bytes | None = None) -> None:
        self.suite = _choose_suite(config, suite)
        hdr = config.header(self.suite.kdf_id, self.suite.aead_id)
        self.enc, self._context = setup_base_sender(
            self.suite, config.public_key, _REQUEST_LABEL + b"\x00" + hdr, ikm_e=ikm_e
        )
        self.header = hdr + self.enc
        self._done = False

    def seal(self, chunk: bytes, *, final: bool = False) -> bytes:
        """One framed request chunk. The last one must be ``final=True``; nothing may follow it."""
        if self._done:
            raise ValueError("the final request chunk was already sealed")
        if len(chunk) > MAX_CHUNK:
            raise ValueError("chunk too large")
        self._done = final
        return _frame(self._context.seal(_FINAL_AAD if final else b"", chunk), final=final)

    def response_opener(self) -> ChunkedResponseOpener:
        return ChunkedResponseOpener(self.suite, self.enc, self._context)


def encapsulate_chunked_request(
    config: KeyConfig, request: bytes, *, suite: Suite | None = None, chunk_size: int = MAX_CHUNK
) -> tuple[bytes, ChunkedResponseOpener]:
    """A whole ``message/ohttp-chunked-req``: header, ``request`` split into chunks, the last one final."""
    if not 0 < chunk_size <= MAX_CHUNK:
        raise ValueError("chunk_size out of range")
    sender = ChunkedRequestSender(config, suite=suite)
    parts = [sender.header]
    pieces = [request[i : i + chunk_size] for i in range(0, len(request), chunk_size)] or [b""]
    for i, piece in enumerate(pieces):
        parts.append(sender.seal(piece, final=i == len(pieces) - 1))
    return b"".join(parts), sender.response_opener()


class ChunkedGateway:
    """Gateway side: opens chunked requests sealed to any of its keys (no downgrade, as ``Gateway``)."""

    __slots__ = ("_keys",)

    def __init__(self, keys: Sequence[GatewayKey]) -> None:
        self._keys = {k.config.key_id: k for k in keys}
        if len(self._keys) != len(keys):
            raise ValueError("duplicate key_id")

    def _setup(self, prefix: bytes) -> tuple[Suite, bytes, RecipientContext]:
        hdr = prefix[:_HEADER_LEN]
        key_id, kem_id = hdr[0], int.from_bytes(hdr[1:3], "big")
        kdf_id, aead_id = int.from_bytes(hdr[3:5], "big"), int.from_bytes(hdr[5:7], "big")
        key = self._keys.get(key_id)
        if key is None:
            raise UnknownKeyIdError()
        if kem_id != key.config.kem_id or (kdf_id, aead_id) not in key.config.symmetric:
            raise UnsupportedSuiteError()
        suite = Suite(kem_id, kdf_id, aead_id)
        check_suite(suite)
        enc = prefix[_HEADER_LEN:]
        context = setup_base_recipient(suite, enc, key.private_key, _REQUEST_LABEL + b"\x00" + hdr)
        return suite, enc, context

    def open_request(self, message: bytes) -> tuple[bytes, ChunkedResponseSealer]:
        """Open a complete ``message/ohttp-chunked-req``: the joined plaintext and the response sealer."""
        if len(message) > MAX_REQUEST:
            raise PayloadTooLargeError()
        if len(message) < _HEADER_LEN:
            raise MalformedMessageError("encapsulated request truncated")
        framer = ChunkFramer(_HEADER_LEN + N_ENC)
        # The key id is checked before anything else, so a stale client learns to re-attest.
        self._check_key_id(message[0])
        sealed = framer.feed(bytes(message))
        prefix = framer.prefix
        if prefix is None:
            raise MalformedMessageError("encapsulated request truncated")
        suite, enc, context = self._setup(prefix)
        parts = [_open_request_chunk(context, c, final=False) for c in sealed]
        parts.append(_open_request_chunk(context, framer.close(), final=True))
        return b"".join(parts), ChunkedResponseSealer(suite, enc, context)

    def _check_key_id(self, key_id: int) -> None:
        if key_id not in self._keys:
            raise UnknownKeyIdError()

    def __repr__(self) -> str:
        return f"ChunkedGateway(key_ids={sorted(self._keys)})"


def _open_request_chunk(context: RecipientContext, sealed: bytes, *, final: bool) -> bytes:
    if len(sealed) < N_T:
        raise MalformedMessageError("chunk shorter than its tag")
    try:
        return context.open(_FINAL_AAD if final else b"", sealed)
    except DecryptionError:
        raise ChunkIntegrityError() from None


# --- responses -----------------------------------------------------------------------------------


def _response_key_nonce(
    suite: Suite, context: SenderContext | RecipientContext, enc: bytes, response_nonce: bytes
) -> tuple[bytes, bytes]:
    secret = context.export(_RESPONSE_LABEL, _response_nonce_len(suite))
    prk = kdf_extract(enc + response_nonce, secret)
    key = kdf_expand(prk, b"key", aead_key_size(suite.aead_id))
    nonce = kdf_expand(prk, b"nonce", aead_nonce_size(suite.aead_id))
    return key, nonce


def _chunk_nonce(base: bytes, counter: int) -> bytes:
    return (int.from_bytes(base, "big") ^ counter).to_bytes(len(base), "big")


class ChunkedResponseSealer:
    """Gateway side of one response: ``start()`` once, then ``seal()`` chunks, then ``seal_final()``."""

    __slots__ = ("_context", "_counter", "_enc", "_key", "_nonce", "_state", "suite")

    def __init__(self, suite: Suite, enc: bytes, context: RecipientContext) -> None:
        self.suite = suite
        self._enc = enc
        self._context = context
        self._key = b""
        self._nonce = b""
        self._counter = 0
        self._state = "new"

    def start(self, *, response_nonce: bytes | None = None) -> bytes:
        """The response nonce, which opens the stream. ``response_nonce`` is for test vectors only."""
        if self._state != "new":
            raise ValueError("response already started")
        n = _response_nonce_len(self.suite)
        if response_nonce is None:
            response_nonce = os.urandom(n)
        elif len(response_nonce) != n:
            raise ValueError("response_nonce has the wrong length")
        self._key, self._nonce = _response_key_nonce(self.suite, self._context, self._enc, response_nonce)
        self._state = "open"
        return response_nonce

    def _seal(self, chunk: bytes, aad: bytes) -> bytes:
        if self._state != "open":
            raise ValueError("response not started, or already finished")
        if len(chunk) > MAX_CHUNK:
            raise ValueError("chunk too large")
        if self._counter >= MAX_RESPONSE_CHUNKS:
            raise ValueError("too many chunks in one response")
        sealed = aead_seal(
            self.suite.aead_id, self._key, _chunk_nonce(self._nonce, self._counter), aad, chunk
        )
        self._counter += 1
        return sealed

    def seal(self, chunk: bytes) -> bytes:
        return _frame(self._seal(chunk, b""), final=False)

    def seal_final(self, chunk: bytes = b"") -> bytes:
        sealed = self._seal(chunk, _FINAL_AAD)
        self._state = "done"
        return _frame(sealed, final=True)

    def __repr__(self) -> str:
        return f"ChunkedResponseSealer(suite={self.suite}, state={self._state})"


class ChunkedResponseOpener:
    """Client side of one response. ``feed`` bytes as they arrive; ``finish`` at the end of the stream.

    Any failure poisons the opener: a stream that failed once yields nothing more.
    """

    __slots__ = ("_context", "_counter", "_enc", "_failed", "_framer", "_key", "_nonce", "done", "suite")

    def __init__(self, suite: Suite, enc: bytes, context: SenderContext) -> None:
        self.suite = suite
        self._enc = enc
        self._context = context
        self._framer = ChunkFramer(_response_nonce_len(suite))
        self._key: bytes | None = None
        self._nonce = b""
        self._counter = 0
        self._failed = False
        self.done = False

    def _open(self, sealed: bytes, aad: bytes) -> bytes:
        if self._key is None:
            prefix = self._framer.prefix
            assert prefix is not None  # the framer returns chunks only after the prefix
            self._key, self._nonce = _response_key_nonce(self.suite, self._context, self._enc, prefix)
        if len(sealed) < N_T or self._counter >= MAX_RESPONSE_CHUNKS:
            raise ChunkIntegrityError()
        try:
            pt = aead_open(
                self.suite.aead_id, self._key, _chunk_nonce(self._nonce, self._counter), aad, sealed
            )
        except DecryptionError:
            raise ChunkIntegrityError() from None
        self._counter += 1
        return pt

    def _guard(self) -> None:
        if self._failed:
            raise ChunkIntegrityError()
        if self.done:
            raise ValueError("response already finished")

    def feed(self, data: bytes) -> list[bytes]:
        """Plaintexts of the non-final chunks that ``data`` completes, in order."""
        self._guard()
        try:
            return [self._open(c, b"") for c in self._framer.feed(data)]
        except Exception:
            self._failed = True
            raise

    def finish(self) -> bytes:
        """Plaintext of the final chunk. Only now is the response known to be complete."""
        self._guard()
        try:
            sealed = self._framer.close()
            out = self._open(sealed, _FINAL_AAD)
        except Exception:
            self._failed = True
            raise
        self.done = True
        return out

    def __repr__(self) -> str:
        return f"ChunkedResponseOpener(suite={self.suite}, chunks={self._counter})"
