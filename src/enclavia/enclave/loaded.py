"""The start check: every module this process has loaded is covered by its manifest.

Run after boot (all models and runtimes loaded) and before the enclave serves or asks the broker for a key.
A module with a file is covered when it is one of the manifest's enclavia files, a file listed in the RECORD
of a distribution in the manifest's dependency lock whose content still has the hash that RECORD gives (the
RECORDs' digests are in the manifest), or part of the interpreter's standard library (by location). Anything
else (a ``sitecustomize.py`` the host dropped into ``site-packages``, a module on a host-chosen path, an
enclavia module outside the import closure) makes the enclave refuse to start.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib.abc
import importlib.machinery
import sys
import sysconfig
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import ModuleType

import enclavia
from enclavia.attestation.manifest import ImageManifest
from enclavia.enclave.image import Records


def _stdlib_dirs() -> tuple[Path, ...]:
    paths = sysconfig.get_paths()
    return tuple(Path(paths[k]).resolve() for k in ("stdlib", "platstdlib") if k in paths)


def _site_dirs() -> tuple[Path, ...]:
    paths = sysconfig.get_paths()
    return tuple(Path(paths[k]).resolve() for k in ("purelib", "platlib") if k in paths)


def _matches_record(path: Path, want: str) -> bool:
    try:
        got = base64.urlsafe_b64encode(hashlib.sha256(path.read_bytes()).digest()).rstrip(b"=").decode()
    except OSError:
        return False
    return hmac.compare_digest(got, want)


def category(path: Path, manifest: ImageManifest, root: Path, records: Records) -> str | None:
    """``enclavia``, ``third_party`` or ``stdlib`` when ``path`` is covered, else None. A third-party file
    must be in a measured RECORD and hash to the value that RECORD gives."""
    if path.is_relative_to(root):
        rel = "enclavia/" + path.relative_to(root).as_posix()
        return "enclavia" if rel in manifest.files else None
    want = records.hashes.get(str(path))
    if want is not None:
        return "third_party" if _matches_record(path, want) else None
    # site-packages sits inside the stdlib directory in some layouts: a file there must be a measured
    # distribution's, never "stdlib" by location.
    if any(path.is_relative_to(d) for d in _site_dirs()):
        return None
    if any(path.is_relative_to(d) for d in _stdlib_dirs()):
        return "stdlib"
    return None


def unmeasured(
    manifest: ImageManifest,
    records: Records,
    modules: Mapping[str, ModuleType] | None = None,
    root: Path | None = None,
) -> list[str]:
    """Names of loaded modules with a file that the manifest does not cover (sorted). ``records``: the
    snapshot whose digests are in the manifest (enclavia.enclave.image.read_records)."""
    root = (root or Path(enclavia.__file__).parent).resolve()
    out = []
    for name, module in list((modules if modules is not None else sys.modules).items()):
        file = getattr(module, "__file__", None)
        if not isinstance(file, str) or not Path(file).is_absolute():
            # built-in, frozen or namespace package (part of the interpreter), or a module object that
            # measured code made (torch.ops names "_ops.py"); isolated mode puts no relative path on sys.path
            continue
        if category(Path(file).resolve(), manifest, root, records) is None:
            out.append(name)
    return sorted(out)


def summary(names: Iterable[str]) -> str:
    """Content-free detail for the refusal event: module names are code identifiers, never request data."""
    names = list(names)
    return f"{len(names)} unmeasured: " + ",".join(names[:8])


class MeasuredImportGuard(importlib.abc.MetaPathFinder):
    """After the start check: an import whose file the manifest does not cover fails with ImportError (the
    request that triggered it fails closed) instead of running unmeasured code."""

    def __init__(self, manifest: ImageManifest, records: Records, root: Path | None = None) -> None:
        self.manifest, self.records = manifest, records
        self.root = (root or Path(enclavia.__file__).parent).resolve()

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is None:
                continue
            if not self._covered(spec):
                raise ImportError("module outside the enclave's measurement")
            return spec
        return None

    def _covered(self, spec: importlib.machinery.ModuleSpec) -> bool:
        origin = spec.origin
        if not (spec.has_location and origin and Path(origin).is_absolute()):
            return True  # built-in, frozen, namespace: part of the interpreter
        return category(Path(origin).resolve(), self.manifest, self.root, self.records) is not None


def guard_imports(manifest: ImageManifest, records: Records) -> MeasuredImportGuard:
    guard = MeasuredImportGuard(manifest, records)
    sys.meta_path.insert(0, guard)
    return guard
