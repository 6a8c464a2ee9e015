"""The attestation bundle served at GET /v1/attestation (JSON), parsed strictly."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from enclavia.attestation.claims import Tee
from enclavia.attestation.manifest import ImageManifest, parse_manifest
from enclavia.errors import EvidenceFormatError

BUNDLE_VERSION = 1
MAX_BUNDLE_BYTES = 2 << 20
MIN_NONCE_LEN = 16
MAX_NONCE_LEN = 64
_KEYS = {
    "version",
    "tee",
    "evidence",
    "certificates",
    "aux",
    "collateral",
    "key_config",
    "signing_public_key",
    "manifest",
    "nonce",
}


@dataclass(frozen=True)
class AttestationBundle:
    tee: Tee
    evidence: bytes
    certificates: tuple[bytes, ...]
    aux: bytes | None
    collateral: bytes | None
    key_config: bytes
    signing_public_key: bytes
    manifest: ImageManifest
    nonce: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "version": BUNDLE_VERSION,
            "tee": str(self.tee),
            "evidence": _b64(self.evidence),
            "certificates": [_b64(c) for c in self.certificates],
            "aux": _b64(self.aux) if self.aux is not None else None,
            "collateral": _b64(self.collateral) if self.collateral is not None else None,
            "key_config": _b64(self.key_config),
            "signing_public_key": _b64(self.signing_public_key),
            "manifest": self.manifest.to_json(),
            "nonce": self.nonce.hex(),
        }

    def encode(self) -> bytes:
        return json.dumps(self.to_json(), separators=(",", ":")).encode()


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def _unb64(value: object) -> bytes:
    if not isinstance(value, str):
        raise EvidenceFormatError("bundle field is not base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise EvidenceFormatError("bundle field is not valid base64") from None


def parse_nonce_hex(value: object) -> bytes:
    if not isinstance(value, str) or len(value) > 2 * MAX_NONCE_LEN:
        raise EvidenceFormatError("nonce must be hex")
    try:
        nonce = bytes.fromhex(value)
    except ValueError:
        raise EvidenceFormatError("nonce must be hex") from None
    if not MIN_NONCE_LEN <= len(nonce) <= MAX_NONCE_LEN:
        raise EvidenceFormatError("nonce must be 16 to 64 bytes")
    return nonce


def parse_bundle(data: bytes) -> AttestationBundle:
    if len(data) > MAX_BUNDLE_BYTES:
        raise EvidenceFormatError("attestation bundle too large")
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise EvidenceFormatError("attestation bundle is not JSON") from None
    if not isinstance(doc, dict) or set(doc) != _KEYS or doc["version"] != BUNDLE_VERSION:
        raise EvidenceFormatError("attestation bundle has the wrong shape")
    try:
        tee = Tee(doc["tee"])
    except ValueError:
        raise EvidenceFormatError("attestation bundle names an unknown TEE") from None
    certs = doc["certificates"]
    if not isinstance(certs, list):
        raise EvidenceFormatError("certificates must be a list")
    return AttestationBundle(
        tee=tee,
        evidence=_unb64(doc["evidence"]),
        certificates=tuple(_unb64(c) for c in certs),
        aux=None if doc["aux"] is None else _unb64(doc["aux"]),
        collateral=None if doc["collateral"] is None else _unb64(doc["collateral"]),
        key_config=_unb64(doc["key_config"]),
        signing_public_key=_unb64(doc["signing_public_key"]),
        manifest=parse_manifest(doc["manifest"]),
        nonce=parse_nonce_hex(doc["nonce"]),
    )
