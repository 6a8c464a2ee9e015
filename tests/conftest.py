from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ENCLAVIA_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def vectors() -> Path:
    path = SHARED / "vectors"
    assert path.is_dir(), f"shared vectors not found at {path}"
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return SHARED / "data"
