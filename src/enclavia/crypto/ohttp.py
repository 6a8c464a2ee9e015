"""Oblivious HTTP (RFC 9458): key configurations, request and response encapsulation.

The enclave is the gateway: it holds ``GatewayKey``s whose ``KeyConfig`` is bound into its attestation
evidence. A client seals a binary HTTP request to that config; the host only relays the opaque bytes.

No downgrade: the gateway accepts only the (KDF, AEAD) pairs its own config lists, and the client refuses
to use a pair the attested config does not list. The KEM is fixed by the config.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from enclavia.crypto.hpke import (
    DEFAULT_SUITE,
    KEM_X25519_HKDF_SHA256,
    N_ENC,
    N_PK,
    N_T,
    KemPrivateKey,
    RecipientContext,
    SenderContext,
    Suite,
    aead_key_size,
    aead_nonce_size,
    aead_open,
    aead_seal,
    check_suite,
    kdf_expand,
    kdf_extract,
    setup_base_recipient,
    setup_base_sender,
)
from enclavia.errors import (
    MalformedMessageError,
    PayloadTooLargeError,
    UnknownKeyIdError,
    UnsupportedSuiteError,
)

__all__ = [
    "KEYS_MEDIA_TYPE",
    "MAX_ENCAPSULATED_SIZE",
    "REQUEST_MEDIA_TYPE",
    "RESPONSE_MEDIA_TYPE",
    "ClientResponseContext",
    "Gateway",
    "GatewayKey",
    "KeyConfig",
    "ServerResponseContext",
    "decode_key_configs",
    "encapsulate_request",
    "encode_key_configs",
]

REQUEST_MEDIA_TYPE: Final = "message/ohttp-req"
RESPONSE_MEDIA_TYPE: Final = "message/ohttp-res"
KEYS_MEDIA_TYPE: Final = "application/ohttp-keys"

# The inner bhttp message is capped at 16 MiB; allow the header, enc and tag on top.
MAX_ENCAPSULATED_SIZE: Final = 16 * 1024 * 1024 + 1024

_REQUEST_LABEL: Final = b"message/bhttp request"
_RESPONSE_LABEL: Final = b"message/bhttp response"
_HEADER_LEN: Final = 7  # key_id(1) kem_id(2) kdf_id(2) aead_id(2)
# Public key length by KEM id; a KEM not listed here cannot be parsed, let alone used.
_KEM_NPK: Final[dict[int, int]] = {KEM_X25519_HKDF_SHA256: N_PK}


# --- key configuration (RFC 9458 section 3) ------------------------------------------------------


@dataclass(frozen=True)
class KeyConfig:
    """One key configuration. ``symmetric`` lists (kdf_id, aead_id) in the gateway's order of preference."""

    key_id: int
    kem_id: int
    public_key: bytes
    symmetric: tuple[tuple[int, int], ...]

    def __post_init__(self) -> None:
        if not 0 <= self.key_id <= 0xFF or not 0 <= self.kem_id <= 0xFFFF:
            raise ValueError("key_id must fit 8 bits and kem_id 16 bits")
        if not self.symmetric or len(self.symmetric) > 0xFFFF // 4:
            raise ValueError("symmetric must list 1..16383 (kdf_id, aead_id) pairs")
        if any(not (0 <= k <= 0xFFFF and 0 <= a <= 0xFFFF) for k, a in self.symmetric):
            raise ValueError("kdf_id and aead_id must fit 16 bits")
        npk = _KEM_NPK.get(self.kem_id)
        if npk is not None and len(self.public_key) != npk:
            raise ValueError("public key length does not match the KEM")

    def encode(self) -> bytes:
        """The RFC 9458 section 3.1 encoding of this single configuration (no length prefix)."""
        algs = b"".join(struct.pack(">HH", kdf, aead) for kdf, aead in self.symmetric)
        head = struct.pack(">BH", self.key_id, self.kem_id)
        return head + self.public_key + struct.pack(">H", len(algs)) + algs

    @classmethod
    def decode(cls, data: bytes) -> KeyConfig:
        """Parse exactly one configuration; any length mismatch is ``MalformedMessageError``.

        A KEM this build does not implement is ``UnsupportedSuiteError``: its key length is unknown.
        """
        if len(data) < 3:
            raise MalformedMessageError("key config truncated")
        key_id, kem_id = struct.unpack_from(">BH", data, 0)
        npk = _KEM_NPK.get(kem_id)
        if npk is None:
            raise UnsupportedSuiteError()
        algs_at = 3 + npk
        if len(data) < algs_at + 2:
            raise MalformedMessageError("key config truncated")
        (algs_len,) = struct.unpack_from(">H", data, algs_at)
        if algs_len == 0 or algs_len % 4 != 0 or len(data) != algs_at + 2 + algs_len:
            raise MalformedMessageError("key config length mismatch")
        symmetric = tuple(struct.iter_unpack(">HH", data[algs_at + 2 :]))
        return cls(key_id, kem_id, bytes(data[3:algs_at]), symmetric)

    def header(self, kdf_id: int, aead_id: int) -> bytes:
        """The 7-byte request header: key_id, kem_id, kdf_id, aead_id."""
        return struct.pack(">BHHH", self.key_id, self.kem_id, kdf_id, aead_id)


def encode_key_configs(cs: Sequence[KeyConfig]) -> bytes:
    """``application/ohttp-keys``: each configuration with a 2-byte length prefix."""
    if not cs:
        raise ValueError("at least one key configuration is required")
    out = bytearray()
    for c in cs:
        raw = c.encode()
        if len(raw) > 0xFFFF:
            raise ValueError("key configuration too long")
        out += struct.pack(">H", len(raw)) + raw
    return bytes(out)


def decode_key_configs(data: bytes) -> tuple[KeyConfig, ...]:
    """Parse ``application/ohttp-keys``.

    Configurations with a KEM this build does not implement are skipped (RFC 9458 section 3.2 says to
    ignore them). If none is left, ``UnsupportedSuiteError``; bad framing is ``MalformedMessageError``.
    """
    if not data:
        raise MalformedMessageError("empty key configuration list")
    configs: list[KeyConfig] = []
    pos = 0
    while pos < len(data):
        if pos + 2 > len(data):
            raise MalformedMessageError("key config list truncated")
        (length,) = struct.unpack_from(">H", data, pos)
        end = pos + 2 + length
        if end > len(data):
            raise MalformedMessageError("key config list truncated")
        # An unknown KEM is skipped, not fatal: the list may advertise suites newer than this client.
        with contextlib.suppress(UnsupportedSuiteError):
            configs.append(KeyConfig.decode(data[pos + 2 : end]))
        pos = end
    if not configs:
        raise UnsupportedSuiteError()
    return tuple(configs)


# --- response encapsulation (RFC 9458 section 4.4) -----------------------------------------------


def _response_nonce_len(suite: Suite) -> int:
    return max(aead_nonce_size(suite.aead_id), aead_key_size(suite.aead_id))


def _response_key_nonce(
    suite: Suite, context: SenderContext | RecipientContext, enc: bytes, response_nonce: bytes
) -> tuple[bytes, bytes]:
    # The exporter secret ties the response key to this request's HPKE context; the fresh nonce in the
    # salt makes each response key distinct even if the secret were reused.
    secret = context.export(_RESPONSE_LABEL, _response_nonce_len(suite))
    prk = kdf_extract(enc + response_nonce, secret)
    key = kdf_expand(prk, b"key", aead_key_size(suite.aead_id))
    nonce = kdf_expand(prk, b"nonce", aead_nonce_size(suite.aead_id))
    return key, nonce


class ServerResponseContext:
    """What the gateway keeps from one request to seal exactly one response to it."""

    __slots__ = ("_context", "_enc", "_used", "suite")

    def __init__(self, suite: Suite, enc: bytes, context: RecipientContext) -> None:
        self.suite = suite
        self._enc = enc
        self._context = context
        self._used = False

    def encapsulate_response(self, response: bytes, *, response_nonce: bytes | None = None) -> bytes:
        """response_nonce || AEAD.Seal(key, nonce, "", response).

        ``response_nonce`` is for reproducing vectors only; leave it None. One response per request:
        a second call is refused, because a repeated fixed nonce would reuse the AEAD key and nonce.
        """
        if self._used:
            raise ValueError("a response was already encapsulated for this request")
        n = _response_nonce_len(self.suite)
        if response_nonce is None:
            response_nonce = os.urandom(n)
        elif len(response_nonce) != n:
            raise ValueError("response_nonce has the wrong length")
        key, nonce = _response_key_nonce(self.suite, self._context, self._enc, response_nonce)
        self._used = True
        return response_nonce + aead_seal(self.suite.aead_id, key, nonce, b"", response)

    def __repr__(self) -> str:
        return f"ServerResponseContext(suite={self.suite})"


class ClientResponseContext:
    """What the client keeps from its request to open the matching response."""

    __slots__ = ("_context", "_enc", "suite")

    def __init__(self, suite: Suite, enc: bytes, context: SenderContext) -> None:
        self.suite = suite
        self._enc = enc
        self._context = context

    def decapsulate_response(self, message: bytes) -> bytes:
        n = _response_nonce_len(self.suite)
        if len(message) < n + N_T:
            raise MalformedMessageError("encapsulated response truncated")
        if len(message) > MAX_ENCAPSULATED_SIZE:
            raise PayloadTooLargeError()
        key, nonce = _response_key_nonce(self.suite, self._context, self._enc, bytes(message[:n]))
        return aead_open(self.suite.aead_id, key, nonce, b"", bytes(message[n:]))

    def __repr__(self) -> str:
        return f"ClientResponseContext(suite={self.suite})"


# --- client side ---------------------------------------------------------------------------------


def _supported(suite: Suite) -> bool:
    try:
        check_suite(suite)
    except UnsupportedSuiteError:
        return False
    return True


def _choose_suite(config: KeyConfig, suite: Suite | None) -> Suite:
    """The caller's suite if the config offers it, else the config's first pair that is implemented."""
    if suite is not None:
        offered = suite.kem_id == config.kem_id and (suite.kdf_id, suite.aead_id) in config.symmetric
        if not offered or not _supported(suite):
            raise UnsupportedSuiteError()
        return suite
    for kdf_id, aead_id in config.symmetric:
        candidate = Suite(config.kem_id, kdf_id, aead_id)
        if _supported(candidate):
            return candidate
    raise UnsupportedSuiteError()


def encapsulate_request(
    config: KeyConfig,
    request: bytes,
    *,
    suite: Suite | None = None,
    ikm_e: bytes | None = None,
    sk_e: KemPrivateKey | None = None,
) -> tuple[bytes, ClientResponseContext]:
    """Seal a bhttp request to ``config``: hdr || enc || ct, plus the context to open the response.

    ``ikm_e`` / ``sk_e`` fix the ephemeral key for reproducing vectors only; production passes neither.
    """
    chosen = _choose_suite(config, suite)
    hdr = config.header(chosen.kdf_id, chosen.aead_id)
    info = _REQUEST_LABEL + b"\x00" + hdr
    enc, context = setup_base_sender(chosen, config.public_key, info, ikm_e=ikm_e, sk_e=sk_e)
    ct = context.seal(b"", request)
    return hdr + enc + ct, ClientResponseContext(chosen, enc, context)


# --- gateway side --------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class GatewayKey:
    """A key configuration with its private key. ``repr`` never shows the private key."""

    config: KeyConfig
    private_key: KemPrivateKey

    def __post_init__(self) -> None:
        if self.config.kem_id != KEM_X25519_HKDF_SHA256:
            raise ValueError("only DHKEM(X25519, HKDF-SHA256) gateway keys are implemented")
        if self.private_key.public_bytes() != self.config.public_key:
            raise ValueError("private key does not match the key configuration")

    @classmethod
    def generate(cls, key_id: int, suite: Suite = DEFAULT_SUITE) -> GatewayKey:
        """A fresh key that offers exactly ``suite``: the one suite in the measured configuration."""
        check_suite(suite)
        sk = KemPrivateKey.generate()
        config = KeyConfig(key_id, suite.kem_id, sk.public_bytes(), ((suite.kdf_id, suite.aead_id),))
        return cls(config, sk)

    def __repr__(self) -> str:
        return f"GatewayKey(config={self.config!r})"


class Gateway:
    """Opens encapsulated requests sealed to any of its keys."""

    __slots__ = ("_keys",)

    def __init__(self, keys: Sequence[GatewayKey]) -> None:
        by_id: dict[int, GatewayKey] = {}
        for key in keys:
            if key.config.key_id in by_id:
                raise ValueError("duplicate key_id")
            by_id[key.config.key_id] = key
        self._keys = by_id

    @property
    def key_configs(self) -> tuple[KeyConfig, ...]:
        return tuple(k.config for k in self._keys.values())

    def _suite_for(self, header: bytes) -> tuple[GatewayKey, Suite]:
        key_id, kem_id, kdf_id, aead_id = struct.unpack(">BHHH", header)
        key = self._keys.get(key_id)
        if key is None:
            raise UnknownKeyIdError()
        suite = Suite(kem_id, kdf_id, aead_id)
        if kem_id != key.config.kem_id or (kdf_id, aead_id) not in key.config.symmetric:
            raise UnsupportedSuiteError()
        check_suite(suite)
        return key, suite

    def decapsulate_request(self, message: bytes) -> tuple[bytes, ServerResponseContext]:
        """Open ``message/ohttp-req``: returns the inner bhttp bytes and the response context."""
        if len(message) > MAX_ENCAPSULATED_SIZE:
            raise PayloadTooLargeError()
        if len(message) < _HEADER_LEN:
            raise MalformedMessageError("encapsulated request truncated")
        message = bytes(message)
        header = message[:_HEADER_LEN]
        key, suite = self._suite_for(header)
        if len(message) < _HEADER_LEN + N_ENC + N_T:
            raise MalformedMessageError("encapsulated request truncated")
        enc = message[_HEADER_LEN : _HEADER_LEN + N_ENC]
        info = _REQUEST_LABEL + b"\x00" + header
        context = setup_base_recipient(suite, enc, key.private_key, info)
        request = context.open(b"", message[_HEADER_LEN + N_ENC :])
        return request, ServerResponseContext(suite, enc, context)

    def __repr__(self) -> str:
        return f"Gateway(key_ids={sorted(self._keys)})"
