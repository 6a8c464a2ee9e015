"""Envelope encryption: data keys (DEKs) wrapped under a key-encryption key (KEK).

A wrapped DEK is AES-256-GCM over the DEK with associated data binding the KEK id and the DEK id, so a wrapped
key cannot be moved to another slot or presented under another KEK id. Rotation unwraps under the old KEK and
wraps under the new one: bodies encrypted under the DEKs are not touched.
"""

from __future__ import annotations

import struct

from enclavia.crypto import aead

__all__ = ["rewrap", "unwrap_dek", "wrap_dek"]

_LABEL = b"enclavia-dek-wrap-v1"


def _aad(kek_id: str, dek_id: str) -> bytes:
    k, d = kek_id.encode(), dek_id.encode()
    return _LABEL + struct.pack(">H", len(k)) + k + struct.pack(">H", len(d)) + d


def wrap_dek(kek: bytes, kek_id: str, dek_id: str, dek: bytes) -> bytes:
    if len(dek) != aead.KEY_SIZE:
        raise ValueError("DEK must be 32 bytes")
    return aead.seal(kek, dek, _aad(kek_id, dek_id))


def unwrap_dek(kek: bytes, kek_id: str, dek_id: str, wrapped: bytes) -> bytes:
    """Raises DecryptionError for the wrong KEK, KEK id, DEK id or a modified blob."""
    return aead.open_(kek, wrapped, _aad(kek_id, dek_id))


def rewrap(old_kek: bytes, old_id: str, new_kek: bytes, new_id: str, dek_id: str, wrapped: bytes) -> bytes:  # noqa: PLR0917
    return wrap_dek(new_kek, new_id, dek_id, unwrap_dek(old_kek, old_id, dek_id, wrapped))
