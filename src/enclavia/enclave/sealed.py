"""Model artifacts sealed at rest, and the placeholder the enclave serves until their key is released.

File layout (``ARTIFACT.sealed``, written by ``enclavia model seal``)::

    magic "ENCSEAL1" || header_len: u32 BE || header (canonical JSON) || AES-256-GCM blob (crypto.aead)

    header = {"model_id": str, "sha256": hex of the plaintext, "secret_path": "models/<model_id>",
              "secret_version": int, "size": plaintext bytes}
    aad    = canonical JSON {"model_id": ..., "sha256": ...}

The data key (DEK) is a fresh 256-bit key registered with the key broker under ``secret_path``. The header is
not secret and is read at boot: the plaintext digest goes into the image manifest (so the measurement covers
the model), and a lying header cannot be opened (the digest is associated data and is checked again after
decryption). A plaintext artifact beside a sealed copy is never loaded.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from enclavia.crypto import aead
from enclavia.errors import DecryptionError, SecretsUnavailableError
from enclavia.inference.linear import ArtifactError, LinearClassifier, Prediction

MAGIC: Final = b"ENCSEAL1"
SUFFIX: Final = ".sealed"
MAX_HEADER: Final = 4096
_MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def artifact_aad(model_id: str, sha256: str) -> bytes:
    return _canonical({"model_id": model_id, "sha256": sha256})


def secret_path_for(model_id: str) -> str:
    return f"models/{model_id}"


@dataclass(frozen=True)
class SealedHeader:
    model_id: str
    sha256: str
    secret_path: str
    secret_version: int
    size: int

    def to_json(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "sha256": self.sha256,
            "secret_path": self.secret_path,
            "secret_version": self.secret_version,
            "size": self.size,
        }


def seal_artifact(plaintext: bytes, model_id: str, dek: bytes, secret_version: int) -> bytes:
    if not _MODEL_ID.match(model_id):
        raise ValueError("model id must be [A-Za-z0-9._-], starting with a letter or digit")
    digest = hashlib.sha256(plaintext).hexdigest()
    header = SealedHeader(model_id, digest, secret_path_for(model_id), secret_version, len(plaintext))
    head = _canonical(header.to_json())
    blob = aead.seal(dek, plaintext, artifact_aad(model_id, digest))
    return MAGIC + struct.pack(">I", len(head)) + head + blob


def parse_sealed(data: bytes) -> tuple[SealedHeader, bytes]:
    """Header and AEAD blob of a sealed artifact; ``ArtifactError`` if it is not one."""
    if len(data) < len(MAGIC) + 4 or data[: len(MAGIC)] != MAGIC:
        raise ArtifactError("not a sealed artifact")
    (n,) = struct.unpack_from(">I", data, len(MAGIC))
    start = len(MAGIC) + 4
    if not 0 < n <= MAX_HEADER or len(data) < start + n + aead.OVERHEAD:
        raise ArtifactError("sealed artifact header invalid")
    try:
        doc = json.loads(data[start : start + n])
    except (ValueError, UnicodeDecodeError):
        raise ArtifactError("sealed artifact header invalid") from None
    if not isinstance(doc, dict) or set(doc) != {
        "model_id",
        "sha256",
        "secret_path",
        "secret_version",
        "size",
    }:
        raise ArtifactError("sealed artifact header invalid")
    model_id, digest, version, size = doc["model_id"], doc["sha256"], doc["secret_version"], doc["size"]
    if (
        not isinstance(model_id, str)
        or not _MODEL_ID.match(model_id)
        or not isinstance(digest, str)
        or not _SHA256.match(digest)
        or doc["secret_path"] != secret_path_for(model_id)
        or not isinstance(version, int)
        or isinstance(version, bool)
        or version < 1
        or not isinstance(size, int)
        or size < 0
    ):
        raise ArtifactError("sealed artifact header invalid")
    return SealedHeader(model_id, digest, doc["secret_path"], version, size), data[start + n :]


def open_artifact(header: SealedHeader, blob: bytes, dek: bytes) -> bytes:
    plaintext = aead.open_(dek, blob, artifact_aad(header.model_id, header.sha256))
    if hashlib.sha256(plaintext).hexdigest() != header.sha256 or len(plaintext) != header.size:
        raise DecryptionError()
    return plaintext


class SealedModel(LinearClassifier):
    """A classifier whose weights are still sealed. Until ``unseal`` succeeds every prediction is
    ``SecretsUnavailableError`` (503 ``enclave.secrets_unavailable``); ``digest`` is the plaintext digest
    from the header, so the manifest (and the measurement) covers the model before it is opened."""

    def __init__(
        self, header: SealedHeader, blob: bytes
    ) -> None:  # no super().__init__: nothing to parse yet
        self.header = header
        self.digest = header.sha256
        self.name = header.model_id
        self._blob = blob
        self._model: LinearClassifier | None = None
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: Path) -> SealedModel:
        header, blob = parse_sealed(path.read_bytes())
        return cls(header, blob)

    @property
    def secret_path(self) -> str:
        return self.header.secret_path

    @property
    def unsealed(self) -> bool:
        return self._model is not None

    def unseal(self, dek: bytes) -> None:
        """Decrypt in memory with the released key and load the classifier. Idempotent."""
        with self._lock:
            if self._model is not None:
                return
            plaintext = open_artifact(self.header, self._blob, dek)
            model = LinearClassifier(plaintext)
            if model.name != self.name or model.digest != self.digest:
                raise DecryptionError("sealed model does not match its header")
            self._model = model
            self._blob = b""

    def _ready(self) -> LinearClassifier:
        model = self._model
        if model is None:
            raise SecretsUnavailableError()
        return model

    def predict(self, features: object) -> Prediction:
        return self._ready().predict(features)

    def vectorize(self, features: object) -> Any:
        return self._ready().vectorize(features)

    def describe(self) -> dict[str, Any]:
        model = self._model
        if model is None:
            return {"id": self.name, "object": "model", "artifact_sha256": self.digest, "status": "sealed"}
        return model.describe()

    def __getattr__(self, name: str) -> Any:
        # Anything else a route may read (feature_names, classes, metrics) exists only once unsealed.
        if name.startswith("_") or name in {"header", "digest", "name"}:
            raise AttributeError(name)
        return getattr(self._ready(), name)


def load_sealed_models(model_dir: Path) -> Mapping[str, SealedModel]:
    out: dict[str, SealedModel] = {}
    for path in sorted(model_dir.glob("*" + SUFFIX)):
        model = SealedModel.load(path)
        out[model.name] = model
    return out
