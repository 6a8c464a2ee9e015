from __future__ import annotations

import asyncio
import io
import json

import pytest

from enclavia import channel
from enclavia.observability import logging as elog
from enclavia.observability.trace import new_traceparent, parse_traceparent


def test_unlisted_fields_are_dropped() -> None:
    buf = io.StringIO()
    elog.configure("test", stream=buf)
    log = elog.get_logger()
    log.info("host.request", route="gateway", status=200, body="SECRET-BODY", prompt="p", exc_info=False)
    log.info("made.up.event", route="x", payload="SECRET-2")
    lines = [json.loads(x) for x in buf.getvalue().splitlines()]
    assert lines[0]["route"] == "gateway" and lines[0]["status"] == 200
    assert "body" not in lines[0] and "prompt" not in lines[0]
    assert "SECRET" not in buf.getvalue()
    assert set(lines[1]) <= elog.BASE_FIELDS


def test_traceparent_validation() -> None:
    tp = new_traceparent()
    assert parse_traceparent(tp) == tp
    for bad in (None, "", "00-" + "0" * 32 + "-" + "1" * 16 + "-01", tp.upper(), tp + "x", "garbage"):
        assert parse_traceparent(bad) is None


def _read(data: bytes) -> channel.Frame:
    async def go() -> channel.Frame:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        return await channel.read_frame(reader, channel.MAX_TRACEPARENT)

    return asyncio.run(go())


def test_channel_round_trip_and_limits() -> None:
    frame = _read(channel.encode(channel.Kind.GATEWAY, b"tp", b"body"))
    assert (frame.kind, frame.meta, frame.body) == (2, b"tp", b"body")
    with pytest.raises(channel.ChannelError):
        _read(channel.encode(channel.Kind.GATEWAY, b"tp", b"body")[:-1])
    with pytest.raises(channel.ChannelError):
        _read(channel.HEADER.pack(9, 2, 0, 0))
    with pytest.raises(channel.ChannelError):
        _read(channel.HEADER.pack(1, 2, 0, channel.MAX_BODY + 1))
    with pytest.raises(channel.ChannelError):
        _read(channel.HEADER.pack(1, 2, channel.MAX_TRACEPARENT + 1, 0))
