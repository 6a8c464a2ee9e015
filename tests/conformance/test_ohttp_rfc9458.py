"""RFC 9458 Appendix A (vectors/ohttp, see its SOURCE.md) through enclavia.crypto.ohttp, plus negatives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from enclavia.crypto import bhttp
from enclavia.crypto.hpke import DEFAULT_SUITE, KemPrivateKey, Suite, setup_base_recipient
from enclavia.crypto.ohttp import (
    ClientResponseContext,
    Gateway,
    GatewayKey,
    KeyConfig,
    decode_key_configs,
    encapsulate_request,
    encode_key_configs,
)
from enclavia.errors import (
    DecryptionError,
    InvalidPublicKeyError,
    MalformedMessageError,
    UnknownKeyIdError,
    UnsupportedSuiteError,
)


class Appendix:
    def __init__(self, raw: dict[str, str]) -> None:
        self.raw = raw

    def __getattr__(self, name: str) -> bytes:
        return bytes.fromhex(self.raw[name])


@pytest.fixture(scope="module")
def ax(vectors: Path) -> Appendix:
    return Appendix(json.loads((vectors / "ohttp" / "rfc9458_appendix_a.json").read_text()))


@pytest.fixture(scope="module")
def gateway_key(ax: Appendix) -> GatewayKey:
    return GatewayKey(KeyConfig.decode(ax.key_config), KemPrivateKey.from_bytes(ax.key_config_private_key))


@pytest.fixture
def gateway(gateway_key: GatewayKey) -> Gateway:
    return Gateway([gateway_key])


def _client(ax: Appendix) -> tuple[bytes, ClientResponseContext]:
    config = KeyConfig.decode(ax.key_config)
    return encapsulate_request(config, ax.request, sk_e=KemPrivateKey.from_bytes(ax.ephemeral_private_key))


def flip(data: bytes, index: int) -> bytes:
    out = bytearray(data)
    out[index] ^= 0x01
    return bytes(out)


# --- the appendix, step by step -------------------------------------------------------------------


def test_key_config_decodes_and_reencodes(ax: Appendix) -> None:
    config = KeyConfig.decode(ax.key_config)
    assert config.key_id == 1
    assert config.kem_id == 0x0020
    assert config.public_key == ax.key_config_public_key
    assert config.symmetric == ((1, 1), (1, 3))
    assert config.encode() == ax.key_config
    assert KemPrivateKey.from_bytes(ax.key_config_private_key).public_bytes() == config.public_key


def test_ohttp_keys_media_type_round_trip(ax: Appendix) -> None:
    config = KeyConfig.decode(ax.key_config)
    wire = encode_key_configs([config])
    assert wire == len(ax.key_config).to_bytes(2, "big") + ax.key_config
    assert decode_key_configs(wire) == (config,)


def test_hpke_info_is_label_and_header(ax: Appendix) -> None:
    config = KeyConfig.decode(ax.key_config)
    assert ax.hpke_info == b"message/bhttp request\x00" + config.header(1, 1)


def test_client_reproduces_encapsulated_request(ax: Appendix) -> None:
    assert KemPrivateKey.from_bytes(ax.ephemeral_private_key).public_bytes() == ax.ephemeral_public_key
    message, ctx = _client(ax)
    assert message == ax.encapsulated_request
    assert ctx.suite == Suite(0x20, 1, 1)  # the config's first pair: AES-128-GCM


def test_gateway_opens_appendix_request(ax: Appendix, gateway: Gateway) -> None:
    request, _ = gateway.decapsulate_request(ax.encapsulated_request)
    assert request == ax.request
    assert bhttp.decode_request(request) == bhttp.Request("GET", "https", "example.com", "/")


def test_exported_secret(ax: Appendix, gateway_key: GatewayKey) -> None:
    ctx = setup_base_recipient(
        Suite(0x20, 1, 1), ax.ephemeral_public_key, gateway_key.private_key, ax.hpke_info
    )
    assert ctx.export(b"message/bhttp response", 16) == ax.exported_secret
    assert ax.response_salt == ax.ephemeral_public_key + ax.response_nonce


def test_gateway_reproduces_encapsulated_response(ax: Appendix, gateway: Gateway) -> None:
    _, server_ctx = gateway.decapsulate_request(ax.encapsulated_request)
    out = server_ctx.encapsulate_response(ax.response, response_nonce=ax.response_nonce)
    assert out == ax.encapsulated_response


def test_client_opens_appendix_response(ax: Appendix) -> None:
    _, ctx = _client(ax)
    response = ctx.decapsulate_response(ax.encapsulated_response)
    assert response == ax.response
    assert bhttp.decode_response(response) == bhttp.Response(200)


def test_full_exchange_with_default_suite() -> None:
    key = GatewayKey.generate(7)
    assert key.config.symmetric == ((DEFAULT_SUITE.kdf_id, DEFAULT_SUITE.aead_id),)
    inner = bhttp.encode_request(
        bhttp.Request(
            "POST", "https", "enclave", "/v1/embeddings", (("content-type", "application/json"),), b"{}"
        )
    )
    message, client_ctx = encapsulate_request(key.config, inner)
    got, server_ctx = Gateway([key]).decapsulate_request(message)
    assert got == inner
    reply = bhttp.encode_response(bhttp.Response(200, content=b"ok"))
    assert client_ctx.decapsulate_response(server_ctx.encapsulate_response(reply)) == reply
    assert client_ctx.suite == server_ctx.suite == DEFAULT_SUITE


# --- negatives --------------------------------------------------------------------------------------


def test_bit_flip_in_request_ciphertext(ax: Appendix, gateway: Gateway) -> None:
    for index in (7 + 32, len(ax.encapsulated_request) - 1):  # first ciphertext byte, last tag byte
        with pytest.raises(DecryptionError):
            gateway.decapsulate_request(flip(ax.encapsulated_request, index))


def test_bit_flip_in_enc_fails(ax: Appendix, gateway: Gateway) -> None:
    with pytest.raises((DecryptionError, InvalidPublicKeyError)):
        gateway.decapsulate_request(flip(ax.encapsulated_request, 7))


def test_bit_flip_in_response(ax: Appendix) -> None:
    for index in (0, 16, len(ax.encapsulated_response) - 1):  # nonce, ciphertext, tag
        _, ctx = _client(ax)
        with pytest.raises(DecryptionError):
            ctx.decapsulate_response(flip(ax.encapsulated_response, index))


def test_unknown_key_id(ax: Appendix, gateway: Gateway) -> None:
    message = bytes([2]) + ax.encapsulated_request[1:]
    with pytest.raises(UnknownKeyIdError):
        gateway.decapsulate_request(message)


def test_gateway_refuses_suite_not_offered(ax: Appendix, gateway: Gateway) -> None:
    # The config offers AES-128-GCM and ChaCha20Poly1305; AES-256-GCM is implemented but not offered.
    header = KeyConfig.decode(ax.key_config).header(1, 2)
    with pytest.raises(UnsupportedSuiteError):
        gateway.decapsulate_request(header + ax.encapsulated_request[7:])
    with pytest.raises(UnsupportedSuiteError):  # unknown KEM id in the header
        gateway.decapsulate_request(b"\x01\x00\x21" + ax.encapsulated_request[3:])


def test_header_downgrade_to_other_offered_suite_fails(ax: Appendix, gateway: Gateway) -> None:
    # Rewriting the header to the other offered AEAD changes the HPKE info, so opening fails.
    header = KeyConfig.decode(ax.key_config).header(1, 3)
    with pytest.raises(DecryptionError):
        gateway.decapsulate_request(header + ax.encapsulated_request[7:])


def test_client_refuses_suite_not_offered(ax: Appendix) -> None:
    config = KeyConfig.decode(ax.key_config)
    with pytest.raises(UnsupportedSuiteError):
        encapsulate_request(config, ax.request, suite=Suite(0x20, 1, 2))
    with pytest.raises(UnsupportedSuiteError):
        encapsulate_request(config, ax.request, suite=Suite(0x21, 1, 1))
    unimplemented = KeyConfig(1, 0x20, config.public_key, ((1, 0xFFFF), (2, 1)))
    with pytest.raises(UnsupportedSuiteError):
        encapsulate_request(unimplemented, ax.request)


def test_client_picks_offered_suite_it_asked_for(ax: Appendix, gateway: Gateway) -> None:
    config = KeyConfig.decode(ax.key_config)
    message, ctx = encapsulate_request(config, ax.request, suite=Suite(0x20, 1, 3))
    assert message[:7] == config.header(1, 3)
    got, server = gateway.decapsulate_request(message)
    assert got == ax.request
    assert ctx.decapsulate_response(server.encapsulate_response(b"\x01\x40\xc8")) == b"\x01\x40\xc8"


def test_truncated_request(ax: Appendix, gateway: Gateway) -> None:
    for length in (0, 1, 6, 7, 7 + 31, 7 + 32, 7 + 32 + 15):
        with pytest.raises(MalformedMessageError):
            gateway.decapsulate_request(ax.encapsulated_request[:length])


def test_truncated_response(ax: Appendix) -> None:
    _, ctx = _client(ax)
    for length in (0, 15, 16, 16 + 15):
        with pytest.raises(MalformedMessageError):
            ctx.decapsulate_response(ax.encapsulated_response[:length])


def test_low_order_enc_is_refused(ax: Appendix, gateway: Gateway) -> None:
    with pytest.raises(InvalidPublicKeyError):
        gateway.decapsulate_request(ax.encapsulated_request[:7] + bytes(32) + bytes(16))


def test_key_config_exact_length(ax: Appendix) -> None:
    for bad in (ax.key_config[:-1], ax.key_config + b"\x00", ax.key_config[:3], b""):
        with pytest.raises(MalformedMessageError):
            KeyConfig.decode(bad)
    no_algs = ax.key_config[:35] + b"\x00\x00"
    with pytest.raises(MalformedMessageError):
        KeyConfig.decode(no_algs)
    odd_algs = ax.key_config[:35] + b"\x00\x06" + ax.key_config[37:43]
    with pytest.raises(MalformedMessageError):
        KeyConfig.decode(odd_algs)


def test_ohttp_keys_skips_unknown_kem(ax: Appendix) -> None:
    unknown = b"\x09\x00\x99" + b"\x00" * 40
    wire = len(unknown).to_bytes(2, "big") + unknown + encode_key_configs([KeyConfig.decode(ax.key_config)])
    assert [c.key_id for c in decode_key_configs(wire)] == [1]
    with pytest.raises(UnsupportedSuiteError):
        decode_key_configs(len(unknown).to_bytes(2, "big") + unknown)
    with pytest.raises(MalformedMessageError):
        decode_key_configs(wire[:-1])


def test_response_context_is_single_use(ax: Appendix, gateway: Gateway) -> None:
    _, server = gateway.decapsulate_request(ax.encapsulated_request)
    server.encapsulate_response(b"\x01\x40\xc8")
    with pytest.raises(ValueError):
        server.encapsulate_response(b"\x01\x40\xc8")


def test_gateway_key_must_match_config(ax: Appendix) -> None:
    with pytest.raises(ValueError):
        GatewayKey(KeyConfig.decode(ax.key_config), KemPrivateKey.generate())
    key = GatewayKey.generate(1)
    assert key.private_key.private_bytes().hex() not in repr(key)
    with pytest.raises(ValueError):
        Gateway([key, GatewayKey.generate(1)])
