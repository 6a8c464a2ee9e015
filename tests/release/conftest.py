"""Transparency-log fixtures: the log on SQLite and on PostgreSQL (random table prefix per test)."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from enclavia.crypto.signing import SigningKey
from enclavia.release.tlog import TransparencyLog
from tests.release.helpers import Authority

PG_URL = os.environ.get("ENCLAVIA_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


class Clock:
    def __init__(self, t: float = 1_790_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        self.t += 1.0
        return self.t


@pytest.fixture
def authority() -> Authority:
    return Authority()


@pytest.fixture
def log_key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tlog.db'}"
    return PG_URL


@pytest.fixture
def make_log(db_url: str, log_key: SigningKey, authority: Authority) -> Iterator[object]:
    made: list[TransparencyLog] = []
    prefix = f"t{secrets.token_hex(5)}_"

    def make(**kw: object) -> TransparencyLog:
        kw.setdefault("release_keys", [authority.release_key.public_bytes])
        try:
            log = TransparencyLog(
                db_url, kw.pop("key", log_key), prefix=str(kw.pop("prefix", prefix)), clock=Clock(), **kw
            )  # type: ignore[arg-type]
        except Exception as exc:  # PostgreSQL missing: fail loudly, never skip silently
            pytest.fail(f"transparency log store unavailable at {db_url}: {type(exc).__name__}")
        made.append(log)
        return log

    yield make
    for log in made:
        with contextlib.suppress(Exception):
            log.drop()
        log.dispose()
