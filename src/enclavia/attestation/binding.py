"""report_data binding (DESIGN.md): what the evidence commits to.

report_data = SHA-512("enclavia-attest-v1" || lp(nonce) || lp(key_config) || lp(signing_public_key)
                      || lp(manifest_digest)),  lp(x) = 4-byte big-endian length || x
"""

from __future__ import annotations

import hashlib
import hmac

from enclavia.errors import ReportDataMismatchError

DOMAIN = b"enclavia-attest-v1"
REPORT_DATA_LEN = 64


def _lp(x: bytes) -> bytes:
    return len(x).to_bytes(4, "big") + x


def compute_report_data(
    nonce: bytes, key_config: bytes, signing_public_key: bytes, manifest_digest: bytes
) -> bytes:
    h = hashlib.sha512()
    h.update(DOMAIN)
    for part in (nonce, key_config, signing_public_key, manifest_digest):
        h.update(_lp(part))
    return h.digest()


def check_report_data(actual: bytes, expected: bytes) -> None:
    """Whole 64 bytes, constant time; never padded or truncated."""
    if len(actual) != REPORT_DATA_LEN or len(expected) != REPORT_DATA_LEN:
        raise ReportDataMismatchError("report_data length is not 64 bytes")
    if not hmac.compare_digest(actual, expected):
        raise ReportDataMismatchError()
