"""The broker's root key, behind one interface with two backends.

``wrap(data, context)`` / ``unwrap(blob, context)``: AES-256-GCM under the root key, ``context`` as the
associated data (a blob wrapped for one secret version cannot be unwrapped as another). The broker only
ever wraps short data keys: secret values are encrypted under their own data key (envelope encryption),
and the broker's signing and audit keys are wrapped the same way (see ``store.KeyMaterial``).

* ``file:PATH`` (development): 32 random bytes in a 0600 file, created on first use.
* ``pkcs11:token=LABEL;object=LABEL?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=FILE``
  (RFC 7512 URI; ``pin-value`` is accepted for tests, ``ENCLAVIA_PKCS11_PIN`` otherwise): the root key is an
  AES-256 object generated inside the token with CKA_EXTRACTABLE false and CKA_SENSITIVE true; encryption
  and decryption run inside the token (CKM_AES_GCM), the key never leaves it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol
from urllib.parse import parse_qsl, unquote

from enclavia.crypto import aead
from enclavia.errors import DecryptionError, StoreUnavailableError

ROOT_KEY_LEN: Final = 32
GCM_NONCE_LEN: Final = 12
_P11_VERSION: Final = b"\x01"
DEFAULT_PKCS11_MODULE: Final = "/usr/lib/softhsm/libsofthsm2.so"
DEFAULT_OBJECT_LABEL: Final = "enclavia-broker-root"


class KeyStore(Protocol):
    """Holds the root key; wraps and unwraps data keys. Implementations are thread-safe."""

    @property
    def description(self) -> str:
        """Where the key lives, without secrets (for logs)."""
        ...

    def wrap(self, data: bytes, context: bytes) -> bytes: ...

    def unwrap(self, blob: bytes, context: bytes) -> bytes:
        """Raises ``DecryptionError`` for a blob not made by ``wrap`` with this key and context."""
        ...

    def close(self) -> None: ...


class FileKeyStore:
    """Development key store: the root key in a 0600 file. Anyone who can read the file holds every secret."""

    def __init__(self, path: str | Path, *, create: bool = True) -> None:
        self.path = Path(path)
        if not self.path.exists():
            if not create:
                raise StoreUnavailableError("key store file missing")
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass  # another worker created it first
            else:
                with os.fdopen(fd, "wb") as f:
                    f.write(secrets.token_bytes(ROOT_KEY_LEN))
        try:
            key = self.path.read_bytes()
        except OSError:
            raise StoreUnavailableError("key store file unreadable") from None
        if len(key) != ROOT_KEY_LEN:
            raise StoreUnavailableError("key store file has the wrong length")
        self._key = key

    @property
    def description(self) -> str:
        return "file"

    def wrap(self, data: bytes, context: bytes) -> bytes:
        return aead.seal(self._key, data, context)

    def unwrap(self, blob: bytes, context: bytes) -> bytes:
        return aead.open_(self._key, blob, context)

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return "FileKeyStore(<redacted>)"


@dataclass(frozen=True)
class Pkcs11Uri:
    module_path: str
    token_label: str
    object_label: str
    pin: str

    @classmethod
    def parse(cls, uri: str) -> Pkcs11Uri:
        """RFC 7512 subset: path attributes ``token`` and ``object``; query ``module-path``, ``pin-value``,
        ``pin-source`` (a file holding the PIN). Without either PIN attribute, ``ENCLAVIA_PKCS11_PIN``."""
        if not uri.startswith("pkcs11:"):
            raise ValueError("PKCS#11 URI must start with pkcs11:")
        body = uri[len("pkcs11:") :]
        path, _, query = body.partition("?")
        attrs: dict[str, str] = {}
        for part in filter(None, path.split(";")):
            name, sep, value = part.partition("=")
            if not sep:
                raise ValueError("PKCS#11 URI path attribute without a value")
            attrs[name] = unquote(value)
        params = dict(parse_qsl(query, keep_blank_values=True))
        unknown = set(attrs) - {"token", "object", "type"}
        if unknown or set(params) - {"module-path", "pin-value", "pin-source"}:
            raise ValueError("PKCS#11 URI has attributes this key store does not understand")
        if "token" not in attrs:
            raise ValueError("PKCS#11 URI must name the token")
        pin = params.get("pin-value")
        if pin is None and "pin-source" in params:
            source = params["pin-source"].removeprefix("file:")
            pin = Path(source).read_text(encoding="utf-8").strip()
        if pin is None:
            pin = os.environ.get("ENCLAVIA_PKCS11_PIN")
        if not pin:
            raise ValueError("PKCS#11 PIN missing: pin-source, pin-value or ENCLAVIA_PKCS11_PIN")
        return cls(
            module_path=params.get("module-path", DEFAULT_PKCS11_MODULE),
            token_label=attrs["token"],
            object_label=attrs.get("object", DEFAULT_OBJECT_LABEL),
            pin=pin,
        )


class Pkcs11KeyStore:
    """Root key inside a PKCS#11 token (SoftHSM2 in tests, an HSM in production).

    The key is created in the token on first use (AES-256, CKA_TOKEN, CKA_SENSITIVE, not extractable, usable
    only for encrypt/decrypt). Wrap = C_Encrypt with CKM_AES_GCM (random 96-bit IV, the context as AAD);
    blob = 0x01 || IV || ciphertext || tag. One session, serialised by a lock (sessions are not thread-safe).
    """

    def __init__(self, uri: str | Pkcs11Uri, *, create: bool = True) -> None:
        import pkcs11

        self.uri = uri if isinstance(uri, Pkcs11Uri) else Pkcs11Uri.parse(uri)
        self._lock = threading.Lock()
        try:
            lib = pkcs11.lib(self.uri.module_path)
            token = lib.get_token(token_label=self.uri.token_label)
            self._session: Any = token.open(user_pin=self.uri.pin, rw=True)
        except (pkcs11.PKCS11Error, RuntimeError, OSError):
            raise StoreUnavailableError("PKCS#11 token unavailable") from None
        self._key = self._find_or_create(create)

    def _find_or_create(self, create: bool) -> Any:
        from pkcs11 import Attribute, KeyType, ObjectClass
        from pkcs11.exceptions import NoSuchKey

        try:
            return self._session.get_key(
                object_class=ObjectClass.SECRET_KEY, key_type=KeyType.AES, label=self.uri.object_label
            )
        except NoSuchKey:
            if not create:
                raise StoreUnavailableError("root key not found in the token") from None
        return self._session.generate_key(
            KeyType.AES,
            ROOT_KEY_LEN * 8,
            label=self.uri.object_label,
            store=True,
            template={
                Attribute.TOKEN: True,
                Attribute.PRIVATE: True,
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
                Attribute.ENCRYPT: True,
                Attribute.DECRYPT: True,
                Attribute.WRAP: False,
                Attribute.UNWRAP: False,
                Attribute.SIGN: False,
                Attribute.VERIFY: False,
                Attribute.DERIVE: False,
            },
        )

    @property
    def description(self) -> str:
        return "pkcs11"

    @property
    def key_attributes(self) -> dict[str, bool]:
        """The security attributes of the root key object, read from the token."""
        from pkcs11 import Attribute

        with self._lock:
            return {
                "extractable": bool(self._key[Attribute.EXTRACTABLE]),
                "sensitive": bool(self._key[Attribute.SENSITIVE]),
                "never_extractable": bool(self._key[Attribute.NEVER_EXTRACTABLE]),
                "always_sensitive": bool(self._key[Attribute.ALWAYS_SENSITIVE]),
                "token": bool(self._key[Attribute.TOKEN]),
            }

    def wrap(self, data: bytes, context: bytes) -> bytes:
        import pkcs11
        from pkcs11 import Mechanism
        from pkcs11.mechanisms import GCMParams

        iv = secrets.token_bytes(GCM_NONCE_LEN)
        try:
            with self._lock:
                ct = self._key.encrypt(
                    data, mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(iv, context, 128)
                )
        except pkcs11.PKCS11Error:
            raise StoreUnavailableError("PKCS#11 encrypt failed") from None
        return _P11_VERSION + iv + bytes(ct)

    def unwrap(self, blob: bytes, context: bytes) -> bytes:
        import pkcs11
        from pkcs11 import Mechanism
        from pkcs11.mechanisms import GCMParams

        if len(blob) < 1 + GCM_NONCE_LEN + 16 or blob[:1] != _P11_VERSION:
            raise DecryptionError()
        iv, ct = blob[1 : 1 + GCM_NONCE_LEN], blob[1 + GCM_NONCE_LEN :]
        try:
            with self._lock:
                pt = self._key.decrypt(
                    ct, mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(iv, context, 128)
                )
        except (pkcs11.exceptions.GeneralError, pkcs11.exceptions.EncryptedDataInvalid):
            raise DecryptionError() from None  # SoftHSM2 reports a failed tag check as a general error
        except pkcs11.PKCS11Error:
            raise StoreUnavailableError("PKCS#11 decrypt failed") from None
        return bytes(pt)

    def close(self) -> None:
        import pkcs11

        with self._lock, contextlib.suppress(pkcs11.PKCS11Error):
            self._session.close()

    def __repr__(self) -> str:
        return f"Pkcs11KeyStore(token={self.uri.token_label!r}, object={self.uri.object_label!r})"


def open_keystore(spec: str, *, create: bool = True) -> KeyStore:
    """``file:PATH`` or a ``pkcs11:`` URI."""
    if spec.startswith("file:"):
        return FileKeyStore(spec[len("file:") :], create=create)
    if spec.startswith("pkcs11:"):
        return Pkcs11KeyStore(spec, create=create)
    raise ValueError("key store must be file:PATH or a pkcs11: URI")
