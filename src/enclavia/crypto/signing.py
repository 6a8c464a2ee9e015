"""Ed25519 signing keys (enclave response signing, simulated platform key, broker tokens)."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from enclavia.errors import InvalidPublicKeyError, SignatureInvalidError

ED25519_PUBLIC_LEN = 32
ED25519_SIGNATURE_LEN = 64


@dataclass(frozen=True, repr=False)
class SigningKey:
    _key: Ed25519PrivateKey

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, raw: bytes) -> SigningKey:
        if len(raw) != 32:
            raise ValueError("Ed25519 private key must be 32 bytes")
        return cls(Ed25519PrivateKey.from_private_bytes(raw))

    @classmethod
    def from_pem(cls, pem: bytes) -> SigningKey:
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("not an Ed25519 private key")
        return cls(key)

    def to_pem(self) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def private_bytes(self) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )

    @property
    def public_bytes(self) -> bytes:
        return self._key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def __repr__(self) -> str:
        return "SigningKey(<redacted>)"


def verify_ed25519(public_key: bytes, message: bytes, signature: bytes) -> None:
    """Raise SignatureInvalidError unless ``signature`` is valid for ``message`` under ``public_key``."""
    if len(public_key) != ED25519_PUBLIC_LEN:
        raise InvalidPublicKeyError("Ed25519 public key must be 32 bytes")
    if len(signature) != ED25519_SIGNATURE_LEN:
        raise SignatureInvalidError("Ed25519 signature must be 64 bytes")
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except InvalidSignature:
        raise SignatureInvalidError() from None
    except ValueError:
        raise InvalidPublicKeyError() from None
