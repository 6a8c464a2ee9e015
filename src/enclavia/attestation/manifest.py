"""Enclave image manifest: canonical JSON, its SHA-384 digest, and a strict parser.

The simulated measurement is SHA-384 of the canonical manifest; on real TEEs the same digest is bound
into report_data and the platform measurement is published beside it by the release tooling.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from enclavia.errors import EvidenceFormatError

SCHEMA = "enclavia-manifest-v1"
MAX_MANIFEST_BYTES = 1 << 20
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


@dataclass(frozen=True)
class ImageManifest:
    enclavia_version: str
    files: Mapping[str, str]  # relative path -> sha256 hex
    dependencies: tuple[str, ...]  # "name==version", sorted
    models: Mapping[str, str]  # model id -> sha256 hex of the artifact (plaintext)
    config: Mapping[str, Any]  # suite, tee, limits, egress allow-list

    def __post_init__(self) -> None:
        object.__setattr__(self, "files", MappingProxyType(dict(self.files)))
        object.__setattr__(self, "models", MappingProxyType(dict(self.models)))
        object.__setattr__(self, "config", MappingProxyType(dict(self.config)))

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "enclavia_version": self.enclavia_version,
            "files": dict(sorted(self.files.items())),
            "dependencies": sorted(self.dependencies),
            "models": dict(sorted(self.models.items())),
            "config": _plain(self.config),
        }

    def canonical(self) -> bytes:
        return canonical_json(self.to_json())

    def digest(self) -> bytes:
        """SHA-384 of the canonical manifest (48 bytes)."""
        return hashlib.sha384(self.canonical()).digest()


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def parse_manifest(data: object) -> ImageManifest:
    """From the JSON object found in an attestation bundle; strict shape checks."""
    if not isinstance(data, Mapping) or data.get("schema") != SCHEMA:
        raise EvidenceFormatError("manifest schema unknown")
    if set(data) != {"schema", "enclavia_version", "files", "dependencies", "models", "config"}:
        raise EvidenceFormatError("manifest has unexpected keys")
    files, deps, models, config = data["files"], data["dependencies"], data["models"], data["config"]
    if not isinstance(data["enclavia_version"], str):
        raise EvidenceFormatError("manifest version invalid")
    for table in (files, models):
        if not isinstance(table, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) and _SHA256.match(v) for k, v in table.items()
        ):
            raise EvidenceFormatError("manifest digest table invalid")
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise EvidenceFormatError("manifest dependencies invalid")
    if not isinstance(config, Mapping):
        raise EvidenceFormatError("manifest config invalid")
    manifest = ImageManifest(
        enclavia_version=data["enclavia_version"],
        files=files,
        dependencies=tuple(deps),
        models=models,
        config=config,
    )
    # The digest must be computable: JSON parsers accept NaN/Infinity (and deep nesting) that canonical
    # JSON refuses, which would otherwise surface as a ValueError in every verifier that digests it.
    try:
        manifest.canonical()
    except (ValueError, TypeError, RecursionError):
        raise EvidenceFormatError("manifest is not canonical JSON") from None
    return manifest
