from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Vendor evidence and standard vectors, copied in with their SOURCE.md (see tests/assets/README.md).
# Modules that need a vector at collection time (parametrize lists) import VECTORS; tests take the fixture.
ASSETS = REPO / "tests" / "assets"
VECTORS = ASSETS / "vectors"
SHARED = ASSETS  # the old root (../shared: same vectors/ and data/ layout), kept so older tests still work


@pytest.fixture(scope="session")
def vectors() -> Path:
    assert VECTORS.is_dir(), f"test vectors not found at {VECTORS}"
    return VECTORS


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Labelled data sets (tests/assets/data: the presidio-research PII corpus, see its SOURCE.md)."""
    path = ASSETS / "data"
    assert path.is_dir(), f"test data not found at {path}: copy the set, with its SOURCE.md, in there"
    return path
