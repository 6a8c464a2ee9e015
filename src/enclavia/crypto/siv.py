"""AES-SIV (RFC 5297) deterministic authenticated encryption, for tokenization, and HKDF subkeys.

Deterministic on purpose: the same value under the same key and associated data gives the same token, which is
what keeps ``<PERSON_3>`` stable within a conversation. Different keys (one per tenant, requester and
conversation) make tokens unlinkable across scopes.
"""

from __future__ import annotations

from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from enclavia.errors import DecryptionError

__all__ = ["SIV_KEY_SIZE", "derive_key", "siv_open", "siv_seal"]

SIV_KEY_SIZE: Final = 64  # AES-256-SIV: two 256-bit keys


def derive_key(secret: bytes, label: bytes, length: int = 32) -> bytes:
    """HKDF-SHA256 (RFC 5869) with an empty salt: a subkey bound to ``label``."""
    if len(secret) < 32:
        raise ValueError("HKDF input secret must be at least 32 bytes")
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=label).derive(secret)


def siv_seal(key: bytes, plaintext: bytes, aad: list[bytes]) -> bytes:
    if len(key) != SIV_KEY_SIZE:
        raise ValueError("AES-256-SIV key must be 64 bytes")
    return AESSIV(key).encrypt(plaintext, aad)


def siv_open(key: bytes, ciphertext: bytes, aad: list[bytes]) -> bytes:
    if len(key) != SIV_KEY_SIZE:
        raise ValueError("AES-256-SIV key must be 64 bytes")
    if len(ciphertext) < 16:
        raise DecryptionError()
    try:
        return AESSIV(key).decrypt(ciphertext, aad)
    except InvalidTag:
        raise DecryptionError() from None
