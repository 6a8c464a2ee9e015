"""Replay the committed seed corpus (tests/fuzz/corpus/<target>/) through every parser's fuzz target.

``valid-*`` inputs must be accepted; every other input (``real-*`` vendor evidence used out of its
context, ``attack-*`` hand-made hostile inputs, ``mut-*`` mutations) may be accepted or refused, but only
with the exceptions the parser documents (tests/fuzz/targets.py). Each input must also finish quickly.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.fuzz.targets import TARGETS, run_target

CORPUS = Path(__file__).parent / "corpus"
FILES = sorted(p for p in CORPUS.rglob("*") if p.is_file())
PER_INPUT_S = 2.0


def test_every_target_has_a_corpus() -> None:
    have = {p.parent.name for p in FILES}
    assert have == set(TARGETS), set(TARGETS) ^ have
    for name in TARGETS:
        kinds = {p.name.split("-", 1)[0] for p in FILES if p.parent.name == name}
        assert "mut" in kinds and kinds & {"valid", "real"}, name


@pytest.mark.parametrize("path", FILES, ids=[f"{p.parent.name}/{p.name}" for p in FILES])
def test_replay(path: Path) -> None:
    target = TARGETS[path.parent.name]
    start = time.perf_counter()
    accepted = run_target(target, path.read_bytes())
    assert time.perf_counter() - start < PER_INPUT_S
    if path.name.startswith("valid-"):
        assert accepted, "a valid seed was refused"
    if path.name.startswith("attack-"):
        assert not accepted, "a hostile seed was accepted"
