"""Build documents: the enclave image manifest, its digest, the platform measurements beside it.

The manifest itself is collected by :mod:`enclavia.enclave.image` (the CLI wires the two); this module
only shapes, checks and reports on it, so there is one definition of what is measured.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import MappingProxyType
from typing import Any

from enclavia.attestation.claims import Tee
from enclavia.attestation.manifest import ImageManifest, canonical_json, parse_manifest
from enclavia.errors import EvidenceFormatError, ReleaseRecordInvalidError
from enclavia.release.tcb import import_report

BUILD_SCHEMA = "enclavia-build-v1"
MAX_BUILD_BYTES = 4 << 20


@dataclass(frozen=True)
class Build:
    """One build: the manifest, and per TEE the reference values a policy would pin for it."""

    manifest: ImageManifest
    # tee -> reference-shaped values (simulated/sev-snp: {"measurement"}, nitro: {"pcrs"}, tdx: {"mrtd",...})
    measurements: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # tee -> the inputs the measurement was computed from (digests of firmware, kernel, ...), for audit
    measurement_inputs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for tee in (*self.measurements, *self.measurement_inputs):
            Tee(tee)  # ValueError on an unknown TEE name: API misuse
        object.__setattr__(self, "measurements", MappingProxyType(dict(self.measurements)))
        object.__setattr__(self, "measurement_inputs", MappingProxyType(dict(self.measurement_inputs)))

    @property
    def manifest_digest(self) -> bytes:
        return self.manifest.digest()

    def with_measurement(self, tee: Tee, values: Mapping[str, Any], inputs: Mapping[str, Any]) -> Build:
        return Build(
            manifest=self.manifest,
            measurements={**self.measurements, str(tee): dict(values)},
            measurement_inputs={**self.measurement_inputs, str(tee): dict(inputs)},
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": BUILD_SCHEMA,
            "manifest_digest": self.manifest_digest.hex(),
            "manifest": self.manifest.to_json(),
            "measurements": {k: dict(v) for k, v in sorted(self.measurements.items())},
            "measurement_inputs": {k: dict(v) for k, v in sorted(self.measurement_inputs.items())},
        }

    def encode(self) -> bytes:
        return canonical_json(self.to_json())


def parse_build(data: bytes) -> Build:
    if len(data) > MAX_BUILD_BYTES:
        raise ReleaseRecordInvalidError("build document too large")
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ReleaseRecordInvalidError("build document is not JSON") from None
    keys = {"schema", "manifest_digest", "manifest", "measurements", "measurement_inputs"}
    if not isinstance(doc, dict) or set(doc) != keys or doc["schema"] != BUILD_SCHEMA:
        raise ReleaseRecordInvalidError("build document has the wrong shape")
    try:
        manifest = parse_manifest(doc["manifest"])
    except EvidenceFormatError:
        raise ReleaseRecordInvalidError("build manifest invalid") from None
    if doc["manifest_digest"] != manifest.digest().hex():
        raise ReleaseRecordInvalidError("manifest_digest does not match the manifest")
    meas, inputs = doc["measurements"], doc["measurement_inputs"]
    if not isinstance(meas, dict) or not isinstance(inputs, dict):
        raise ReleaseRecordInvalidError("measurements must be mappings")
    if not all(isinstance(v, dict) for v in (*meas.values(), *inputs.values())):
        raise ReleaseRecordInvalidError("measurements must be mappings")
    try:
        return Build(manifest=manifest, measurements=meas, measurement_inputs=inputs)
    except ValueError:
        raise ReleaseRecordInvalidError("measurement for an unknown TEE") from None


def load_build(path: Path) -> Build:
    try:
        data = path.read_bytes()
    except OSError:
        raise ReleaseRecordInvalidError("build document unreadable") from None
    return parse_build(data)


# -- trusted computing base report ---------------------------------------------------------------


def tcb_report(manifest: ImageManifest, package_root: Path) -> dict[str, Any]:
    """What a reviewer has to trust: measured files with line counts, and third-party distributions.

    ``package_root`` is the ``enclavia`` package directory the manifest was collected from.
    """
    files = []
    total = 0
    for rel, digest in sorted(manifest.files.items()):
        path = package_root / rel.removeprefix("enclavia/")
        lines = _count_lines(path) if path.suffix == ".py" else 0
        total += lines
        files.append({"path": rel, "sha256": digest, "lines": lines})
    deps = []
    for pin in sorted(manifest.dependencies):
        name, _, version = pin.partition("==")
        deps.append({"name": name, "version": version})
    return {
        "enclavia_version": manifest.enclavia_version,
        "manifest_digest": manifest.digest().hex(),
        "files": files,
        "file_count": len(files),
        "python_files": sum(1 for f in files if str(f["path"]).endswith(".py")),
        "enclavia_lines": total,
        "third_party": deps,
        "models": dict(sorted(manifest.models.items())),
        # What the measured code imports, followed through installed metadata (enclavia.release.tcb).
        "imports": import_report(manifest.files, package_root, manifest.dependencies),
        "categories": _categories(manifest),
    }


def _categories(manifest: ImageManifest) -> dict[str, Any]:
    """What is measured, by kind: the start check (enclavia.enclave.loaded) allows exactly these."""
    py = sum(1 for rel in manifest.files if rel.endswith(".py"))
    record_files = 0
    for pin in manifest.dependencies:
        try:
            record_files += len(metadata.distribution(pin.partition("==")[0]).files or [])
        except metadata.PackageNotFoundError:
            continue
    return {
        "enclavia_modules": {"count": py, "by": "sha256 of each file in the entry point's import closure"},
        "enclavia_data_files": {"count": len(manifest.files) - py, "by": "sha256, beside a measured module"},
        "third_party": {
            "distributions": len(manifest.dependencies),
            "record_files": record_files,
            "by": "name==version; a loaded file must be in a locked distribution's RECORD",
        },
        "standard_library": {"by": "location under the interpreter's stdlib directory (not by content)"},
        "process": manifest.config.get("process"),
        "models": {"count": len(manifest.models), "by": "sha256 of the bytes loaded"},
    }


def _count_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except OSError:
        return 0
