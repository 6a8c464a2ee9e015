"""PEM <-> DER for certificates, without parsing X.509 (pure, no cryptography import).

Used at evidence boundaries to split certificate bundles (TDX PCK chain, NVIDIA device chain, CLI --cert
files) and to compare a presented root with a pinned one byte for byte.
"""

from __future__ import annotations

import base64
import binascii
import re
from functools import lru_cache

from enclavia.errors import EvidenceFormatError

MAX_CERTIFICATES = 16
MAX_CERTIFICATE_LEN = 16 * 1024

_BLOCK = re.compile(
    rb"-----BEGIN CERTIFICATE-----\r?\n([A-Za-z0-9+/=\r\n]{1,32768}?)-----END CERTIFICATE-----",
)


def is_pem(data: bytes) -> bool:
    return data.lstrip().startswith(b"-----BEGIN ")


def pem_certificates(data: bytes) -> tuple[bytes, ...]:
    """DER of every CERTIFICATE block in ``data``, in order.

    Text outside the blocks may only be whitespace and NULs.
    """
    out: list[bytes] = []
    pos = 0
    for m in _BLOCK.finditer(data):
        if data[pos : m.start()].strip(b" \t\r\n\x00"):
            raise EvidenceFormatError("unexpected text between PEM certificates")
        pos = m.end()
        try:
            der = base64.b64decode(b"".join(m.group(1).split()), validate=True)
        except (binascii.Error, ValueError):
            raise EvidenceFormatError("PEM certificate is not valid base64") from None
        if not der or len(der) > MAX_CERTIFICATE_LEN:
            raise EvidenceFormatError("PEM certificate has an invalid length")
        out.append(der)
        if len(out) > MAX_CERTIFICATES:
            raise EvidenceFormatError("too many certificates")
    if data[pos:].strip(b" \t\r\n\x00"):
        raise EvidenceFormatError("unexpected text after PEM certificates")
    if not out:
        raise EvidenceFormatError("no PEM certificate found")
    return tuple(out)


def der_to_pem(der: bytes) -> bytes:
    b64 = base64.b64encode(der)
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return b"-----BEGIN CERTIFICATE-----\n" + b"\n".join(lines) + b"\n-----END CERTIFICATE-----\n"


def certificates_to_der(blobs: tuple[bytes, ...] | list[bytes]) -> tuple[bytes, ...]:
    """Each blob may be one DER certificate or a PEM bundle; returns DER certificates in order."""
    out: list[bytes] = []
    for blob in blobs:
        if is_pem(blob):
            out.extend(pem_certificates(blob))
        else:
            if not blob or len(blob) > MAX_CERTIFICATE_LEN or blob[0] != 0x30:
                raise EvidenceFormatError("certificate is neither PEM nor DER")
            out.append(blob)
    if len(out) > MAX_CERTIFICATES:
        raise EvidenceFormatError("too many certificates")
    return tuple(out)


@lru_cache(maxsize=64)
def pem_certificates_cached(data: bytes) -> tuple[bytes, ...]:
    """``pem_certificates`` memoised: chains repeat across quotes of one platform and across collateral."""
    return pem_certificates(data)
