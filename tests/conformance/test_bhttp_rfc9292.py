"""RFC 9292 examples (vectors/bhttp, see its SOURCE.md) through enclavia.crypto.bhttp, plus strictness."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from enclavia.crypto import bhttp
from enclavia.errors import MalformedMessageError

NAMES = [
    "ex-bink-request",
    "ex-bini-request",
    "ex-bini-response",
    "ex-bink-chunked",
    "rfc9458-appendix-a-request",
    "rfc9458-appendix-a-response",
]


@pytest.fixture(scope="module")
def examples(vectors: Path) -> dict[str, dict[str, Any]]:
    doc = json.loads((vectors / "bhttp" / "rfc9292_examples.json").read_text())
    return {e["name"]: e for e in doc["examples"]}


def _fields(pairs: list[list[str]]) -> tuple[tuple[str, str], ...]:
    return tuple((name, value) for name, value in pairs)


def _decode(example: dict[str, Any]) -> bhttp.Request | bhttp.Response:
    data = bytes.fromhex(example["hex"])
    assert len(data) == example["length"]
    if example["decoded"]["kind"] == "request":
        return bhttp.decode_request(data)
    return bhttp.decode_response(data)


def _encode(message: bhttp.Request | bhttp.Response) -> bytes:
    if isinstance(message, bhttp.Request):
        return bhttp.encode_request(message)
    return bhttp.encode_response(message)


def test_all_examples_present(examples: dict[str, dict[str, Any]]) -> None:
    assert sorted(examples) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_example_decodes_to_expected_fields(examples: dict[str, dict[str, Any]], name: str) -> None:
    want = examples[name]["decoded"]
    got = _decode(examples[name])
    content = want["content"].encode("latin-1")
    if want["kind"] == "request":
        assert got == bhttp.Request(
            want["method"],
            want["scheme"],
            want["authority"],
            want["path"],
            _fields(want["header_fields"]),
            content,
            _fields(want["trailer_fields"]),
        )
    else:
        informational = tuple(
            (i["status"], _fields(i["header_fields"])) for i in want["informational_responses"]
        )
        assert got == bhttp.Response(
            want["status"],
            _fields(want["header_fields"]),
            content,
            _fields(want["trailer_fields"]),
            informational,
        )


@pytest.mark.parametrize("name", NAMES)
def test_reencoding(examples: dict[str, dict[str, Any]], name: str) -> None:
    example = examples[name]
    decoded = example["decoded"]
    message = _decode(example)
    encoded = _encode(message)
    # Known-length, unpadded, untruncated examples are exactly what our encoder emits; the others
    # (indeterminate, padded, truncated) must at least carry the same message.
    exact = decoded["length_mode"] == "known-length" and not decoded["padding_bytes"]
    if exact and not decoded["truncated_sections"]:
        assert encoded == bytes.fromhex(example["hex"])
    else:
        assert encoded != bytes.fromhex(example["hex"])
    assert _decode({**example, "hex": encoded.hex(), "length": len(encoded)}) == message


def test_known_length_request_may_drop_empty_tail(examples: dict[str, dict[str, Any]]) -> None:
    data = bytes.fromhex(examples["ex-bink-request"]["hex"])
    full = bhttp.decode_request(data)
    # RFC 9292 section 3.8: empty trailers, then empty content, may be omitted.
    assert bhttp.decode_request(data[:-1]) == full
    assert bhttp.decode_request(data[:-2]) == full
    with pytest.raises(MalformedMessageError):
        bhttp.decode_request(data[:-3])  # cuts into the header section


def test_indeterminate_request_truncation_budget(examples: dict[str, dict[str, Any]]) -> None:
    data = bytes.fromhex(examples["ex-bini-request"]["hex"])
    full = bhttp.decode_request(data)
    # The example's note: up to 12 trailing bytes (10 padding, 2 terminators) can go without changing meaning.
    for cut in range(1, 13):
        assert bhttp.decode_request(data[:-cut]) == full
    with pytest.raises(MalformedMessageError):
        bhttp.decode_request(data[:-13])  # drops the header section's terminator


def test_indeterminate_response_sections_must_be_terminated(examples: dict[str, dict[str, Any]]) -> None:
    data = bytes.fromhex(examples["ex-bini-response"]["hex"])
    assert bhttp.decode_response(data[:-1]) == bhttp.decode_response(data)  # empty trailers omitted
    with pytest.raises(MalformedMessageError):
        # Non-empty content without its zero-length end chunk is cut mid-section, not truncated.
        bhttp.decode_response(data[:-2])


def test_padding_must_be_zero(examples: dict[str, dict[str, Any]]) -> None:
    data = bytes.fromhex(examples["ex-bini-request"]["hex"])
    assert bhttp.decode_request(data + bytes(100)) == bhttp.decode_request(data)
    with pytest.raises(MalformedMessageError):
        bhttp.decode_request(data[:-1] + b"\x01")
    known = bytes.fromhex(examples["ex-bink-chunked"]["hex"])
    with pytest.raises(MalformedMessageError):
        bhttp.decode_response(known + b"garbage")


def test_framing_indicator_must_match_kind(examples: dict[str, dict[str, Any]]) -> None:
    request = bytes.fromhex(examples["ex-bink-request"]["hex"])
    response = bytes.fromhex(examples["ex-bink-chunked"]["hex"])
    with pytest.raises(MalformedMessageError):
        bhttp.decode_response(request)
    with pytest.raises(MalformedMessageError):
        bhttp.decode_request(response)
    with pytest.raises(MalformedMessageError):
        bhttp.decode_request(b"\x04" + request[1:])


@pytest.mark.parametrize("status", [0, 99, 600, 1000, 2**62 - 1])
def test_bad_final_status(status: int) -> None:
    with pytest.raises(MalformedMessageError):
        bhttp.decode_response(b"\x01" + bhttp.encode_varint(status) + b"\x00\x00\x00")


def test_informational_requires_final_response() -> None:
    with pytest.raises(MalformedMessageError):
        bhttp.decode_response(b"\x01" + bhttp.encode_varint(103) + b"\x00")


def test_uppercase_or_bad_field_names_rejected() -> None:
    def request_with_field(name: bytes, value: bytes) -> bytes:
        line = bytes([len(name)]) + name + bytes([len(value)]) + value
        return b"\x00\x03GET\x05https\x00\x01/" + bytes([len(line)]) + line

    assert bhttp.decode_request(request_with_field(b"x-ok", b"v")).headers == (("x-ok", "v"),)
    for name, value in [
        (b"X-Up", b"v"),
        (b":path", b"/"),
        (b"a b", b"v"),
        (b"x", b"a\r\nb"),
        (b"x", b"\x00"),
    ]:
        with pytest.raises(MalformedMessageError):
            bhttp.decode_request(request_with_field(name, value))


def test_huge_declared_lengths() -> None:
    # Header section claims 2**30 - 1 bytes; content claims 2**62 - 1 bytes.
    with pytest.raises(MalformedMessageError):
        bhttp.decode_request(b"\x00\x03GET\x05https\x00\x01/" + b"\xbf\xff\xff\xff" + b"\x00")
    with pytest.raises(MalformedMessageError):
        bhttp.decode_request(b"\x00\x03GET\x05https\x00\x01/\x00" + b"\xff" * 8)


def test_truncated_varint() -> None:
    with pytest.raises(MalformedMessageError):
        bhttp.decode_request(b"\x00\x03GET\x05https\x00\x01/\xc0\x00\x00")
    with pytest.raises(MalformedMessageError):
        bhttp.decode_request(b"")


def test_varint_encoding_boundaries() -> None:
    # RFC 9000 Appendix A.1 examples.
    assert bhttp.decode_varint(bytes.fromhex("c2197c5eff14e88c")) == (151288809941952652, 8)
    assert bhttp.decode_varint(bytes.fromhex("9d7f3e7d")) == (494878333, 4)
    assert bhttp.decode_varint(bytes.fromhex("7bbd")) == (15293, 2)
    assert bhttp.decode_varint(bytes.fromhex("25")) == (37, 1)
    assert bhttp.decode_varint(bytes.fromhex("4025")) == (37, 2)  # non-minimal is legal
    for value, size in [(0, 1), (63, 1), (64, 2), (16383, 2), (16384, 4), (2**30 - 1, 4), (2**30, 8)]:
        encoded = bhttp.encode_varint(value)
        assert len(encoded) == size
        assert bhttp.decode_varint(encoded) == (value, size)
    with pytest.raises(ValueError):
        bhttp.encode_varint(2**62)


def test_size_and_count_limits() -> None:
    with pytest.raises(MalformedMessageError):
        bhttp.decode_request(b"\x00" + bytes(bhttp.MAX_MESSAGE_SIZE))
    many = tuple((f"x-{i}", "v") for i in range(bhttp.MAX_FIELD_LINES + 1))
    with pytest.raises(ValueError):
        bhttp.encode_request(bhttp.Request("GET", "https", "a", "/", many))
    body = b"".join(
        bytes([3]) + f"x{i:02x}".encode()[:3] + b"\x01v" for i in range(bhttp.MAX_FIELD_LINES + 1)
    )
    wire = b"\x00\x03GET\x05https\x01a\x01/" + bhttp.encode_varint(len(body)) + body
    with pytest.raises(MalformedMessageError):
        bhttp.decode_request(wire)


def test_exception_text_is_content_free() -> None:
    canary = b"CANARY-4242"
    wire = b"\x00\x03GET\x05https\x00\x01/" + bytes([len(canary) + 8]) + b"\x06X-Name" + canary
    with pytest.raises(MalformedMessageError) as info:
        bhttp.decode_request(wire)
    assert "CANARY" not in str(info.value)
    assert info.value.__cause__ is None


def test_encoder_normalizes_and_validates() -> None:
    r = bhttp.Request("GET", "https", "a", "/", (("Content-Type", "x"),))
    assert r.headers == (("content-type", "x"),)
    for bad in [
        bhttp.Request("G T", "https", "a", "/"),
        bhttp.Request("GET", "1https", "a", "/"),
        bhttp.Request("GET", "https", "a b", "/"),
        bhttp.Request("GET", "https", "a", "/", (("x", "a\nb"),)),
        bhttp.Request("GET", "https", "a", "/", (("x", "\u20ac"),)),
    ]:
        with pytest.raises(ValueError):
            bhttp.encode_request(bad)
    for status in (99, 600):
        with pytest.raises(ValueError):
            bhttp.encode_response(bhttp.Response(status))
    with pytest.raises(ValueError):
        bhttp.encode_response(bhttp.Response(200, informational=((200, ()),)))
