"""Key hierarchy for the document store: KEK (from the broker) -> wrapped DEKs (in a keyring blob).

- The KEK comes from a ``KekSource``. In production it is a broker-released secret (``enclavia serve --broker
  URL --kek-secret keks/<name>``), delivered to the attested enclave sealed to its HPKE key and installed into
  a ``ReleasedKekSource`` (empty until then: document routes answer 503 ``enclave.secrets_unavailable``); in
  development (no broker) ``FileKekSource`` keeps KEKs in the simulated platform's directory, which is exactly
  as trustworthy as the simulated platform key.
- DEKs (one for blob names, one per tenant index, one per document) are random, and stored only wrapped under
  the current KEK in the ``keyring`` blob, with the KEK id and the DEK id bound as associated data.
- Rotation unwraps every DEK under the old KEK and wraps it under the new one, then writes the keyring: no
  document, chunk or index body is re-encrypted. Afterwards the wrapped DEKs open only under the new KEK.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
from base64 import b64decode, b64encode
from pathlib import Path
from typing import Protocol

from enclavia.crypto import aead
from enclavia.crypto.envelope import rewrap, unwrap_dek, wrap_dek
from enclavia.errors import DecryptionError, SecretsUnavailableError
from enclavia.rag.blobstore import BlobStore

__all__ = ["FileKekSource", "KekSource", "KeyRing", "ReleasedKekSource", "StaticKekSource"]

KEYRING = "keyring"
NAMING_DEK = "naming"


class KekSource(Protocol):
    def current(self) -> tuple[str, bytes]: ...
    def get(self, kek_id: str) -> bytes | None: ...


class StaticKekSource:
    """KEKs held in memory (what a broker release yields); ``current_id`` names the active one."""

    def __init__(self, keks: dict[str, bytes], current_id: str) -> None:
        self.keks = dict(keks)
        self.current_id = current_id

    def current(self) -> tuple[str, bytes]:
        kek = self.keks.get(self.current_id)
        if kek is None:
            raise SecretsUnavailableError()
        return self.current_id, kek

    def get(self, kek_id: str) -> bytes | None:
        return self.keks.get(kek_id)


class ReleasedKekSource:
    """The KEK released by the key broker: empty (``SecretsUnavailableError``) until the enclave installs it.

    ``path`` is the broker secret path (``keks/rag``); each installed version becomes KEK id ``path@vN``
    and the last one installed is current. Installed by ``enclavia.enclave.keyrelease`` once opened.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._keks: dict[str, bytes] = {}
        self._current: str | None = None
        self._highest: int | None = None

    @property
    def released(self) -> bool:
        return self._current is not None

    def kek_id(self, version: int) -> str:
        return f"{self.path}@v{version}"

    @property
    def highest_version(self) -> int | None:
        with self._lock:
            return self._highest

    def install(self, version: int, kek: bytes) -> None:
        """Install a released version; the current one is the highest ever installed (never lowered)."""
        if len(kek) != aead.KEY_SIZE:
            raise DecryptionError("released KEK is not a 32-byte key")
        with self._lock:
            self._keks[self.kek_id(version)] = bytes(kek)
            if self._highest is None or version >= self._highest:
                self._highest = version
                self._current = self.kek_id(version)

    def current(self) -> tuple[str, bytes]:
        with self._lock:
            if self._current is None:
                raise SecretsUnavailableError()
            return self._current, self._keks[self._current]

    def get(self, kek_id: str) -> bytes | None:
        with self._lock:
            return self._keks.get(kek_id)


class FileKekSource(StaticKekSource):
    """Development only: KEKs as files ``kek-<id>.bin`` in the simulated TEE directory, created on first use."""  # noqa: E501

    def __init__(self, directory: Path, current_id: str = "dev-kek-1") -> None:
        directory.mkdir(parents=True, exist_ok=True)
        keks: dict[str, bytes] = {}
        for path in directory.glob("kek-*.bin"):
            keks[path.name[4:-4]] = path.read_bytes()
        if current_id not in keks:
            path = directory / f"kek-{current_id}.bin"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            keks[current_id] = aead.generate_key()
            with os.fdopen(fd, "wb") as fh:
                fh.write(keks[current_id])
        super().__init__(keks, current_id)


class KeyRing:
    """Unwrapped DEKs cached in enclave memory; wrapped ones persisted in the ``keyring`` blob."""

    def __init__(self, blobs: BlobStore, keks: KekSource) -> None:
        self.blobs = blobs
        self.keks = keks
        self._lock = threading.RLock()
        self._wrapped: dict[str, bytes] = {}
        self._deks: dict[str, bytes] = {}
        self.kek_id = ""
        self._dirty = False
        self._loaded = False
        # No KEK released yet (the broker's may arrive after the store is built): load on first use instead.
        # A KEK that is present but does not open this keyring still fails here.
        try:
            self.keks.current()
        except SecretsUnavailableError:
            return
        self._ensure()

    def _ensure(self) -> None:
        """Read the keyring once the KEK is available (``SecretsUnavailableError`` until then)."""
        with self._lock:
            if not self._loaded:
                self._load()
                self._loaded = True

    def _load(self) -> None:
        kek_id, _ = self.keks.current()
        raw = self.blobs.get(KEYRING)
        if raw is None:
            self.kek_id = kek_id
            self._persist()
            return
        doc = json.loads(raw)
        self.kek_id = str(doc["kek_id"])
        self._wrapped = {k: b64decode(v) for k, v in doc["deks"].items()}
        if self.keks.get(self.kek_id) is None:
            raise SecretsUnavailableError("the KEK this keyring is wrapped under was not released")

    def _persist(self) -> None:
        doc = {
            "kek_id": self.kek_id,
            "deks": {k: b64encode(v).decode() for k, v in sorted(self._wrapped.items())},
        }
        self.blobs.put(KEYRING, json.dumps(doc).encode())

    def dek(self, dek_id: str, *, create: bool = True, persist: bool = True) -> bytes | None:
        with self._lock:
            cached = self._deks.get(dek_id)
            if cached is not None:
                return cached
            self._ensure()
            kek = self.keks.get(self.kek_id)
            if kek is None:
                raise SecretsUnavailableError()
            wrapped = self._wrapped.get(dek_id)
            if wrapped is None:
                if not create:
                    return None
                dek = aead.generate_key()
                self._wrapped[dek_id] = wrap_dek(kek, self.kek_id, dek_id, dek)
                if persist:
                    try:
                        self._persist()
                    except BaseException:
                        # The keyring write failed (disk full, store down): forget the new DEK, or later
                        # calls would encrypt with a key no restart can recover (silent data loss).
                        del self._wrapped[dek_id]
                        raise
                else:
                    self._dirty = True
            else:
                dek = unwrap_dek(kek, self.kek_id, dek_id, wrapped)
            self._deks[dek_id] = dek
            return dek

    def flush(self) -> None:
        """Write the keyring once after a batch of ``dek(..., persist=False)``."""
        with self._lock:
            if self._dirty:
                self._persist()
                self._dirty = False

    def name(self, *parts: str) -> str:
        """Keyed, opaque blob-name material: HMAC-SHA256 under the naming DEK."""
        key = self.dek(NAMING_DEK)
        assert key is not None
        msg = b"\x00".join(p.encode() for p in parts)
        return hmac.new(key, msg, hashlib.sha256).hexdigest()

    def rotate(self) -> int:
        """Rewrap every DEK from the keyring's KEK to the source's current KEK. Returns the count."""
        with self._lock:
            self._ensure()
            new_id, new_kek = self.keks.current()
            if new_id == self.kek_id:
                return 0
            old = self.keks.get(self.kek_id)
            if old is None:
                raise SecretsUnavailableError()
            rewrapped = {d: rewrap(old, self.kek_id, new_kek, new_id, d, w) for d, w in self._wrapped.items()}
            self._wrapped, self.kek_id = rewrapped, new_id
            self._persist()
            return len(rewrapped)

    def wrapped(self, dek_id: str) -> bytes | None:
        return self._wrapped.get(dek_id)

    def check_unwraps(self, kek_id: str, kek: bytes) -> bool:
        """True when every wrapped DEK opens under (kek_id, kek) (used by tests and the rotation runbook)."""
        try:
            for dek_id, wrapped in self._wrapped.items():
                unwrap_dek(kek, kek_id, dek_id, wrapped)
        except DecryptionError:
            return False
        return True
