"""Key files for release, approver and log keys: private key as PKCS#8 PEM (mode 0600), public as hex.

Development and CI use files; a production release key belongs in an HSM or a KMS that signs the
canonical record bytes (docs/releasing.md).
"""

from __future__ import annotations

import os
from pathlib import Path

from enclavia.crypto.signing import SigningKey


def write_keypair(path: Path, *, force: bool = False) -> bytes:
    """Write ``path`` (private, 0600) and ``path.pub`` (hex public key); return the public key."""
    if path.exists() and not force:
        raise FileExistsError("key file exists")
    path.parent.mkdir(parents=True, exist_ok=True)
    key = SigningKey.generate()
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.to_pem())
    os.chmod(path, 0o600)
    public_path(path).write_text(key.public_bytes.hex() + "\n", encoding="ascii")
    return key.public_bytes


def public_path(path: Path) -> Path:
    return path.with_name(path.name + ".pub")


def load_signing_key(path: Path) -> SigningKey:
    return SigningKey.from_pem(path.read_bytes())


def load_public_key(value: str) -> bytes:
    """A 32-byte Ed25519 public key given as hex, or as a path to a file holding that hex."""
    text = value.strip()
    if len(text) != 64 or not all(c in "0123456789abcdefABCDEF" for c in text):
        text = Path(value).read_text(encoding="ascii").strip()
    raw = bytes.fromhex(text)
    if len(raw) != 32:
        raise ValueError("Ed25519 public key must be 32 bytes")
    return raw
