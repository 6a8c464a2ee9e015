"""HPKE (RFC 9180), base mode only, over pyca/cryptography primitives.

Suite support is deliberately narrow: KEM DHKEM(X25519, HKDF-SHA256), KDF HKDF-SHA256, and the AEADs
AES-128-GCM, AES-256-GCM and ChaCha20Poly1305. Anything else is refused with ``UnsupportedSuiteError``:
the suite is part of the measured configuration, so there is no negotiation and no fallback.
See docs/adr/0001-hpke-implementation.md for why this is written here rather than wrapping pyhpke.

Contexts are stateful (sequence numbers) and not thread-safe: use one per request.
"""

from __future__ import annotations

import hmac
import struct
from dataclasses import dataclass
from hashlib import sha256
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from enclavia.errors import CryptoError, DecryptionError, InvalidPublicKeyError, UnsupportedSuiteError

__all__ = [
    "AEAD_AES_128_GCM",
    "AEAD_AES_256_GCM",
    "AEAD_CHACHA20_POLY1305",
    "DEFAULT_SUITE",
    "KDF_HKDF_SHA256",
    "KEM_X25519_HKDF_SHA256",
    "KemPrivateKey",
    "RecipientContext",
    "SenderContext",
    "Suite",
    "aead_key_size",
    "aead_nonce_size",
    "aead_open",
    "aead_seal",
    "check_suite",
    "kdf_expand",
    "kdf_extract",
    "setup_base_recipient",
    "setup_base_sender",
]

KEM_X25519_HKDF_SHA256: Final = 0x0020
KDF_HKDF_SHA256: Final = 0x0001
AEAD_AES_128_GCM: Final = 0x0001
AEAD_AES_256_GCM: Final = 0x0002
AEAD_CHACHA20_POLY1305: Final = 0x0003

# DHKEM(X25519, HKDF-SHA256) sizes (RFC 9180 section 7.1).
N_SECRET: Final = 32
N_ENC: Final = 32
N_PK: Final = 32
N_SK: Final = 32
# HKDF-SHA256 output size.
N_H: Final = 32
# Every supported AEAD has a 16-byte tag.
N_T: Final = 16

_MODE_BASE: Final = 0x00
_VERSION_LABEL: Final = b"HPKE-v1"
_AEADS: Final[dict[int, tuple[int, int]]] = {  # aead_id -> (Nk, Nn)
    AEAD_AES_128_GCM: (16, 12),
    AEAD_AES_256_GCM: (32, 12),
    AEAD_CHACHA20_POLY1305: (32, 12),
}
_KEM_SUITE_ID: Final = b"KEM" + struct.pack(">H", KEM_X25519_HKDF_SHA256)
_ZERO_DH: Final = bytes(32)


@dataclass(frozen=True)
class Suite:
    """An HPKE ciphersuite by its IANA ids. Constructing one does not check support: ``check_suite`` does."""

    kem_id: int
    kdf_id: int
    aead_id: int

    def suite_id(self) -> bytes:
        """The "HPKE" || kem || kdf || aead string that every labeled KDF call binds."""
        return b"HPKE" + struct.pack(">HHH", self.kem_id, self.kdf_id, self.aead_id)


DEFAULT_SUITE: Final = Suite(KEM_X25519_HKDF_SHA256, KDF_HKDF_SHA256, AEAD_AES_256_GCM)


def check_suite(suite: Suite) -> None:
    """Raise ``UnsupportedSuiteError`` unless every id of ``suite`` is implemented here."""
    if suite.kem_id != KEM_X25519_HKDF_SHA256 or suite.kdf_id != KDF_HKDF_SHA256:
        raise UnsupportedSuiteError()
    if suite.aead_id not in _AEADS:
        raise UnsupportedSuiteError()


# --- KDF (HKDF-SHA256) ---------------------------------------------------------------------------


def kdf_extract(salt: bytes, ikm: bytes) -> bytes:
    """HKDF-Extract with SHA-256. An empty salt is the same as Nh zero bytes (HMAC pads the key)."""
    return hmac.new(salt, ikm, sha256).digest()


def kdf_expand(prk: bytes, info: bytes, length: int) -> bytes:
    """HKDF-Expand with SHA-256; ``length`` above 255 * Nh is a programming error (ValueError)."""
    if not 0 < length <= 255 * N_H:
        raise ValueError("HKDF-Expand length out of range")
    # RFC 5869 section 2.3 with the standard library's C HMAC: several times faster per call than building
    # an HKDFExpand object, and HPKE + OHTTP make seven of these per request.
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), sha256).digest()
        out += block
        counter += 1
    return out[:length]


def _labeled_extract(suite_id: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return kdf_extract(salt, _VERSION_LABEL + suite_id + label + ikm)


def _labeled_expand(suite_id: bytes, prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    # The length prefix is 2 bytes, so it also bounds what may be asked for.
    if not 0 < length <= 0xFFFF:
        raise ValueError("labeled expand length out of range")
    labeled_info = struct.pack(">H", length) + _VERSION_LABEL + suite_id + label + info
    return kdf_expand(prk, labeled_info, length)


# --- AEAD ----------------------------------------------------------------------------------------


def aead_key_size(aead_id: int) -> int:
    """Nk of a supported AEAD."""
    return _aead_sizes(aead_id)[0]


def aead_nonce_size(aead_id: int) -> int:
    """Nn of a supported AEAD."""
    return _aead_sizes(aead_id)[1]


def _aead_sizes(aead_id: int) -> tuple[int, int]:
    sizes = _AEADS.get(aead_id)
    if sizes is None:
        raise UnsupportedSuiteError()
    return sizes


def _aead(aead_id: int, key: bytes) -> AESGCM | ChaCha20Poly1305:
    if len(key) != aead_key_size(aead_id):
        raise ValueError("AEAD key has the wrong length")
    if aead_id == AEAD_CHACHA20_POLY1305:
        return ChaCha20Poly1305(key)
    return AESGCM(key)


def aead_seal(aead_id: int, key: bytes, nonce: bytes, aad: bytes, pt: bytes) -> bytes:
    """AEAD Seal: ciphertext || 16-byte tag."""
    if len(nonce) != aead_nonce_size(aead_id):
        raise ValueError("AEAD nonce has the wrong length")
    return _aead(aead_id, key).encrypt(nonce, pt, aad)


def aead_open(aead_id: int, key: bytes, nonce: bytes, aad: bytes, ct: bytes) -> bytes:
    """AEAD Open; any authentication failure becomes ``DecryptionError`` with no detail."""
    if len(nonce) != aead_nonce_size(aead_id):
        raise ValueError("AEAD nonce has the wrong length")
    if len(ct) < N_T:
        # Too short to hold a tag: same outward failure as a bad tag.
        raise DecryptionError()
    try:
        return _aead(aead_id, key).decrypt(nonce, ct, aad)
    except InvalidTag:
        raise DecryptionError() from None


# --- KEM: DHKEM(X25519, HKDF-SHA256) -------------------------------------------------------------


class KemPrivateKey:
    """An X25519 KEM private key. ``repr`` shows only the public key, never the secret."""

    __slots__ = ("_key",)

    def __init__(self, key: X25519PrivateKey) -> None:
        self._key = key

    @classmethod
    def generate(cls) -> KemPrivateKey:
        return cls(X25519PrivateKey.generate())

    @classmethod
    def from_bytes(cls, raw: bytes) -> KemPrivateKey:
        if len(raw) != N_SK:
            raise ValueError("X25519 private key must be 32 bytes")
        return cls(X25519PrivateKey.from_private_bytes(raw))

    @classmethod
    def derive(cls, ikm: bytes) -> KemPrivateKey:
        """RFC 9180 DeriveKeyPair for X25519: the expanded bytes are the key (clamping happens in X25519)."""
        if len(ikm) < N_SK:
            # RFC 9180 section 7.1.3: ikm SHOULD have at least Nsk bytes of entropy.
            raise ValueError("ikm must be at least 32 bytes")
        dkp_prk = _labeled_extract(_KEM_SUITE_ID, b"", b"dkp_prk", ikm)
        return cls.from_bytes(_labeled_expand(_KEM_SUITE_ID, dkp_prk, b"sk", b"", N_SK))

    def public_bytes(self) -> bytes:
        return self._key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def private_bytes(self) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )

    def exchange(self, peer_public: bytes) -> bytes:
        """X25519 DH. A malformed or low-order peer key (all-zero result) raises ``InvalidPublicKeyError``."""
        if len(peer_public) != N_PK:
            raise InvalidPublicKeyError()
        try:
            shared = self._key.exchange(X25519PublicKey.from_public_bytes(peer_public))
        except ValueError:
            # cryptography refuses an all-zero shared secret; RFC 9180 section 7.1.4 requires that.
            raise InvalidPublicKeyError() from None
        if hmac.compare_digest(shared, _ZERO_DH):
            raise InvalidPublicKeyError()
        return shared

    def __repr__(self) -> str:
        return f"KemPrivateKey(public={self.public_bytes().hex()})"

    def __reduce__(self) -> tuple[object, ...]:
        # Pickling would copy the secret into whatever stores the pickle; refuse it.
        raise TypeError("KemPrivateKey cannot be pickled")


def _extract_and_expand(dh: bytes, kem_context: bytes) -> bytes:
    eae_prk = _labeled_extract(_KEM_SUITE_ID, b"", b"eae_prk", dh)
    return _labeled_expand(_KEM_SUITE_ID, eae_prk, b"shared_secret", kem_context, N_SECRET)


def _encap(pk_r: bytes, sk_e: KemPrivateKey) -> tuple[bytes, bytes]:
    dh = sk_e.exchange(pk_r)
    enc = sk_e.public_bytes()
    return _extract_and_expand(dh, enc + pk_r), enc


def _decap(enc: bytes, sk_r: KemPrivateKey) -> bytes:
    dh = sk_r.exchange(enc)
    return _extract_and_expand(dh, enc + sk_r.public_bytes())


# --- key schedule and contexts -------------------------------------------------------------------


class _Context:
    """Shared state of an encryption context (RFC 9180 section 5.2)."""

    __slots__ = ("_aead_id", "_base_nonce", "_exporter_secret", "_key", "_seq", "_suite_id")

    def __init__(self, suite: Suite, key: bytes, base_nonce: bytes, exporter_secret: bytes) -> None:
        self._suite_id = suite.suite_id()
        self._aead_id = suite.aead_id
        self._key = key
        self._base_nonce = base_nonce
        self._exporter_secret = exporter_secret
        self._seq = 0

    def export(self, exporter_context: bytes, length: int) -> bytes:
        """Secret export (RFC 9180 section 5.3), independent of the sequence number."""
        if not 0 < length <= 255 * N_H:
            raise ValueError("export length out of range")
        return _labeled_expand(self._suite_id, self._exporter_secret, b"sec", exporter_context, length)

    def _next_nonce(self) -> bytes:
        # The last sequence number is never used, so a nonce never repeats (RFC 9180 section 5.2).
        if self._seq >= (1 << (8 * len(self._base_nonce))) - 1:
            raise CryptoError("HPKE message limit reached")
        seq_bytes = self._seq.to_bytes(len(self._base_nonce), "big")
        return bytes(a ^ b for a, b in zip(self._base_nonce, seq_bytes, strict=True))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(aead_id={self._aead_id}, seq={self._seq})"


class SenderContext(_Context):
    __slots__ = ()

    def seal(self, aad: bytes, pt: bytes) -> bytes:
        ct = aead_seal(self._aead_id, self._key, self._next_nonce(), aad, pt)
        self._seq += 1
        return ct


class RecipientContext(_Context):
    __slots__ = ()

    def open(self, aad: bytes, ct: bytes) -> bytes:
        # On failure the sequence number stays put, as RFC 9180 section 5.2 specifies.
        pt = aead_open(self._aead_id, self._key, self._next_nonce(), aad, ct)
        self._seq += 1
        return pt


def _key_schedule(suite: Suite, shared_secret: bytes, info: bytes) -> tuple[bytes, bytes, bytes]:
    """Base-mode KeySchedule: (key, base_nonce, exporter_secret). psk and psk_id are empty."""
    sid = suite.suite_id()
    psk_id_hash = _labeled_extract(sid, b"", b"psk_id_hash", b"")
    info_hash = _labeled_extract(sid, b"", b"info_hash", info)
    context = bytes([_MODE_BASE]) + psk_id_hash + info_hash
    secret = _labeled_extract(sid, shared_secret, b"secret", b"")
    nk, nn = _aead_sizes(suite.aead_id)
    key = _labeled_expand(sid, secret, b"key", context, nk)
    base_nonce = _labeled_expand(sid, secret, b"base_nonce", context, nn)
    exporter_secret = _labeled_expand(sid, secret, b"exp", context, N_H)
    return key, base_nonce, exporter_secret


def setup_base_sender(
    suite: Suite,
    pk_r: bytes,
    info: bytes,
    *,
    ikm_e: bytes | None = None,
    sk_e: KemPrivateKey | None = None,
) -> tuple[bytes, SenderContext]:
    """SetupBaseS: returns (enc, context).

    ``ikm_e`` (derive the ephemeral key) and ``sk_e`` (use this ephemeral key) exist only so that tests can
    reproduce published vectors. Production callers pass neither: a reused ephemeral key breaks HPKE.
    """
    check_suite(suite)
    if ikm_e is not None and sk_e is not None:
        raise ValueError("pass at most one of ikm_e and sk_e")
    if sk_e is None:
        sk_e = KemPrivateKey.derive(ikm_e) if ikm_e is not None else KemPrivateKey.generate()
    shared_secret, enc = _encap(pk_r, sk_e)
    return enc, SenderContext(suite, *_key_schedule(suite, shared_secret, info))


def setup_base_recipient(suite: Suite, enc: bytes, sk_r: KemPrivateKey, info: bytes) -> RecipientContext:
    """SetupBaseR. A bad ``enc`` (wrong length, low order) raises ``InvalidPublicKeyError``."""
    check_suite(suite)
    shared_secret = _decap(enc, sk_r)
    return RecipientContext(suite, *_key_schedule(suite, shared_secret, info))
