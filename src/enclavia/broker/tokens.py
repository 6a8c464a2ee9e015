"""Attestation result tokens: EAR-shaped claims in a compact JWS signed with the broker's Ed25519 key.

    header  = {"alg": "EdDSA", "kid": <16 hex of SHA-256(public key)>, "typ": "JWT"}
    payload = {"status", "tee", "measurement", "policy_id", "policy_revision", "key_config_digest",
               "claims", "iat", "exp", "jti", "aud"}

``claims`` are the appraised claims the release rules are evaluated on (tee, measurement, reference name,
debug, measurements, TCB). They travel inside the signed token, so a release decision never reads them
back from the database (an edited ``attestations`` row cannot turn a refused build into an allowed one).
    token   = b64url(header) "." b64url(payload) "." b64url(Ed25519(header_b64 "." payload_b64))

Verification is a checklist with no options an attacker can steer: the header must say exactly
``alg: EdDSA`` (``none``, ``HS256`` and everything else are refused before any key is touched), the kid
must be ours, every claim must be present with its type, ``exp`` in the future, ``aud`` exactly ours and
``status`` affirming. The token is a bearer credential for the secrets of *that* key configuration only:
released secrets are sealed to it, so a stolen token is useless without the enclave's private key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any, Final

from enclavia.crypto.signing import SigningKey, verify_ed25519
from enclavia.errors import (
    InvalidPublicKeyError,
    SignatureInvalidError,
    TokenExpiredError,
    TokenInvalidError,
)

ALG: Final = "EdDSA"
MAX_TOKEN_LEN: Final = 8192
CLOCK_SKEW_S: Final = 5
_HEADER_KEYS = {"alg", "kid", "typ"}
_CLAIM_TYPES: Final[dict[str, type]] = {
    "status": str,
    "tee": str,
    "measurement": str,
    "policy_id": str,
    "policy_revision": int,
    "key_config_digest": str,
    "claims": dict,
    "iat": int,
    "exp": int,
    "jti": str,
    "aud": str,
}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    if not text or not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise TokenInvalidError()
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise TokenInvalidError() from None


_B64URL = re.compile(r"[A-Za-z0-9_-]+")


def key_id(public_key: bytes) -> str:
    return hashlib.sha256(public_key).hexdigest()[:16]


def key_config_digest(key_config: bytes) -> str:
    return hashlib.sha256(key_config).hexdigest()


@dataclass(frozen=True)
class TokenClaims:
    status: str
    tee: str
    measurement: str
    policy_id: str
    policy_revision: int
    key_config_digest: str
    claims: dict[str, Any]
    iat: int
    exp: int
    jti: str
    aud: str

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _CLAIM_TYPES}


def new_jti() -> str:
    return secrets.token_hex(16)


def issue(key: SigningKey, claims: TokenClaims) -> str:
    header = {"alg": ALG, "kid": key_id(key.public_bytes), "typ": "JWT"}
    h = b64url(json.dumps(header, sort_keys=True, separators=(",", ":")).encode())
    p = b64url(json.dumps(claims.to_json(), sort_keys=True, separators=(",", ":")).encode())
    signing_input = f"{h}.{p}".encode("ascii")
    return f"{h}.{p}.{b64url(key.sign(signing_input))}"


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise TokenInvalidError() from None
    if not isinstance(doc, dict):
        raise TokenInvalidError()
    return doc


def verify(token: str, *, public_key: bytes, audience: str, now: float) -> TokenClaims:
    """Check a token from an Authorization header; raise ``TokenInvalidError`` (or ``TokenExpiredError``)."""
    # 1. Shape: three base64url parts, bounded size.
    if (
        not isinstance(token, str)
        or not 0 < len(token) <= MAX_TOKEN_LEN
        or not token.isascii()  # else the signing input below would not encode: an error outside the tree
        or token.count(".") != 2
    ):
        raise TokenInvalidError()
    h, p, s = token.split(".")
    # 2. Header: exactly alg EdDSA, our kid, nothing else that could change processing (no crit, jku, x5u).
    header = _json_object(unb64url(h))
    if set(header) - _HEADER_KEYS or header.get("alg") != ALG or header.get("typ", "JWT") != "JWT":
        raise TokenInvalidError("token algorithm or header not accepted")
    if header.get("kid") != key_id(public_key):
        raise TokenInvalidError("token signed by another key")
    # 3. Signature over the exact bytes received.
    try:
        verify_ed25519(public_key, f"{h}.{p}".encode("ascii"), unb64url(s))
    except (SignatureInvalidError, InvalidPublicKeyError):
        raise TokenInvalidError() from None
    # 4. Claims: all present, right types, nothing extra.
    payload = _json_object(unb64url(p))
    if set(payload) != set(_CLAIM_TYPES):
        raise TokenInvalidError("token claims missing or unexpected")
    for name, typ in _CLAIM_TYPES.items():
        value = payload[name]
        if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
            raise TokenInvalidError("token claim has the wrong type")
    claims = TokenClaims(**payload)
    # 5. Audience, status, time.
    if claims.aud != audience:
        raise TokenInvalidError("token is for another audience")
    if claims.status != "affirming":
        raise TokenInvalidError("token does not affirm the enclave")
    if claims.iat > now + CLOCK_SKEW_S or claims.exp <= claims.iat:
        raise TokenInvalidError("token times invalid")
    if now >= claims.exp:
        raise TokenExpiredError()
    return claims


def unverified_claims(token: str) -> dict[str, Any]:
    """Decode a token's payload without checking it (for diagnostics and relays only; never for decisions)."""
    if token.count(".") != 2:
        raise TokenInvalidError()
    return _json_object(unb64url(token.split(".")[1]))
