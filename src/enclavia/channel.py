"""Framing on the one Unix socket between host and enclave. Carries opaque bytes only.

request  = version:u8 kind:u8 tp_len:u16 body_len:u32 || traceparent || body
response = version:u8 ok:u8  code_len:u16 body_len:u32 || error code || body

A GATEWAY_STREAM request is answered by several response frames: ok=STREAM_MORE frames carry successive
pieces of the (already encrypted) chunked OHTTP response, then one ok=1 frame ends it (its body may be
empty). ok=0 before any piece is an error as usual; ok=0 after pieces means the stream broke off.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass
from enum import IntEnum

VERSION = 1
HEADER = struct.Struct(">BBHI")
MAX_BODY = 16 << 20
MAX_TRACEPARENT = 64
MAX_CODE = 128


class Kind(IntEnum):
    ATTEST = 1
    GATEWAY = 2
    HEALTH = 3
    METRICS = 4
    # Enclave -> host, on the host's services socket (the enclave is the client there):
    STORE = 5  # ciphertext blobs under HMAC names (enclavia.rag.blobstore)
    EGRESS = 6  # an already-tokenized request to an allow-listed provider (enclavia.protect.egress)
    BROKER_ATTEST = 5  # body: broker challenge nonce (hex) -> {"bundle": ..., "secrets": [...]}
    INSTALL_SECRET = 6  # body: a broker release response (JSON) -> {"installed": path, "pending": n}
    GATEWAY_STREAM = 7  # body: message/ohttp-chunked-req -> pieces of message/ohttp-chunked-res


STREAM_MORE = 2  # response "ok" byte: a stream piece, more frames follow
# Exit status of an enclave process that refused to start (configuration: models over the memory limit, an
# invalid manifest). The host supervisor does not restart it (EX_CONFIG from sysexits.h).
EXIT_REFUSED = 78


class ChannelError(Exception):
    """Framing violated or peer gone. Fixed messages only."""


@dataclass(frozen=True)
class Frame:
    kind: int
    meta: bytes  # traceparent in requests, error code in responses
    body: bytes


def encode(kind: int, meta: bytes, body: bytes) -> bytes:
    if len(body) > MAX_BODY or len(meta) > 0xFFFF:
        raise ChannelError("frame too large")
    return HEADER.pack(VERSION, kind, len(meta), len(body)) + meta + body


async def read_frame(reader: asyncio.StreamReader, max_meta: int) -> Frame:
    try:
        header = await reader.readexactly(HEADER.size)
    except asyncio.IncompleteReadError:
        raise ChannelError("peer closed") from None
    version, kind, meta_len, body_len = HEADER.unpack(header)
    if version != VERSION or meta_len > max_meta or body_len > MAX_BODY:
        raise ChannelError("bad frame header")
    try:
        meta = await reader.readexactly(meta_len)
        body = await reader.readexactly(body_len)
    except asyncio.IncompleteReadError:
        raise ChannelError("peer closed mid-frame") from None
    return Frame(kind, meta, body)
