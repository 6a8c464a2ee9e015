"""Key-broker release envelope: a secret sealed with HPKE to an attested enclave's key configuration.

Both ends use this module: the broker seals, the enclave opens. Nothing here does I/O.

    info = b"enclavia-kbs-release-v1"
    aad  = canonical JSON {"current_version": ..., "jti": ..., "path": ..., "policy_revision": ...,
                           "version": ...}     (current_version: the broker's version floor statement)
    (enc, ct) = HPKE base mode, DEFAULT_SUITE, to the key config's public key

The associated data binds the secret path, its version, the policy revision it was released under and the
attestation token id, so a relay cannot present one released secret as another.
"""

from __future__ import annotations

import json
from typing import Final

from enclavia.crypto.hpke import DEFAULT_SUITE, KemPrivateKey, Suite, setup_base_recipient, setup_base_sender
from enclavia.crypto.ohttp import KeyConfig
from enclavia.errors import UnsupportedSuiteError

RELEASE_INFO: Final = b"enclavia-kbs-release-v1"


def release_aad(
    path: str, version: int, policy_revision: int, jti: str, current_version: int | None = None
) -> bytes:
    """Canonical bytes of (secret path, version, policy revision, token id[, current version]).

    ``current_version``: the newest live version of the path when the broker released this one (its
    version floor statement); bound here, so a relay cannot present an old version as the current one."""
    if not isinstance(version, int) or not isinstance(policy_revision, int):
        raise TypeError("version and policy_revision must be integers")
    doc: dict[str, object] = {
        "jti": jti,
        "path": path,
        "policy_revision": policy_revision,
        "version": version,
    }
    if current_version is not None:
        if not isinstance(current_version, int):
            raise TypeError("current_version must be an integer")
        doc["current_version"] = current_version
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _check_offers(config: KeyConfig, suite: Suite) -> None:
    if config.kem_id != suite.kem_id or (suite.kdf_id, suite.aead_id) not in config.symmetric:
        raise UnsupportedSuiteError()


def seal_secret(
    key_config: bytes, secret: bytes, aad: bytes, suite: Suite = DEFAULT_SUITE
) -> tuple[bytes, bytes]:
    """Seal ``secret`` to the public key of ``key_config`` (RFC 9458 encoding); returns (enc, ciphertext)."""
    config = KeyConfig.decode(key_config)
    _check_offers(config, suite)
    enc, ctx = setup_base_sender(suite, config.public_key, RELEASE_INFO)
    return enc, ctx.seal(aad, secret)


def open_secret(
    private_key: KemPrivateKey, enc: bytes, ciphertext: bytes, aad: bytes, suite: Suite = DEFAULT_SUITE
) -> bytes:
    """Open a released secret; a wrong key, enc or associated data raises ``DecryptionError``."""
    ctx = setup_base_recipient(suite, enc, private_key, RELEASE_INFO)
    return ctx.open(aad, ciphertext)
