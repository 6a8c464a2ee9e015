"""Property tests for OHTTP: untrusted bytes only ever raise enclavia errors; encapsulation round-trips."""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enclavia.crypto.hpke import KemPrivateKey, Suite
from enclavia.crypto.ohttp import (
    Gateway,
    GatewayKey,
    KeyConfig,
    decode_key_configs,
    encapsulate_request,
    encode_key_configs,
)
from enclavia.errors import DecryptionError, EnclaviaError

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Fixed keys (derived, so runs are reproducible): key 1 offers all three AEADs, key 2 only AES-256-GCM.
KEY_ALL = GatewayKey(
    KeyConfig(1, 0x20, KemPrivateKey.derive(b"k" * 32).public_bytes(), ((1, 2), (1, 1), (1, 3))),
    KemPrivateKey.derive(b"k" * 32),
)
KEY_256 = GatewayKey.generate(2)
GATEWAY = Gateway([KEY_ALL, KEY_256])

key_configs = st.builds(
    KeyConfig,
    st.integers(0, 255),
    st.just(0x20),
    st.binary(min_size=32, max_size=32),
    st.lists(st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF)), min_size=1, max_size=6).map(tuple),
)
aeads = st.sampled_from([1, 2, 3])


def _only_enclavia_errors(call: object, data: bytes) -> None:
    try:
        call(data)  # type: ignore[operator]
    except EnclaviaError as exc:
        assert exc.__cause__ is None


@SETTINGS
@given(st.binary(max_size=200))
def test_key_config_decode_random(data: bytes) -> None:
    _only_enclavia_errors(KeyConfig.decode, data)
    _only_enclavia_errors(decode_key_configs, data)


@SETTINGS
@given(key_configs, st.data())
def test_key_config_decode_mutated(config: KeyConfig, data: st.DataObject) -> None:
    wire = config.encode()
    i = data.draw(st.integers(0, len(wire)))
    mutated = wire[:i] + data.draw(st.binary(max_size=4)) + wire[i + data.draw(st.integers(0, 4)) :]
    _only_enclavia_errors(KeyConfig.decode, mutated)
    _only_enclavia_errors(decode_key_configs, struct.pack(">H", len(wire)) + mutated)


@SETTINGS
@given(key_configs)
def test_key_config_round_trip(config: KeyConfig) -> None:
    assert KeyConfig.decode(config.encode()) == config


@SETTINGS
@given(st.lists(key_configs, min_size=1, max_size=4))
def test_key_config_list_round_trip(configs: list[KeyConfig]) -> None:
    assert decode_key_configs(encode_key_configs(configs)) == tuple(configs)


@SETTINGS
@given(st.binary(max_size=200))
def test_gateway_random_bytes(data: bytes) -> None:
    _only_enclavia_errors(GATEWAY.decapsulate_request, data)


@SETTINGS
@given(
    st.sampled_from([b"\x01\x00\x20\x00\x01\x00\x02", b"\x02\x00\x20\x00\x01\x00\x02"]),
    st.binary(max_size=200),
)
def test_gateway_random_bytes_after_valid_header(header: bytes, data: bytes) -> None:
    # Past the header the KEM and AEAD run on attacker bytes: only DecryptionError or a key refusal.
    _only_enclavia_errors(GATEWAY.decapsulate_request, header + data)


@SETTINGS
@given(st.binary(max_size=200), aeads, st.data())
def test_gateway_mutated_request(body: bytes, aead_id: int, data: st.DataObject) -> None:
    message, _ = encapsulate_request(KEY_ALL.config, body, suite=Suite(0x20, 1, aead_id))
    i = data.draw(st.integers(0, len(message) - 1))
    mutated = message[:i] + bytes([message[i] ^ data.draw(st.integers(1, 255))]) + message[i + 1 :]
    try:
        GATEWAY.decapsulate_request(mutated)
    except EnclaviaError:
        return
    raise AssertionError("a modified request must not open")


@SETTINGS
@given(st.binary(max_size=500), st.binary(max_size=500), aeads)
def test_exchange_round_trip(request: bytes, response: bytes, aead_id: int) -> None:
    message, client = encapsulate_request(KEY_ALL.config, request, suite=Suite(0x20, 1, aead_id))
    got, server = GATEWAY.decapsulate_request(message)
    assert got == request
    assert client.decapsulate_response(server.encapsulate_response(response)) == response


@SETTINGS
@given(st.binary(max_size=200), st.binary(max_size=200))
def test_response_random_bytes(request: bytes, junk: bytes) -> None:
    _, client = encapsulate_request(KEY_256.config, request)
    try:
        client.decapsulate_response(junk)
    except EnclaviaError as exc:
        assert exc.__cause__ is None
    else:
        raise AssertionError("random bytes must not open as a response")


@SETTINGS
@given(st.binary(max_size=100), st.data())
def test_response_to_another_request_does_not_open(request: bytes, data: st.DataObject) -> None:
    _, client_a = encapsulate_request(KEY_256.config, request)
    message_b, _ = encapsulate_request(KEY_256.config, request)
    _, server_b = GATEWAY.decapsulate_request(message_b)
    sealed = server_b.encapsulate_response(data.draw(st.binary(max_size=50)))
    try:
        client_a.decapsulate_response(sealed)
    except DecryptionError:
        return
    raise AssertionError("a response must be bound to its own request")
