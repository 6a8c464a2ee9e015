"""Nitro NSM attester against a fake NSM transport."""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field
from typing import Any

import cbor2
import pytest

from enclavia.attestation.claims import Tee
from enclavia.attestation.platforms.nitro.abi import parse_cose_sign1
from enclavia.errors import AttesterError
from enclavia.tee.base import Attester
from enclavia.tee.nitro_nsm import (
    NSM_IOCTL_REQUEST,
    DevNsmTransport,
    NitroNsmAttester,
    decode_attestation_response,
    encode_attestation_request,
)

RD = bytes(range(64))


def fake_document(user_data: bytes | None, nonce: bytes | None, public_key: bytes | None) -> bytes:
    payload = cbor2.dumps(
        {
            "module_id": "i-fake-enc",
            "digest": "SHA384",
            "timestamp": 1_700_000_000_000,
            "pcrs": {0: b"\x00" * 48, 1: b"\x01" * 48, 2: b"\x02" * 48},
            "certificate": b"\x30\x00",
            "cabundle": [b"\x30\x00"],
            "public_key": public_key,
            "user_data": user_data,
            "nonce": nonce,
        }
    )
    return bytes(cbor2.dumps([cbor2.dumps({1: -35}), {}, payload, b"\x00" * 96]))


@dataclass
class FakeNsm:
    """Answers Attestation requests the way the NSM does; records every request."""

    requests: list[Any] = field(default_factory=list)
    mode: str = "ok"

    def request(self, data: bytes) -> bytes:
        msg = cbor2.loads(data)
        self.requests.append(msg)
        if self.mode == "error":
            return bytes(cbor2.dumps({"Error": "InvalidArgument"}))
        if self.mode == "garbage":
            return b"\xff\x00"
        if self.mode == "oserror":
            raise OSError(19, "ENODEV")
        body = msg["Attestation"]
        user_data = b"\x00" * 64 if self.mode == "wrong" else body["user_data"]
        doc = fake_document(user_data, body["nonce"], body["public_key"])
        return bytes(cbor2.dumps({"Attestation": {"document": doc}}))


def test_attest_binds_report_data_and_nonce() -> None:
    nsm = FakeNsm()
    att = NitroNsmAttester(transport=nsm)
    ev = att.attest(RD, nonce=b"client-nonce")
    assert ev.tee is Tee.NITRO
    doc = parse_cose_sign1(ev.evidence).document
    assert doc.user_data == RD and doc.nonce == b"client-nonce" and doc.public_key is None
    assert nsm.requests == [{"Attestation": {"user_data": RD, "nonce": b"client-nonce", "public_key": None}}]


def test_attest_with_public_key_and_no_nonce() -> None:
    nsm = FakeNsm()
    att: Attester = NitroNsmAttester(transport=nsm, public_key=b"\x04" * 65)
    ev = att.attest(RD)
    assert parse_cose_sign1(ev.evidence).document.public_key == b"\x04" * 65
    assert nsm.requests[0]["Attestation"]["nonce"] is None


def test_request_encoding() -> None:
    req = encode_attestation_request(RD, None, None)
    assert cbor2.loads(req) == {"Attestation": {"user_data": RD, "nonce": None, "public_key": None}}


@pytest.mark.parametrize("mode", ["error", "garbage", "oserror", "wrong"])
def test_nsm_failures(mode: str) -> None:
    with pytest.raises(AttesterError):
        NitroNsmAttester(transport=FakeNsm(mode=mode)).attest(RD)


@pytest.mark.parametrize(
    "response",
    [
        {"Attestation": {"document": "text"}},
        {"Attestation": {"document": b"x", "extra": 1}},
        {"DescribeNSM": {}},
        [1, 2],
        {"Attestation": {"document": b"not cose"}},
    ],
)
def test_unexpected_responses(response: Any) -> None:
    class Odd:
        def request(self, data: bytes) -> bytes:
            return bytes(cbor2.dumps(response))

    with pytest.raises(AttesterError):
        NitroNsmAttester(transport=Odd()).attest(RD)


def test_decode_response() -> None:
    assert decode_attestation_response(cbor2.dumps({"Attestation": {"document": b"doc"}})) == b"doc"
    with pytest.raises(AttesterError):
        decode_attestation_response(cbor2.dumps({"Error": "InternalError"}))


def test_misuse() -> None:
    att = NitroNsmAttester(transport=FakeNsm())
    for rd in (b"", b"\x00" * 63, b"\x00" * 65):
        with pytest.raises(ValueError):
            att.attest(rd)
    with pytest.raises(ValueError):
        att.attest(RD, nonce=b"\x00" * 513)
    with pytest.raises(ValueError):
        NitroNsmAttester(transport=FakeNsm(), public_key=b"\x00" * 1025)


def test_real_transport_shape(tmp_path: Any) -> None:
    # _IOWR(0x0A, 0, struct nsm_message{struct iovec request, response}) on LP64 Linux.
    assert ctypes.sizeof(ctypes.c_void_p) != 8 or NSM_IOCTL_REQUEST == 0xC0200A00
    with pytest.raises(AttesterError):
        NitroNsmAttester(transport=DevNsmTransport(str(tmp_path / "nsm"))).attest(RD)
    not_a_device = tmp_path / "file"
    not_a_device.write_bytes(b"")
    with pytest.raises(AttesterError):
        NitroNsmAttester(transport=DevNsmTransport(str(not_a_device))).attest(RD)
