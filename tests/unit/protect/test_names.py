"""Person-name refinements (enclavia.protect.names): pure functions over candidate spans, no model needed."""

from __future__ import annotations

import pytest

from enclavia.protect.detect import Detector
from enclavia.protect.names import refine_names


def _found(text: str, spans: list[tuple[int, int, str, float]], etype: str = "PERSON") -> set[str]:
    return {text[s:e] for s, e, t, _ in refine_names(text, spans) if t == etype}


def test_honorific_and_role_context() -> None:
    assert "Quinzia Rossi" in _found("Please ask Ms. Quinzia Rossi to call.", [])
    assert "Lukas" in _found("I would like to remove my kid Lukas from the will.", [])
    assert "Boyle" in _found("What's your last name? Boyle", [])


def test_middle_initial_org_becomes_person() -> None:
    text = "I want to add Miki C Kristiansen as a beneficiary"
    s = text.index("Miki")
    assert _found(text, [(s, s + len("Miki C Kristiansen"), "ORGANIZATION", 0.8)]) == {"Miki C Kristiansen"}


def test_org_words_keep_organisations() -> None:
    text = "He listed his songs for Entertainment Weekly."
    s = text.index("Entertainment")
    spans = [(s, s + len("Entertainment Weekly"), "ORGANIZATION", 0.8)]
    assert _found(text, spans, "ORGANIZATION") == {"Entertainment Weekly"}


def test_same_surface_propagates() -> None:
    text = "My name is Christine Hertzog but everyone calls me Christine"
    s = text.index("Christine")
    found = _found(text, [(s, s + len("Christine Hertzog"), "PERSON", 0.8)])
    assert found == {"Christine Hertzog", "Christine"}


def test_dialogue_needs_two_turns() -> None:
    assert _found('Halldór: "Who are you?"\nHeather: "Her daughter."', []) >= {"Halldór", "Heather"}
    assert _found("Mission Statement: serve the community.", []) == set()


def test_firm_shaped_triple_is_not_split_into_people() -> None:
    text = "Tomomi works at Hawkins, Richardson and Santana"
    s = text.index("Santana")
    assert "Hawkins" not in _found(text, [(s, s + 7, "PERSON", 0.8)])


def test_job_title_under_a_letterhead_name() -> None:
    text = "Layla Gairbekov\n\nAccountant\n\nPersonal Info:\nPhone:\n51 516 33 75"
    assert _found(text, [(0, 15, "PERSON", 0.81)], "TITLE") == {"Accountant"}
    assert _found("I used to work for Acme as Dairy scientist, but quit.", [], "TITLE") == {"Dairy scientist"}


@pytest.mark.parametrize(
    ("text", "value", "etype"),
    [
        ("Maha Cazares\n3037 ul. Północna 73\n Apt. 946\n Suwałki", "Maha Cazares", "PERSON"),
        ("28030 Edeby 55\n Apt. 297\n TYSTBERGA\n Sweden 99178", "28030 Edeby 55", "STREET_ADDRESS"),
        ("Mr. Slepička flew to MÖNSTERÅS on Thursday morning.", "MÖNSTERÅS", "LOCATION"),
    ],
)
def test_detector_end_to_end(detector: Detector, text: str, value: str, etype: str) -> None:
    spans = detector.detect(text)
    assert any(text[s.start : s.end].startswith(value) and s.type == etype for s in spans), spans
