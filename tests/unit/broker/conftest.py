from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.broker_support import Harness, db_url, make_harness, pg_schemas

__all__ = ["db_url", "harness", "pg_schemas"]


@pytest.fixture
def harness(db_url: str, tmp_path: Path) -> Iterator[Harness]:
    h = make_harness(db_url, tmp_path)
    yield h
    h.service.close()
