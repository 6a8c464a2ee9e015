"""Binary HTTP responses in indeterminate-length form (RFC 9292 section 3.2), written and read piecewise.

A streamed response is ``framing(3) status fields* 0 (len content)* 0 fields* 0``. The writer emits the head,
each content piece and the tail separately, so each can travel in its own chunked-OHTTP chunk; the reader
accepts bytes in any split and reports a head, content pieces and trailers as they complete.

Limits and validation follow ``enclavia.crypto.bhttp``: every failure is ``MalformedMessageError`` with a
fixed message. This module imports no cryptography.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from enclavia.crypto.bhttp import (
    MAX_FIELD_LINES,
    MAX_INFORMATIONAL,
    MAX_MESSAGE_SIZE,
    Fields,
    decode_varint,
    encode_varint,
)
from enclavia.errors import MalformedMessageError

__all__ = [
    "Body",
    "Head",
    "ResponseStreamDecoder",
    "Tail",
    "encode_content_chunk",
    "encode_response_head",
    "encode_response_tail",
]

_FRAMING_INDETERMINATE_RESPONSE: Final = 3
_TCHAR_LOWER: Final = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-.^_`|~")
_FIELD_VALUE: Final = frozenset(range(0x20, 0x100)) - {0x7F} | {0x09}


def _check_line(name: bytes, value: bytes) -> None:
    if not name or any(b not in _TCHAR_LOWER for b in name) or any(b not in _FIELD_VALUE for b in value):
        raise MalformedMessageError("invalid field line")


def _encode_fields(fields: Fields) -> bytes:
    if len(fields) > MAX_FIELD_LINES:
        raise ValueError("too many field lines")
    out = bytearray()
    for name, value in fields:
        try:
            raw_name, raw_value = name.lower().encode("ascii"), value.encode("latin-1")
            _check_line(raw_name, raw_value)
        except (UnicodeEncodeError, MalformedMessageError):
            raise ValueError("invalid field line") from None
        out += encode_varint(len(raw_name)) + raw_name + encode_varint(len(raw_value)) + raw_value
    return bytes(out) + b"\x00"


def encode_response_head(status: int, headers: Fields = ()) -> bytes:
    """Framing indicator, final status and header section."""
    if not 200 <= status <= 599:
        raise ValueError("final status must be 200..599")
    return encode_varint(_FRAMING_INDETERMINATE_RESPONSE) + encode_varint(status) + _encode_fields(headers)


def encode_content_chunk(data: bytes) -> bytes:
    """One content chunk; must be non-empty (a zero length ends the content)."""
    if not data:
        raise ValueError("content chunks must not be empty")
    return encode_varint(len(data)) + data


def encode_response_tail(trailers: Fields = ()) -> bytes:
    """End of content, then the trailer section."""
    return b"\x00" + _encode_fields(trailers)


@dataclass(frozen=True)
class Head:
    status: int
    headers: Fields


@dataclass(frozen=True)
class Body:
    data: bytes


@dataclass(frozen=True)
class Tail:
    trailers: Fields


Event = Head | Body | Tail


class _Incomplete(Exception):
    pass


class ResponseStreamDecoder:
    """Incremental reader of one indeterminate-length response. ``feed`` returns completed events."""

    __slots__ = ("_buf", "_informational", "_lines", "_size", "_state", "_status")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._state = "framing"  # framing, status, headers, content, trailers, done
        self._status = 0
        self._lines: list[tuple[str, str]] = []
        self._informational = 0
        self._size = 0

    @property
    def done(self) -> bool:
        return self._state == "done"

    def _varint(self, pos: int) -> tuple[int, int]:
        if pos >= len(self._buf) or pos + (1 << (self._buf[pos] >> 6)) > len(self._buf):
            raise _Incomplete
        return decode_varint(bytes(self._buf[pos : pos + 8]))[0], pos + (1 << (self._buf[pos] >> 6))

    def _field_line(self) -> tuple[str, str] | None:
        """One field line, or None at the section's terminating zero. Consumes only complete lines."""
        n, at = self._varint(0)
        if n == 0:
            del self._buf[:at]
            return None
        if at + n > len(self._buf):
            raise _Incomplete
        name = bytes(self._buf[at : at + n])
        vlen, vat = self._varint(at + n)
        if vat + vlen > len(self._buf):
            raise _Incomplete
        value = bytes(self._buf[vat : vat + vlen])
        _check_line(name, value)
        del self._buf[: vat + vlen]
        if len(self._lines) >= MAX_FIELD_LINES:
            raise MalformedMessageError("too many field lines")
        return name.decode("ascii"), value.decode("latin-1")

    def _section(self) -> Fields | None:
        while True:
            line = self._field_line()
            if line is None:
                fields, self._lines = tuple(self._lines), []
                return fields
            self._lines.append(line)

    def _step(self) -> Event | None:
        if self._state == "framing":
            framing, at = self._varint(0)
            if framing != _FRAMING_INDETERMINATE_RESPONSE:
                raise MalformedMessageError("unexpected framing indicator")
            del self._buf[:at]
            self._state = "status"
            return None
        if self._state == "status":
            status, at = self._varint(0)
            del self._buf[:at]
            if 100 <= status <= 199:
                self._informational += 1
                if self._informational > MAX_INFORMATIONAL:
                    raise MalformedMessageError("too many informational responses")
                self._state = "informational"
                return None
            if not 200 <= status <= 599:
                raise MalformedMessageError("invalid status code")
            self._status, self._state = status, "headers"
            return None
        if self._state == "informational":
            self._section()  # informational responses are read and dropped
            self._state = "status"
            return None
        if self._state == "headers":
            headers = self._section()
            self._state = "content"
            return Head(self._status, headers or ())
        if self._state == "content":
            n, at = self._varint(0)
            if n == 0:
                del self._buf[:at]
                self._state = "trailers"
                return None
            if at + n > len(self._buf):
                raise _Incomplete
            data = bytes(self._buf[at : at + n])
            del self._buf[: at + n]
            return Body(data)
        if self._state == "trailers":
            trailers = self._section()
            self._state = "done"
            return Tail(trailers or ())
        # done: only zero padding may follow (RFC 9292 section 3.8)
        if any(self._buf):
            raise MalformedMessageError("trailing data after message")
        self._buf.clear()
        raise _Incomplete

    def feed(self, data: bytes) -> list[Event]:
        self._size += len(data)
        if self._size > MAX_MESSAGE_SIZE:
            raise MalformedMessageError("message too large")
        self._buf += data
        events: list[Event] = []
        while True:
            try:
                event = self._step()
            except _Incomplete:
                return events
            if event is not None:
                events.append(event)

    def finish(self) -> None:
        """The message must be complete (its trailer section read)."""
        if self._state != "done":
            raise MalformedMessageError("message truncated")
