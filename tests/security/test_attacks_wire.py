"""Attacks on the wire between client, host and enclave: invalid HPKE public keys, suite downgrade by the
key configuration, hostile binary HTTP inside valid encryption, truncated chunked requests, lying frame
headers on the host-enclave socket, and blob names the host should not accept.

The single-object versions of several of these are conformance tests (tests/conformance/
test_ohttp_rfc9458.py, test_bhttp_rfc9292.py, test_wycheproof_x25519.py); here they go through the
enclave's dispatcher or the client SDK, the way an attacker would meet them.
"""

from __future__ import annotations

import asyncio
import json
import struct
from pathlib import Path
from typing import Any

import pytest

from enclavia import channel
from enclavia.client.sdk import Client
from enclavia.crypto.bhttp import Request, encode_request, encode_varint
from enclavia.crypto.chunked_ohttp import ChunkedRequestSender
from enclavia.crypto.hpke import AEAD_AES_128_GCM, AEAD_AES_256_GCM, DEFAULT_SUITE
from enclavia.crypto.ohttp import KeyConfig, encapsulate_request
from enclavia.enclave.server import EnclaveServer
from enclavia.errors import (
    ChunkIntegrityError,
    EnclaveUnavailableError,
    InvalidPublicKeyError,
    MalformedMessageError,
    StreamTruncatedError,
    UnsupportedSuiteError,
)
from enclavia.observability.metrics import EnclaveMetrics
from tests.security.attack_support import T0, Loopback, SimWorld, gateway_key, install_key

KDF = DEFAULT_SUITE.kdf_id
MODELS = Request("GET", "https", "enclave", "/v1/models")


@pytest.fixture(scope="module")
def world() -> SimWorld:
    return SimWorld()


@pytest.fixture(scope="module")
def low_order_points(vectors: Path) -> list[bytes]:
    doc = json.loads((vectors / "wycheproof" / "x25519_test.json").read_text())
    cases = [t for g in doc["testGroups"] for t in g["tests"] if "ZeroSharedSecret" in t["flags"]]
    points = sorted({bytes.fromhex(t["public"]) for t in cases})
    assert len(points) >= 10
    return points


def _dispatch(world: SimWorld, kind: int, body: bytes) -> tuple[bool, str, bytes]:
    server = EnclaveServer(world.enclave, EnclaveMetrics(), lambda *a, **k: None)
    return server._dispatch(channel.Frame(kind, b"", body))


def test_low_order_enc_through_the_enclave(world: SimWorld, low_order_points: list[bytes]) -> None:
    """Every Wycheproof small-order X25519 point as the OHTTP ``enc``, sent through the enclave's socket
    dispatcher; the enclave refuses each before deriving a key, and keeps serving.

    Source: Wycheproof x25519_test.json (flag ZeroSharedSecret); RFC 9180 section 7.1.4; RFC 7748 section
    6.1. tests/conformance/test_ohttp_rfc9458.py checks one point against the bare Gateway.
    """
    config = KeyConfig.decode(world.enclave.key_config)
    good, _ = encapsulate_request(config, encode_request(MODELS))
    for point in low_order_points:
        forged = good[:7] + point + good[39:]
        assert _dispatch(world, channel.Kind.GATEWAY, forged) == (False, InvalidPublicKeyError.code, b"")
        with pytest.raises(InvalidPublicKeyError):
            world.enclave.open_stream(forged[:39] + b"\x00")  # the chunked gateway, same check
    ok, code, body = _dispatch(world, channel.Kind.GATEWAY, good)
    assert ok and code == "" and body


def test_client_will_not_seal_to_a_low_order_key(world: SimWorld, low_order_points: list[bytes]) -> None:
    """A buggy (or malicious but allow-listed) enclave attests a small-order public key: whatever the
    client sealed to it would be readable by anyone. The client refuses before sending a byte.

    Source: Wycheproof x25519_test.json; RFC 9180 section 7.1.4 (the sender's DH must be checked too).
    """
    enclave = world.make_enclave()
    enclave.key_config = KeyConfig(
        4, DEFAULT_SUITE.kem_id, low_order_points[0], ((KDF, DEFAULT_SUITE.aead_id),)
    ).encode()
    loop = Loopback(enclave)
    with Client("http://enclave.test", world.policy(), http=loop.client(), clock=lambda: T0) as client:
        client.attest()
        with pytest.raises(InvalidPublicKeyError):
            client.models()
    assert loop.gateway_bodies == []


def test_key_config_listing_a_weaker_suite_first(world: SimWorld) -> None:
    """The attested key configuration offers AES-128-GCM before AES-256-GCM. The client verified that the
    configuration offers its suite; it must then use that suite, not the configuration's first choice.

    Source: CWE-757 (selection of a less-secure algorithm during negotiation); RFC 9458 section 3 (the
    client picks among the offered algorithms); DESIGN.md ("the suite is part of the measured
    configuration: no downgrade"). Before the fix in enclavia.client.sdk the client sealed with AES-128-GCM.
    """
    enclave = world.make_enclave()
    install_key(enclave, gateway_key(((KDF, AEAD_AES_128_GCM), (KDF, AEAD_AES_256_GCM))))
    loop = Loopback(enclave)
    with Client("http://enclave.test", world.policy(), http=loop.client(), clock=lambda: T0) as client:
        assert client.models()["data"] == []
        with pytest.raises(EnclaveUnavailableError):  # the loopback does not serve chunked requests
            client.stream("GET", "/v1/models").read()
    assert loop.gateway_bodies
    for body in loop.gateway_bodies:
        _key_id, _kem, kdf, aead = struct.unpack(">BHHH", body[:7])
        assert (kdf, aead) == (KDF, AEAD_AES_256_GCM)


def test_key_config_offering_only_a_weaker_suite(world: SimWorld) -> None:
    """The enclave attests a configuration with AES-128-GCM only.

    Source: CWE-757; tests/unit/broker/test_protocol.py checks the broker refuses the same configuration.
    """
    enclave = world.make_enclave()
    install_key(enclave, gateway_key(((KDF, AEAD_AES_128_GCM),)))
    loop = Loopback(enclave)
    client = Client("http://enclave.test", world.policy(), http=loop.client(), clock=lambda: T0)
    with client, pytest.raises(UnsupportedSuiteError):
        client.models()
    assert loop.gateway_bodies == []


def test_hostile_binary_http_inside_valid_encryption(world: SimWorld) -> None:
    """Properly encrypted to the enclave, the inner message declares a 2^62-byte field section, or a
    million empty field lines: refused after decryption without allocating what it declares.

    Source: RFC 9292 section 3 (length-prefixed fields, RFC 9000 section 16 varints); CWE-789 (memory
    allocation with an excessive size value); CWE-770.
    """
    config = KeyConfig.decode(world.enclave.key_config)
    head = b"\x00" + b"\x03GET\x05https\x07enclave\x0a/v1/models"
    for inner in (
        head + encode_varint(2**62 - 1) + b"x" * 16,
        head + encode_varint(2_000_000) + b"\x00\x00" * 1_000_000,
    ):
        message, _ = encapsulate_request(config, inner)
        assert _dispatch(world, channel.Kind.GATEWAY, message) == (False, MalformedMessageError.code, b"")


def test_chunked_request_cut_before_its_final_chunk(world: SimWorld) -> None:
    """A relay drops the final chunk of a chunked OHTTP request (or cuts into it, or relabels an earlier
    chunk as the final one), hoping the enclave acts on a prefix.

    Source: draft-ietf-ohai-chunked-ohttp (security considerations: truncation; the final chunk is sealed
    with its own associated data). The response side is covered in tests/unit/test_chunked_ohttp.py.
    """
    config = KeyConfig.decode(world.enclave.key_config)
    inner = encode_request(MODELS)
    body = inner + bytes(64 + -len(inner) % 16)  # zero padding (RFC 9292 section 3.8): 16-byte pieces
    pieces = [body[i : i + 16] for i in range(0, len(body), 16)]

    def sender_parts() -> tuple[bytes, list[bytes]]:
        sender = ChunkedRequestSender(config)
        return sender.header, [sender.seal(p, final=i == len(pieces) - 1) for i, p in enumerate(pieces)]

    header, chunks = sender_parts()
    assert callable(world.enclave.open_stream(header + b"".join(chunks)))
    header, chunks = sender_parts()
    with pytest.raises(StreamTruncatedError):
        world.enclave.open_stream(header + b"".join(chunks[:-1]))  # final chunk dropped
    header, chunks = sender_parts()
    with pytest.raises(ChunkIntegrityError):
        world.enclave.open_stream(header + b"".join(chunks)[:-5])  # final chunk cut short
    header, chunks = sender_parts()
    relabelled = b"\x00" + chunks[-2][1:]  # a one-byte length prefix replaced by the final marker
    with pytest.raises(ChunkIntegrityError):
        world.enclave.open_stream(header + b"".join(chunks[:-2]) + relabelled)


def test_frame_header_lying_about_its_length() -> None:
    """A frame on the host-enclave socket declares a 1 GiB body (or a 64 KiB traceparent) and sends five
    bytes: refused from the header alone, nothing allocated, nothing awaited.

    Source: CWE-789; CWE-400. The host maps the ChannelError to EnclaveUnavailableError (503).
    """

    async def read(data: bytes, max_meta: int) -> Any:
        reader = asyncio.StreamReader()
        reader.feed_data(data)  # no EOF: a read that waited for the declared body would hang the test
        return await asyncio.wait_for(channel.read_frame(reader, max_meta), timeout=1)

    for header, max_meta in (
        (channel.HEADER.pack(1, channel.Kind.GATEWAY, 0, 1 << 30), channel.MAX_TRACEPARENT),
        (channel.HEADER.pack(1, channel.Kind.GATEWAY, 0xFFFF, 0), channel.MAX_TRACEPARENT),
        (channel.HEADER.pack(1, 1, 0xFFFF, 0), channel.MAX_CODE),
        (channel.HEADER.pack(2, channel.Kind.HEALTH, 0, 0), channel.MAX_TRACEPARENT),
    ):
        with pytest.raises(channel.ChannelError):
            asyncio.run(read(header + b"hello", max_meta))


@pytest.mark.parametrize("name", ["keyring\n", "c/" + "ab" * 16 + "\n", "../keyring", "c/../../x", "KEYRING"])
def test_host_blob_names_must_match_whole(tmp_path: Path, name: str) -> None:
    """Blob names with a trailing newline, traversal or other case reach the host's store.

    Source: CWE-625 (permissive regular expression: in Python, "$" also matches before a final newline, so
    "keyring\\n" passed the check and aliased "keyring"); CWE-22. Found by tests/fuzz; fixed in
    enclavia.host.services and enclavia.rag.blobstore (fullmatch).
    """
    from enclavia.host.services import HostServices
    from enclavia.rag.blobstore import encode_op, valid_name

    services = HostServices(str(tmp_path / "s.sock"), tmp_path / "blobs")
    assert services._store(encode_op(b"P", name, b"x")) == (False, "store.bad_name", b"")
    assert not valid_name(name)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
