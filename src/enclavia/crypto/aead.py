"""AES-256-GCM with a random nonce, for field encryption and artifacts sealed at rest.

Blob layout: nonce (12) || ciphertext || tag (16). The associated data is not stored: the caller binds
what the blob belongs to (key id, field path, artifact name) and must supply the same bytes to open it.

Random 96-bit nonces are safe for up to about 2**32 messages per key (NIST SP 800-38D section 8.3);
rotate keys well before that (envelope encryption gives each tenant or document its own key).
"""

from __future__ import annotations

import os
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from enclavia.errors import DecryptionError

__all__ = ["KEY_SIZE", "NONCE_SIZE", "OVERHEAD", "TAG_SIZE", "generate_key", "open_", "seal"]

KEY_SIZE: Final = 32
NONCE_SIZE: Final = 12
TAG_SIZE: Final = 16
OVERHEAD: Final = NONCE_SIZE + TAG_SIZE


def generate_key() -> bytes:
    """A fresh 256-bit key from the OS CSPRNG."""
    return os.urandom(KEY_SIZE)


def _cipher(key: bytes) -> AESGCM:
    # A key of the wrong size is a programming error, not an attack: say so plainly.
    if len(key) != KEY_SIZE:
        raise ValueError("AES-256-GCM key must be 32 bytes")
    return AESGCM(key)


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt ``plaintext`` bound to ``aad``; returns nonce || ciphertext || tag."""
    nonce = os.urandom(NONCE_SIZE)
    return nonce + _cipher(key).encrypt(nonce, plaintext, aad)


def open_(key: bytes, blob: bytes, aad: bytes) -> bytes:
    """Decrypt a blob from ``seal``.

    Every failure (short blob, flipped bit, wrong key or aad) is the same ``DecryptionError``.
    """
    cipher = _cipher(key)
    if len(blob) < OVERHEAD:
        raise DecryptionError()
    try:
        return cipher.decrypt(bytes(blob[:NONCE_SIZE]), bytes(blob[NONCE_SIZE:]), aad)
    except InvalidTag:
        raise DecryptionError() from None
