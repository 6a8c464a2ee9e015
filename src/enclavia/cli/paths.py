"""Default locations (overridable by ENCLAVIA_HOME and flags)."""

from __future__ import annotations

import os
from pathlib import Path


def state_dir() -> Path:
    return Path(os.environ.get("ENCLAVIA_HOME", ".enclavia"))


def sim_dir() -> Path:
    return state_dir() / "sim"


def default_model_dir() -> Path:
    return Path(os.environ.get("ENCLAVIA_MODEL_DIR", "build/models"))


def default_policy() -> Path:
    return state_dir() / "dev-policy.yaml"
