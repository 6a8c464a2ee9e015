"""The start check: every module this process has loaded is covered by its manifest.

Run after boot (all models and runtimes loaded) and before the enclave serves or asks the broker for a key.
A module with a file is covered when it is one of the manifest's enclavia files, a file of a distribution in
the manifest's dependency lock (its installed RECORD), or part of the interpreter's standard library. Anything
else (a ``sitecustomize.py`` the host dropped into ``site-packages``, a module on a host-chosen path, an
enclavia module outside the import closure) makes the enclave refuse to start.
"""

from __future__ import annotations

import sys
import sysconfig
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import metadata
from pathlib import Path
from types import ModuleType

import enclavia
from enclavia.attestation.manifest import ImageManifest


def _stdlib_dirs() -> tuple[Path, ...]:
    paths = sysconfig.get_paths()
    return tuple(Path(paths[k]).resolve() for k in ("stdlib", "platstdlib") if k in paths)


@cache
def _distribution_files(lock: tuple[str, ...]) -> frozenset[str]:
    """Absolute paths of every file in the RECORD of the locked distributions (one ``resolve`` per
    distribution, not per file: 40,000 files cost about 0.2 s)."""
    files: set[str] = set()
    for pin in lock:
        try:
            dist = metadata.distribution(pin.partition("==")[0])
        except metadata.PackageNotFoundError:
            continue
        base = f"{Path(str(dist.locate_file(''))).resolve()}/"
        files.update(base + str(f) for f in dist.files or [])
    return frozenset(files)


def _site_dirs() -> tuple[Path, ...]:
    paths = sysconfig.get_paths()
    return tuple(Path(paths[k]).resolve() for k in ("purelib", "platlib") if k in paths)


def category(path: Path, manifest: ImageManifest, root: Path) -> str | None:
    """``enclavia``, ``third_party`` or ``stdlib`` when ``path`` is covered, else None."""
    if path.is_relative_to(root):
        rel = "enclavia/" + path.relative_to(root).as_posix()
        return "enclavia" if rel in manifest.files else None
    if str(path) in _distribution_files(tuple(manifest.dependencies)):
        return "third_party"
    # site-packages sits inside the stdlib directory in some layouts: a file there must be a measured
    # distribution's, never "stdlib" by location.
    if any(path.is_relative_to(d) for d in _site_dirs()):
        return None
    if any(path.is_relative_to(d) for d in _stdlib_dirs()):
        return "stdlib"
    return None


def unmeasured(
    manifest: ImageManifest, modules: Mapping[str, ModuleType] | None = None, root: Path | None = None
) -> list[str]:
    """Names of loaded modules with a file that the manifest does not cover (sorted)."""
    root = (root or Path(enclavia.__file__).parent).resolve()
    out = []
    for name, module in list((modules if modules is not None else sys.modules).items()):
        file = getattr(module, "__file__", None)
        if not isinstance(file, str) or not Path(file).is_absolute():
            # built-in, frozen or namespace package (part of the interpreter), or a module object that
            # measured code made (torch.ops names "_ops.py"); isolated mode puts no relative path on sys.path
            continue
        if category(Path(file).resolve(), manifest, root) is None:
            out.append(name)
    return sorted(out)


def summary(names: Iterable[str]) -> str:
    """Content-free detail for the refusal event: module names are code identifiers, never request data."""
    names = list(names)
    return f"{len(names)} unmeasured: " + ",".join(names[:8])
