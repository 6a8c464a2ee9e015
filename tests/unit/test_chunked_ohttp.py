"""Chunked OHTTP (draft-ietf-ohai-chunked-ohttp) and streamed binary HTTP responses."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enclavia.crypto.bhttp import decode_response, encode_varint
from enclavia.crypto.bhttp_stream import (
    Body,
    Head,
    ResponseStreamDecoder,
    Tail,
    encode_content_chunk,
    encode_response_head,
    encode_response_tail,
)
from enclavia.crypto.chunked_ohttp import (
    ChunkedGateway,
    ChunkedRequestSender,
    ChunkFramer,
    encapsulate_chunked_request,
)
from enclavia.crypto.hpke import (
    AEAD_AES_128_GCM,
    DEFAULT_SUITE,
    aead_key_size,
    aead_nonce_size,
    kdf_expand,
    kdf_extract,
    setup_base_recipient,
)
from enclavia.crypto.ohttp import GatewayKey
from enclavia.errors import (
    ChunkIntegrityError,
    DecryptionError,
    MalformedMessageError,
    StreamTruncatedError,
    UnknownKeyIdError,
    UnsupportedSuiteError,
)

KEY = GatewayKey.generate(7)
GATEWAY = ChunkedGateway([KEY])
NONCE_LEN = max(aead_nonce_size(DEFAULT_SUITE.aead_id), aead_key_size(DEFAULT_SUITE.aead_id))


def _exchange(pieces: list[bytes], request: bytes = b"req") -> tuple[bytes, object, list[bytes]]:
    """Client request -> gateway -> a response stream of ``pieces`` (last one final). Returns the wire."""
    message, opener = encapsulate_chunked_request(KEY.config, request)
    got, sealer = GATEWAY.open_request(message)
    assert got == request
    wire = [sealer.start()]
    for p in pieces[:-1]:
        wire.append(sealer.seal(p))
    wire.append(sealer.seal_final(pieces[-1]))
    return message, opener, wire


def _split_chunks(stream: bytes) -> tuple[bytes, list[bytes], bytes]:
    """What a relay can do without keys: nonce, framed non-final chunks, framed final chunk."""
    framer = ChunkFramer(NONCE_LEN)
    sealed = framer.feed(stream)
    final = framer.close()
    assert framer.prefix is not None
    return framer.prefix, [encode_varint(len(c)) + c for c in sealed], b"\x00" + final


def test_round_trip_in_any_split() -> None:
    pieces = [b"alpha", b"", b"gamma" * 100, b"tail"]
    _, opener, wire = _exchange(pieces)
    stream = b"".join(wire)
    out: list[bytes] = []
    rng = random.Random(1)
    pos = 0
    while pos < len(stream):
        step = rng.randint(1, 9)
        out += opener.feed(stream[pos : pos + step])  # type: ignore[attr-defined]
        pos += step
    out.append(opener.finish())  # type: ignore[attr-defined]
    assert out == pieces


def test_request_chunks_and_final_aad() -> None:
    sender = ChunkedRequestSender(KEY.config)
    msg = sender.header + sender.seal(b"one") + sender.seal(b"two") + sender.seal(b"three", final=True)
    body, _ = GATEWAY.open_request(msg)
    assert body == b"onetwothree"
    with pytest.raises(ValueError, match="final"):
        sender.seal(b"more")
    # The same chunks without the final marker: the last one was sealed as non-final -> refused.
    sender = ChunkedRequestSender(KEY.config)
    msg = sender.header + sender.seal(b"one") + sender.seal(b"two")
    with pytest.raises(StreamTruncatedError):
        GATEWAY.open_request(msg)
    # Reframe a non-final chunk as final: its AAD was "", not "final".
    sender = ChunkedRequestSender(KEY.config)
    chunk = sender.seal(b"one")
    with pytest.raises(ChunkIntegrityError):
        GATEWAY.open_request(sender.header + b"\x00" + chunk[1:])


def test_request_reorder_and_unknown_key() -> None:
    sender = ChunkedRequestSender(KEY.config)
    a, b, c = sender.seal(b"a"), sender.seal(b"b"), sender.seal(b"c", final=True)
    with pytest.raises(ChunkIntegrityError):
        GATEWAY.open_request(sender.header + b + a + c)
    with pytest.raises(ChunkIntegrityError):
        GATEWAY.open_request(sender.header + a + c)  # b dropped
    other = ChunkedRequestSender(GatewayKey.generate(8).config)
    with pytest.raises(UnknownKeyIdError):
        GATEWAY.open_request(other.header + other.seal(b"x", final=True))
    with pytest.raises(MalformedMessageError):
        GATEWAY.open_request(b"\x07\x00")
    forged = bytearray(sender.header)
    forged[6] = AEAD_AES_128_GCM  # a suite the key config does not offer: no downgrade
    with pytest.raises(UnsupportedSuiteError):
        GATEWAY.open_request(bytes(forged) + a + c)


def test_response_reorder_drop_duplicate_truncate_detected() -> None:
    pieces = [b"t1", b"t2", b"t3", b"end"]
    for mutate in ("swap", "drop", "dup", "truncate", "final_dropped", "flip"):
        _, opener, wire = _exchange(pieces)
        nonce, chunks, final = _split_chunks(b"".join(wire))
        if mutate == "swap":
            chunks[0], chunks[1] = chunks[1], chunks[0]
        elif mutate == "drop":
            del chunks[1]
        elif mutate == "dup":
            chunks.insert(1, chunks[0])
        elif mutate == "flip":
            chunks[2] = chunks[2][:-1] + bytes([chunks[2][-1] ^ 1])
        stream = nonce + b"".join(chunks)
        if mutate not in {"truncate", "final_dropped"}:
            stream += final
        elif mutate == "truncate":
            stream = stream[:-3]
        with pytest.raises((ChunkIntegrityError, StreamTruncatedError)) as info:
            opener.feed(stream)  # type: ignore[attr-defined]
            opener.finish()  # type: ignore[attr-defined]
        expected = StreamTruncatedError if mutate in {"truncate", "final_dropped"} else ChunkIntegrityError
        assert isinstance(info.value, expected), mutate
        assert isinstance(ChunkIntegrityError(), DecryptionError)
        with pytest.raises(ChunkIntegrityError):  # poisoned after a failure
            opener.feed(b"")  # type: ignore[attr-defined]


def test_last_non_final_chunk_presented_as_final_is_refused() -> None:
    _, opener, wire = _exchange([b"t1", b"t2", b"end"])
    nonce, chunks, _ = _split_chunks(b"".join(wire))
    # The relay cuts the stream after t2 and re-marks it final: the AAD differs, so it does not open.
    stream = nonce + chunks[0] + b"\x00" + chunks[1][1:]
    assert opener.feed(stream) == [b"t1"]  # type: ignore[attr-defined]
    with pytest.raises(ChunkIntegrityError):
        opener.finish()  # type: ignore[attr-defined]


def test_response_key_schedule_matches_draft_pseudocode() -> None:
    """Recompute chunk 0 and the final chunk from the draft's formulas, independently of the module."""
    message, _, wire = _exchange([b"first", b"last"])
    enc = message[7:39]
    ctx = setup_base_recipient(
        DEFAULT_SUITE, enc, KEY.private_key, b"message/bhttp chunked request\x00" + message[:7]
    )
    nk, nn = aead_key_size(DEFAULT_SUITE.aead_id), aead_nonce_size(DEFAULT_SUITE.aead_id)
    response_nonce = wire[0]
    secret = ctx.export(b"message/bhttp chunked response", max(nn, nk))
    prk = kdf_extract(enc + response_nonce, secret)
    key, base = kdf_expand(prk, b"key", nk), kdf_expand(prk, b"nonce", nn)
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    assert AESGCM(key).decrypt(base, wire[1][1:], b"") == b"first"
    nonce1 = bytes(a ^ b for a, b in zip(base, (1).to_bytes(nn, "big"), strict=True))
    assert wire[2][0] == 0
    assert AESGCM(key).decrypt(nonce1, wire[2][1:], b"final") == b"last"


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=300))
def test_framer_and_opener_never_crash_on_garbage(data: bytes) -> None:
    _, opener, _ = _exchange([b"x"])
    try:
        opener.feed(data)  # type: ignore[attr-defined]
        opener.finish()  # type: ignore[attr-defined]
    except (ChunkIntegrityError, StreamTruncatedError, MalformedMessageError):
        pass


# --- streamed binary HTTP ------------------------------------------------------------------------


def test_streamed_bhttp_round_trip_and_matches_full_decoder() -> None:
    head = encode_response_head(200, (("content-type", "text/event-stream"),))
    body = [encode_content_chunk(b"data: 1\n\n"), encode_content_chunk(b"data: [DONE]\n\n")]
    tail = encode_response_tail((("enclavia-receipt", "abc"),))
    wire = head + b"".join(body) + tail
    # The existing whole-message decoder agrees (indeterminate form is standard RFC 9292).
    full = decode_response(wire)
    assert full.status == 200 and full.content == b"data: 1\n\ndata: [DONE]\n\n"
    assert full.trailers == (("enclavia-receipt", "abc"),)
    for step in (1, 2, 5, len(wire)):
        dec = ResponseStreamDecoder()
        events = []
        for i in range(0, len(wire), step):
            events += dec.feed(wire[i : i + step])
        dec.finish()
        assert events[0] == Head(200, (("content-type", "text/event-stream"),))
        assert b"".join(e.data for e in events if isinstance(e, Body)) == full.content
        assert events[-1] == Tail((("enclavia-receipt", "abc"),))


def test_streamed_bhttp_rejects_bad_input() -> None:
    with pytest.raises(MalformedMessageError):
        ResponseStreamDecoder().feed(b"\x01")  # known-length framing is not a stream
    dec = ResponseStreamDecoder()
    dec.feed(encode_response_head(200))
    with pytest.raises(MalformedMessageError):
        dec.finish()  # truncated
    with pytest.raises(MalformedMessageError):
        ResponseStreamDecoder().feed(b"\x03\x40\xc8\x01X\x01y\x00")  # upper-case field name
    with pytest.raises(ValueError):
        encode_content_chunk(b"")
    with pytest.raises(ValueError):
        encode_response_head(200, (("bad\nname", "v"),))
