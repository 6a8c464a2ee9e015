"""The clinical-note generator and the character-level scorer of benchmarks/pii_accuracy.py."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[3] / "benchmarks"


@pytest.fixture(scope="module")
def modules() -> Iterator[tuple[ModuleType, ModuleType]]:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module("clinical_notes"), importlib.import_module("pii_accuracy")
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_generator_is_deterministic_and_labels_exact_offsets(modules: tuple[ModuleType, ModuleType]) -> None:
    notes, _ = modules
    first, again = notes.generate("dev", 24), notes.generate("dev", 24)
    assert first == again
    assert notes.generate("dev", 6, seed=1) != notes.generate("dev", 6, seed=0)
    kinds = {str(r["template_id"]).rsplit("-", 1)[0] for r in first}
    assert kinds == set(notes.NOTE_TYPES)
    for rec in first:
        for span in rec["spans"]:
            assert rec["full_text"][span["start_position"] : span["end_position"]] == span["entity_value"]
            assert span["entity_type"] in (*notes.CATEGORIES, "PROFESSION")
    with pytest.raises(ValueError, match="split"):
        notes.generate("test", 1)


def test_splits_share_no_names_and_no_templates(modules: tuple[ModuleType, ModuleType]) -> None:
    notes, _ = modules
    dev, held = notes.generate("dev", 60), notes.generate("held-out", 60)

    def names(records: list[dict[str, object]]) -> set[str]:
        return {
            word.strip(",.").lower()
            for r in records
            for s in r["spans"]  # type: ignore[attr-defined]
            if s["entity_type"] == "NAME"
            for word in str(s["entity_value"]).split()
            if len(word.strip(",.")) > 2
        }

    assert not names(dev) & names(held)
    assert {r["template_id"] for r in dev}.isdisjoint({r["template_id"] for r in held})


def test_char_tally_counts_characters_not_spans(modules: tuple[ModuleType, ModuleType]) -> None:
    _, bench = modules
    text = "Name: Ana Lima, nurse, MRN 12345 Results"
    gold = [(6, 14, "NAME"), (16, 21, "PROFESSION"), (27, 32, "MRN")]
    # Half the name, the whole MRN, the profession (neutral) and a header (false positive).
    pred = [(6, 9, "PERSON"), (16, 21, "TITLE"), (27, 32, "MRN"), (33, 40, "PERSON")]
    tally = bench.CharTally()
    tally.add(text, gold, pred)
    recall, precision, span_recall, span_precision = tally.overall()
    assert tally.gold == {"NAME": 7, "MRN": 5}  # "Ana Lima," less the space; the profession is not counted
    assert recall == pytest.approx((3 + 5) / 12)
    assert precision == pytest.approx(8 / (3 + 5 + 7))
    assert span_recall == 1.0 and span_precision == pytest.approx(2 / 3)


def test_presidio_data_default_prefers_the_repository(modules: tuple[ModuleType, ModuleType]) -> None:
    _, bench = modules
    path = bench.default_presidio_data()
    assert path.name == "synth_dataset_v2.json"
    assert path.parent.name == "pii"
