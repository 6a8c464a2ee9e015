"""Response receipts: what the enclave attests about one request it served.

A receipt binds the SHA-256 of the inner request content and of the response content to the model that
answered (id and artifact digest), the enclave's measurement (the manifest digest), the broker policy
revision when the enclave knows one, and the time. The enclave signs it with the Ed25519 key whose public
half is bound in report_data, so a receipt checks offline against an attestation bundle that verified.

Wire form: the canonical JSON below, base64url without padding, carried inside the encryption (a response
header, or a trailer for streamed responses). Signature input: ``"enclavia-receipt-v1" 0x00 || canonical
JSON without the signature``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Final

from enclavia.attestation.manifest import canonical_json
from enclavia.crypto.signing import SigningKey, verify_ed25519
from enclavia.errors import InvalidPublicKeyError, ReceiptInvalidError, SignatureInvalidError

__all__ = [
    "HEADER",
    "REQUEST_HEADER",
    "Receipt",
    "decode_receipt",
    "encode_receipt",
    "issue_receipt",
    "sha256_hex",
    "verify_receipt",
]

VERSION: Final = 1
DOMAIN: Final = b"enclavia-receipt-v1\x00"
# Inner (encrypted) header a client sends to ask for a receipt, and the header or trailer that carries it.
REQUEST_HEADER: Final = "enclavia-receipt"
HEADER: Final = "enclavia-receipt"
MAX_RECEIPT_BYTES: Final = 4096

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX96 = re.compile(r"^[0-9a-f]{96}$")
_HEX128 = re.compile(r"^[0-9a-f]{128}$")
_ROUTE = re.compile(r"^/[A-Za-z0-9/_.\-]{0,127}$")
_MODEL = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
_FIELDS: Final = frozenset(
    {
        "version",
        "request_sha256",
        "response_sha256",
        "route",
        "status",
        "model",
        "model_sha256",
        "measurement",
        "policy_revision",
        "issued_at",
        "signing_key",
        "signature",
    }
)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Receipt:
    request_sha256: str
    response_sha256: str
    route: str
    status: int
    model: str | None
    model_sha256: str | None
    measurement: str  # hex of the manifest digest (SHA-384)
    policy_revision: int | None
    issued_at: str  # RFC 3339, UTC, seconds
    signing_key: str  # hex of the Ed25519 public key
    signature: str = ""  # hex
    version: int = VERSION

    def unsigned(self) -> dict[str, Any]:
        doc = asdict(self)
        del doc["signature"]
        return doc

    def signed_bytes(self) -> bytes:
        return DOMAIN + canonical_json(self.unsigned())

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def issued_datetime(self) -> datetime:
        return datetime.strptime(self.issued_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def issue_receipt(
    key: SigningKey,
    *,
    request_content: bytes,
    response_content: bytes,
    route: str,
    status: int,
    measurement: bytes,
    model: str | None = None,
    model_sha256: str | None = None,
    policy_revision: int | None = None,
    now: datetime | None = None,
) -> Receipt:
    when = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    unsigned = Receipt(
        request_sha256=sha256_hex(request_content),
        response_sha256=sha256_hex(response_content),
        route=route.split("?", 1)[0],
        status=status,
        model=model,
        model_sha256=model_sha256,
        measurement=measurement.hex(),
        policy_revision=policy_revision,
        issued_at=when,
        signing_key=key.public_bytes.hex(),
    )
    _check_shape(unsigned.to_json())
    sig = key.sign(unsigned.signed_bytes()).hex()
    return Receipt(**{**unsigned.to_json(), "signature": sig})


def encode_receipt(receipt: Receipt) -> str:
    return base64.urlsafe_b64encode(canonical_json(receipt.to_json())).rstrip(b"=").decode("ascii")


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_shape(doc: dict[str, Any]) -> None:
    ok = (
        set(doc) == _FIELDS
        and doc["version"] == VERSION
        and all(
            isinstance(doc[k], str) and _HEX64.match(doc[k]) for k in ("request_sha256", "response_sha256")
        )
        and isinstance(doc["route"], str)
        and _ROUTE.match(doc["route"]) is not None
        and _is_int(doc["status"])
        and 100 <= doc["status"] <= 599
        and (
            doc["model"] is None or (isinstance(doc["model"], str) and _MODEL.match(doc["model"]) is not None)
        )
        and (
            doc["model_sha256"] is None
            or (isinstance(doc["model_sha256"], str) and _HEX64.match(doc["model_sha256"]))
        )
        and isinstance(doc["measurement"], str)
        and _HEX96.match(doc["measurement"]) is not None
        and (
            doc["policy_revision"] is None
            or (_is_int(doc["policy_revision"]) and doc["policy_revision"] >= 0)
        )
        and isinstance(doc["issued_at"], str)
        and _TIME.match(doc["issued_at"]) is not None
        and isinstance(doc["signing_key"], str)
        and _HEX64.match(doc["signing_key"]) is not None
        and isinstance(doc["signature"], str)
        and (doc["signature"] == "" or _HEX128.match(doc["signature"]) is not None)
    )
    if not ok:
        raise ReceiptInvalidError()


def decode_receipt(data: str | bytes) -> Receipt:
    """Parse a receipt: base64url (header form) or its JSON (file form). Strict: exact fields and shapes."""
    raw = data.encode("ascii", "replace") if isinstance(data, str) else bytes(data)
    raw = raw.strip()
    if len(raw) > MAX_RECEIPT_BYTES:
        raise ReceiptInvalidError()
    if not raw.startswith(b"{"):
        try:
            raw = base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))
        except (binascii.Error, ValueError):
            raise ReceiptInvalidError() from None
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ReceiptInvalidError() from None
    if not isinstance(doc, dict):
        raise ReceiptInvalidError()
    _check_shape(doc)
    if not doc["signature"]:
        raise ReceiptInvalidError()
    return Receipt(**doc)


def verify_receipt(
    receipt: Receipt,
    signing_public_key: bytes,
    *,
    request_content: bytes | None = None,
    response_content: bytes | None = None,
    measurement: bytes | None = None,
) -> Receipt:
    """Check the signature under ``signing_public_key`` (from a verified attestation bundle) and, where
    given, that the receipt is for exactly this request, this response and this measurement."""
    if not hmac.compare_digest(receipt.signing_key, signing_public_key.hex()):
        raise SignatureInvalidError("receipt signed by another key")
    try:
        verify_ed25519(signing_public_key, receipt.signed_bytes(), bytes.fromhex(receipt.signature))
    except InvalidPublicKeyError:
        raise SignatureInvalidError() from None
    checks = (
        (request_content, receipt.request_sha256),
        (response_content, receipt.response_sha256),
    )
    for content, digest in checks:
        if content is not None and not hmac.compare_digest(sha256_hex(content), digest):
            raise ReceiptInvalidError()
    if measurement is not None and not hmac.compare_digest(measurement.hex(), receipt.measurement):
        raise ReceiptInvalidError()
    return receipt
