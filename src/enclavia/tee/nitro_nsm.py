"""AWS Nitro Enclaves evidence from the Nitro Secure Module (/dev/nsm).

Request (CBOR, as aws-nitro-enclaves-nsm-api serialises it)::

    {"Attestation": {"user_data": bstr / null, "nonce": bstr / null, "public_key": bstr / null}}

Response: ``{"Attestation": {"document": bstr}}`` (a COSE_Sign1 attestation document) or ``{"Error": tstr}``.
The bytes travel through the NSM driver's one ioctl, ``NSM_IOCTL_REQUEST = _IOWR(0x0A, 0, struct
nsm_message)`` where ``nsm_message`` is two ``struct iovec`` (request, response). The ioctl sits behind
:class:`NsmTransport` so that tests can use a fake NSM.

Binding (DESIGN.md): ``user_data`` is exactly the 64-byte report_data; the client nonce goes in ``nonce``.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
from dataclasses import dataclass, field
from typing import Any, Protocol

import cbor2

from enclavia.attestation.claims import Tee
from enclavia.attestation.platforms.nitro.abi import parse_cose_sign1
from enclavia.errors import AttesterError, EnclaviaError
from enclavia.tee.base import Evidence

NSM_DEVICE = "/dev/nsm"
NSM_REQUEST_MAX = 0x1000
NSM_RESPONSE_MAX = 0x3000
REPORT_DATA_LEN = 64
MAX_NONCE_LEN = 512
MAX_PUBLIC_KEY_LEN = 1024


class _IoVec(ctypes.Structure):
    _fields_ = (("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t))


class _NsmMessage(ctypes.Structure):
    _fields_ = (("request", _IoVec), ("response", _IoVec))


def _iowr(kind: int, number: int, size: int) -> int:
    return (3 << 30) | (size << 16) | (kind << 8) | number  # _IOC(_IOC_READ | _IOC_WRITE, ...)


NSM_IOCTL_REQUEST = _iowr(0x0A, 0, ctypes.sizeof(_NsmMessage))


class NsmTransport(Protocol):
    def request(self, data: bytes) -> bytes:
        """Send one CBOR request to the NSM, return its CBOR response."""
        ...


@dataclass
class DevNsmTransport:
    """The NSM driver ioctl on ``/dev/nsm`` (inside a Nitro enclave)."""

    path: str = NSM_DEVICE

    def request(self, data: bytes) -> bytes:
        if len(data) > NSM_REQUEST_MAX:
            raise ValueError("NSM request too large")
        req = ctypes.create_string_buffer(data, len(data))
        resp = ctypes.create_string_buffer(NSM_RESPONSE_MAX)
        msg = _NsmMessage(
            _IoVec(ctypes.addressof(req), len(data)), _IoVec(ctypes.addressof(resp), NSM_RESPONSE_MAX)
        )
        fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        try:
            fcntl.ioctl(fd, NSM_IOCTL_REQUEST, msg)  # type: ignore[call-overload]
        finally:
            os.close(fd)
        n = int(msg.response.iov_len)
        if n > NSM_RESPONSE_MAX:
            raise AttesterError("NSM response length out of range")
        return resp.raw[:n]


def encode_attestation_request(
    user_data: bytes | None, nonce: bytes | None, public_key: bytes | None
) -> bytes:
    return bytes(
        cbor2.dumps({"Attestation": {"user_data": user_data, "nonce": nonce, "public_key": public_key}})
    )


def decode_attestation_response(data: bytes) -> bytes:
    """The attestation document from an NSM response; AttesterError for an NSM error or anything else."""
    try:
        msg: Any = cbor2.loads(data)
    except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError, RecursionError, MemoryError):
        raise AttesterError("NSM response is not CBOR") from None
    if isinstance(msg, dict) and set(msg) == {"Error"}:
        raise AttesterError("NSM refused the attestation request")
    if not isinstance(msg, dict) or set(msg) != {"Attestation"}:
        raise AttesterError("unexpected NSM response")
    body = msg["Attestation"]
    if not isinstance(body, dict) or set(body) != {"document"} or not isinstance(body["document"], bytes):
        raise AttesterError("unexpected NSM response")
    document: bytes = body["document"]
    return document


@dataclass
class NitroNsmAttester:
    """Attester inside a Nitro enclave. ``public_key`` (optional) is bound into every document."""

    transport: NsmTransport = field(default_factory=DevNsmTransport)
    public_key: bytes | None = None
    tee: Tee = Tee.NITRO

    def __post_init__(self) -> None:
        if self.public_key is not None and not 0 < len(self.public_key) <= MAX_PUBLIC_KEY_LEN:
            raise ValueError("public_key must be 1..1024 bytes")

    def attest(self, report_data: bytes, *, nonce: bytes | None = None) -> Evidence:
        """A document with ``user_data`` = report_data (64 bytes) and the client ``nonce``."""
        if not isinstance(report_data, bytes) or len(report_data) != REPORT_DATA_LEN:
            raise ValueError("report_data must be 64 bytes")
        if nonce is not None and not 0 < len(nonce) <= MAX_NONCE_LEN:
            raise ValueError("nonce must be 1..512 bytes")
        request = encode_attestation_request(report_data, nonce, self.public_key)
        try:
            response = self.transport.request(request)
        except OSError:
            raise AttesterError("NSM device unavailable") from None
        document = decode_attestation_response(response)
        # Sanity check (not verification, which is the verifier's job): the document answers this request.
        try:
            doc = parse_cose_sign1(document).document
        except EnclaviaError:
            raise AttesterError("NSM returned a document that does not parse") from None
        if doc.user_data != report_data or doc.nonce != nonce or doc.public_key != self.public_key:
            raise AttesterError("NSM document does not carry the requested user_data, nonce and key")
        return Evidence(tee=Tee.NITRO, evidence=document)
