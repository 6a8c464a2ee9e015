"""Binary HTTP messages (RFC 9292) with QUIC variable-length integers (RFC 9000 section 16).

Encoding always produces the known-length form (framing 0 for requests, 1 for responses). Decoding also
accepts the indeterminate-length form (framing 2 and 3), zero padding, and truncation at a section
boundary, as RFC 9292 section 3.8 requires.

These bytes arrive from untrusted peers, so parsing is strict and bounded: a total size cap, a cap on
field lines and informational responses, and every declared length is checked against what is left
before anything is sliced. Every failure is ``MalformedMessageError`` with a fixed message; input bytes
never reach exception text (decode errors are raised ``from None`` so no chained exception carries them).

This module imports no cryptography, so the host may use it to read wire-level types.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from enclavia.errors import MalformedMessageError

__all__ = [
    "MAX_FIELD_LINES",
    "MAX_INFORMATIONAL",
    "MAX_MESSAGE_SIZE",
    "MEDIA_TYPE",
    "Fields",
    "Request",
    "Response",
    "decode_request",
    "decode_response",
    "decode_varint",
    "encode_request",
    "encode_response",
    "encode_varint",
]

MEDIA_TYPE: Final = "message/bhttp"
MAX_MESSAGE_SIZE: Final = 16 * 1024 * 1024
MAX_FIELD_LINES: Final = 256  # per field section (header or trailer)
MAX_INFORMATIONAL: Final = 16
MAX_VARINT: Final = (1 << 62) - 1

_FRAMING_KNOWN_REQUEST: Final = 0
_FRAMING_KNOWN_RESPONSE: Final = 1
_FRAMING_INDETERMINATE_REQUEST: Final = 2
_FRAMING_INDETERMINATE_RESPONSE: Final = 3

# RFC 9110 tchar, lower case only: binary HTTP carries field names lower-cased (RFC 9292 section 3.6).
_TCHAR_LOWER: Final = frozenset((string.ascii_lowercase + string.digits + "!#$%&'*+-.^_`|~").encode())
_TCHAR: Final = _TCHAR_LOWER | frozenset(string.ascii_uppercase.encode())
_SCHEME: Final = frozenset((string.ascii_letters + string.digits + "+-.").encode())
_VISIBLE: Final = frozenset(range(0x21, 0x7F))
# Field values: anything but control characters (HTAB allowed). CR, LF and NUL are what enable header
# injection downstream, so they are never accepted.
_FIELD_VALUE: Final = frozenset(range(0x20, 0x100)) - {0x7F} | {0x09}

Fields = tuple[tuple[str, str], ...]


# --- data model ----------------------------------------------------------------------------------


def _normalize_fields(fields: Iterable[tuple[str, str]]) -> Fields:
    # Lower-casing here keeps "what you built" equal to "what decodes back" (binary HTTP is lower-case).
    return tuple((name.lower(), value) for name, value in fields)


@dataclass(frozen=True)
class Request:
    method: str
    scheme: str
    authority: str
    path: str
    headers: Fields = ()
    content: bytes = b""
    trailers: Fields = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "headers", _normalize_fields(self.headers))
        object.__setattr__(self, "trailers", _normalize_fields(self.trailers))


@dataclass(frozen=True)
class Response:
    status: int
    headers: Fields = ()
    content: bytes = b""
    trailers: Fields = ()
    informational: tuple[tuple[int, Fields], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "headers", _normalize_fields(self.headers))
        object.__setattr__(self, "trailers", _normalize_fields(self.trailers))
        info = tuple((status, _normalize_fields(fields)) for status, fields in self.informational)
        object.__setattr__(self, "informational", info)


# --- validation (shared by encoder and decoder) --------------------------------------------------


_ALLOWED_BYTES: dict[frozenset[int], bytes] = {}


def _only(raw: bytes, allowed: frozenset[int]) -> bool:
    # bytes.translate deletes every allowed byte in C; anything left over is a byte not allowed. (A Python
    # loop over each byte was the largest single cost of encoding and decoding a request.)
    table = _ALLOWED_BYTES.get(allowed)
    if table is None:
        table = _ALLOWED_BYTES.setdefault(allowed, bytes(sorted(allowed)))
    return not raw.translate(None, table)


def _valid_method(raw: bytes) -> bool:
    return len(raw) > 0 and _only(raw, _TCHAR)


def _valid_scheme(raw: bytes) -> bool:
    return len(raw) > 0 and raw[:1].isalpha() and _only(raw, _SCHEME)


def _valid_authority_or_path(raw: bytes) -> bool:
    # RFC 9292's own example has an empty authority, and CONNECT-style requests have no path.
    return _only(raw, _VISIBLE)


def _valid_name(raw: bytes) -> bool:
    return len(raw) > 0 and _only(raw, _TCHAR_LOWER)


def _valid_value(raw: bytes) -> bool:
    return _only(raw, _FIELD_VALUE)


def _valid_final_status(status: int) -> bool:
    return 200 <= status <= 599


def _valid_informational_status(status: int) -> bool:
    return 100 <= status <= 199


# --- varints -------------------------------------------------------------------------------------


def encode_varint(value: int) -> bytes:
    """Shortest QUIC varint for ``value`` (0 .. 2**62 - 1)."""
    if value < 0 or value > MAX_VARINT:
        raise ValueError("varint out of range")
    for prefix, size in ((0x00, 1), (0x40, 2), (0x80, 4)):
        if value < 1 << (8 * size - 2):
            out = bytearray(value.to_bytes(size, "big"))
            out[0] |= prefix
            return bytes(out)
    out = bytearray(value.to_bytes(8, "big"))
    out[0] |= 0xC0
    return bytes(out)


def decode_varint(data: bytes, pos: int = 0) -> tuple[int, int]:
    """Decode one varint at ``pos``: (value, next position). Non-minimal encodings are legal (RFC 9000)."""
    if pos >= len(data):
        raise MalformedMessageError("truncated varint")
    size = 1 << (data[pos] >> 6)
    end = pos + size
    if end > len(data):
        raise MalformedMessageError("truncated varint")
    value = int.from_bytes(data[pos:end], "big") & ((1 << (8 * size - 2)) - 1)
    return value, end


class _Reader:
    """Cursor over untrusted bytes; every read is bounds-checked before slicing."""

    __slots__ = ("_data", "pos")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.pos = 0

    def at_end(self) -> bool:
        return self.pos >= len(self._data)

    def remaining(self) -> int:
        return len(self._data) - self.pos

    def varint(self) -> int:
        value, self.pos = decode_varint(self._data, self.pos)
        return value

    def take(self, n: int) -> bytes:
        if n > self.remaining():
            raise MalformedMessageError("declared length exceeds message")
        out = self._data[self.pos : self.pos + n]
        self.pos += n
        return out

    def prefixed(self) -> bytes:
        return self.take(self.varint())

    def rest_is_padding(self) -> bool:
        return not any(self._data[self.pos :])


# --- decoding ------------------------------------------------------------------------------------


def _ascii(raw: bytes, check: Callable[[bytes], bool]) -> str:
    if not check(raw):
        raise MalformedMessageError("invalid control data")
    return raw.decode("ascii")


def _field_line(name: bytes, r: _Reader) -> tuple[str, str]:
    value = r.prefixed()
    if not _valid_name(name) or not _valid_value(value):
        raise MalformedMessageError("invalid field line")
    # latin-1 maps every byte to one code point, so values round-trip exactly (obs-text included).
    return name.decode("ascii"), value.decode("latin-1")


def _add_line(lines: list[tuple[str, str]], line: tuple[str, str]) -> None:
    if len(lines) >= MAX_FIELD_LINES:
        raise MalformedMessageError("too many field lines")
    lines.append(line)


def _known_fields(r: _Reader) -> Fields:
    section = _Reader(r.prefixed())
    lines: list[tuple[str, str]] = []
    while not section.at_end():
        _add_line(lines, _field_line(section.prefixed(), section))
    return tuple(lines)


def _indeterminate_fields(r: _Reader) -> Fields:
    lines: list[tuple[str, str]] = []
    while True:
        name = r.prefixed()
        if not name:  # a zero-length name is the section terminator
            return tuple(lines)
        _add_line(lines, _field_line(name, r))


def _known_content(r: _Reader) -> bytes:
    return r.prefixed()


def _indeterminate_content(r: _Reader) -> bytes:
    chunks: list[bytes] = []
    while True:
        chunk = r.prefixed()
        if not chunk:  # a zero-length chunk ends the content
            return b"".join(chunks)
        chunks.append(chunk)


class _Layout:
    """Readers for one length mode; truncation at a section boundary means "empty" (RFC 9292 3.8)."""

    def __init__(self, known: bool) -> None:
        self._fields = _known_fields if known else _indeterminate_fields
        self._content = _known_content if known else _indeterminate_content

    def fields(self, r: _Reader) -> Fields:
        return () if r.at_end() else self._fields(r)

    def fields_required(self, r: _Reader) -> Fields:
        # Informational responses are followed by more data, so their sections cannot be truncated.
        return self._fields(r)

    def content(self, r: _Reader) -> bytes:
        return b"" if r.at_end() else self._content(r)


def _start(data: bytes, known: int, indeterminate: int) -> tuple[_Reader, _Layout]:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError("binary HTTP input must be bytes")
    if len(data) > MAX_MESSAGE_SIZE:
        raise MalformedMessageError("message too large")
    r = _Reader(bytes(data))
    framing = r.varint()
    if framing not in (known, indeterminate):
        raise MalformedMessageError("unexpected framing indicator")
    return r, _Layout(known=framing == known)


def _finish(r: _Reader) -> None:
    if not r.rest_is_padding():
        raise MalformedMessageError("trailing data after message")


def decode_request(data: bytes) -> Request:
    """Parse a request in known- or indeterminate-length form."""
    r, layout = _start(data, _FRAMING_KNOWN_REQUEST, _FRAMING_INDETERMINATE_REQUEST)
    method = _ascii(r.prefixed(), _valid_method)
    scheme = _ascii(r.prefixed(), _valid_scheme)
    authority = _ascii(r.prefixed(), _valid_authority_or_path)
    path = _ascii(r.prefixed(), _valid_authority_or_path)
    headers = layout.fields(r)
    content = layout.content(r)
    trailers = layout.fields(r)
    _finish(r)
    return Request(method, scheme, authority, path, headers, content, trailers)


def decode_response(data: bytes) -> Response:
    """Parse a response (with any informational responses) in known- or indeterminate-length form."""
    r, layout = _start(data, _FRAMING_KNOWN_RESPONSE, _FRAMING_INDETERMINATE_RESPONSE)
    informational: list[tuple[int, Fields]] = []
    status = r.varint()
    while _valid_informational_status(status):
        if len(informational) >= MAX_INFORMATIONAL:
            raise MalformedMessageError("too many informational responses")
        informational.append((status, layout.fields_required(r)))
        status = r.varint()
    if not _valid_final_status(status):
        raise MalformedMessageError("invalid status code")
    headers = layout.fields(r)
    content = layout.content(r)
    trailers = layout.fields(r)
    _finish(r)
    return Response(status, headers, content, trailers, tuple(informational))


# --- encoding ------------------------------------------------------------------------------------


def _prefixed(raw: bytes) -> bytes:
    return encode_varint(len(raw)) + raw


def _encode_ascii(text: str, check: Callable[[bytes], bool], what: str) -> bytes:
    raw = text.encode("latin-1", errors="replace")
    if not text.isascii() or not check(raw):
        raise ValueError(f"invalid {what}")
    return _prefixed(raw)


def _encode_fields(fields: Fields) -> bytes:
    if len(fields) > MAX_FIELD_LINES:
        raise ValueError("too many field lines")
    out = bytearray()
    for name, value in fields:
        raw_name = name.encode("ascii", errors="replace")
        try:
            raw_value = value.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError("field value is not latin-1") from None
        if not name.isascii() or not _valid_name(raw_name) or not _valid_value(raw_value):
            raise ValueError("invalid field line")
        out += _prefixed(raw_name) + _prefixed(raw_value)
    return _prefixed(bytes(out))


def _checked_size(message: bytes) -> bytes:
    if len(message) > MAX_MESSAGE_SIZE:
        raise ValueError("message exceeds MAX_MESSAGE_SIZE")
    return message


def encode_request(r: Request) -> bytes:
    """Known-length encoding (framing 0), never truncated, no padding."""
    out = encode_varint(_FRAMING_KNOWN_REQUEST)
    out += _encode_ascii(r.method, _valid_method, "method")
    out += _encode_ascii(r.scheme, _valid_scheme, "scheme")
    out += _encode_ascii(r.authority, _valid_authority_or_path, "authority")
    out += _encode_ascii(r.path, _valid_authority_or_path, "path")
    out += _encode_fields(r.headers) + _prefixed(r.content) + _encode_fields(r.trailers)
    return _checked_size(out)


def encode_response(r: Response) -> bytes:
    """Known-length encoding (framing 1), never truncated, no padding."""
    if len(r.informational) > MAX_INFORMATIONAL:
        raise ValueError("too many informational responses")
    out = encode_varint(_FRAMING_KNOWN_RESPONSE)
    for status, fields in r.informational:
        if not _valid_informational_status(status):
            raise ValueError("informational status must be 100..199")
        out += encode_varint(status) + _encode_fields(fields)
    if not _valid_final_status(r.status):
        raise ValueError("final status must be 200..599")
    out += encode_varint(r.status)
    out += _encode_fields(r.headers) + _prefixed(r.content) + _encode_fields(r.trailers)
    return _checked_size(out)
