"""Property tests for binary HTTP: untrusted bytes raise only enclavia errors; encode/decode round-trips."""

from __future__ import annotations

import string
import traceback

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enclavia.crypto import bhttp
from enclavia.errors import EnclaviaError

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CANARY = "CANARY-7f3a"

tchar_lower = string.ascii_lowercase + string.digits + "!#$%&'*+-.^_`|~"
names = st.text(alphabet=tchar_lower, min_size=1, max_size=20)
value_chars = st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f") | st.just(
    "\t"
)
values = st.text(alphabet=value_chars, max_size=40)
fields = st.lists(st.tuples(names, values), max_size=8).map(tuple)
methods = st.text(alphabet=string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~", min_size=1, max_size=10)
schemes = st.builds(
    lambda first, rest: first + rest,
    st.sampled_from(string.ascii_letters),
    st.text(alphabet=string.ascii_letters + string.digits + "+-.", max_size=8),
)
visible = st.text(alphabet="".join(chr(c) for c in range(0x21, 0x7F)), max_size=30)
bodies = st.binary(max_size=300)

requests = st.builds(bhttp.Request, methods, schemes, visible, visible, fields, bodies, fields)
responses = st.builds(
    bhttp.Response,
    st.integers(200, 599),
    fields,
    bodies,
    fields,
    st.lists(st.tuples(st.integers(100, 199), fields), max_size=3).map(tuple),
)


def _decode_only_enclavia_errors(data: bytes) -> None:
    for decode in (bhttp.decode_request, bhttp.decode_response):
        try:
            message = decode(data)
        except EnclaviaError as exc:
            assert exc.__cause__ is None
            continue
        # Whatever parses is a valid message: it re-encodes, and that decodes to the same thing.
        if isinstance(message, bhttp.Request):
            assert bhttp.decode_request(bhttp.encode_request(message)) == message
        else:
            assert bhttp.decode_response(bhttp.encode_response(message)) == message


@SETTINGS
@given(st.binary(max_size=400))
def test_random_bytes(data: bytes) -> None:
    _decode_only_enclavia_errors(data)


@SETTINGS
@given(st.sampled_from([b"\x00", b"\x01", b"\x02", b"\x03"]), st.binary(max_size=400))
def test_random_bytes_after_valid_framing(framing: bytes, data: bytes) -> None:
    _decode_only_enclavia_errors(framing + data)


def _mutate(data: bytes, source: st.DataObject) -> bytes:
    draw = source.draw
    kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "overwrite"]))
    if not data:
        return data
    i = draw(st.integers(0, len(data) - 1))
    if kind == "flip":
        return data[:i] + bytes([data[i] ^ (1 << draw(st.integers(0, 7)))]) + data[i + 1 :]
    if kind == "truncate":
        return data[:i]
    if kind == "insert":
        return data[:i] + draw(st.binary(min_size=1, max_size=9)) + data[i:]
    if kind == "delete":
        return data[:i] + data[i + 1 :]
    return data[:i] + draw(st.sampled_from([b"\xff" * 8, b"\xc0", b"\x80\x00", b"\x7f"])) + data[i + 1 :]


@SETTINGS
@given(st.data(), requests, responses)
def test_mutated_valid_messages(
    data: st.DataObject, request: bhttp.Request, response: bhttp.Response
) -> None:
    for wire in (bhttp.encode_request(request), bhttp.encode_response(response)):
        mutated = wire
        for _ in range(data.draw(st.integers(1, 4))):
            mutated = _mutate(mutated, data)
        _decode_only_enclavia_errors(mutated)


@SETTINGS
@given(requests)
def test_request_round_trip(request: bhttp.Request) -> None:
    assert bhttp.decode_request(bhttp.encode_request(request)) == request


@SETTINGS
@given(responses)
def test_response_round_trip(response: bhttp.Response) -> None:
    assert bhttp.decode_response(bhttp.encode_response(response)) == response


@SETTINGS
@given(requests, st.integers(0, 64))
def test_zero_padding_is_ignored(request: bhttp.Request, padding: int) -> None:
    assert bhttp.decode_request(bhttp.encode_request(request) + bytes(padding)) == request


@SETTINGS
@given(st.integers(0, 2**62 - 1))
def test_varint_round_trip(value: int) -> None:
    encoded = bhttp.encode_varint(value)
    assert bhttp.decode_varint(encoded) == (value, len(encoded))


@SETTINGS
@given(st.data(), fields)
def test_errors_never_carry_message_content(data: st.DataObject, headers: bhttp.Fields) -> None:
    request = bhttp.Request("POST", "https", "h", "/", (*headers, ("x-secret", CANARY)), CANARY.encode())
    wire = bhttp.encode_request(request)
    cut = data.draw(st.integers(0, len(wire) - 1))
    broken = wire[:cut] + b"\x7f" + wire[cut:]
    try:
        bhttp.decode_request(broken)
    except EnclaviaError as exc:
        assert CANARY not in "".join(traceback.format_exception(exc))
