from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from enclavia.cli.main import app
from enclavia.protect import detect as detect_module


def test_pii_detect_json_offsets() -> None:
    text = "Patient MRN: 00123456, card 4111 1111 1111 1111, age 93."
    result = CliRunner().invoke(app, ["pii", "detect", "--json"], input=text)
    assert result.exit_code == 0, result.output
    spans = json.loads(result.output)
    assert all(set(s) == {"start", "end", "type", "entity_type", "score"} for s in spans)
    by_type = {s["type"]: text[s["start"] : s["end"]] for s in spans}
    assert by_type["MRN"] == "00123456"
    assert by_type["CREDIT_CARD"] == "4111 1111 1111 1111"
    assert by_type["AGE_OVER_89"] == "93"
    presidio = {s["type"]: s["entity_type"] for s in spans}
    assert presidio == {"MRN": "ID", "CREDIT_CARD": "CREDIT_CARD", "AGE_OVER_89": "AGE"}


def test_pii_detect_jsonl_batch_loads_the_model_once(monkeypatch: pytest.MonkeyPatch) -> None:
    loads = []
    real_init = detect_module.Detector.__init__

    def counting_init(self: detect_module.Detector, *args: object, **kwargs: object) -> None:
        loads.append(1)
        real_init(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(detect_module.Detector, "__init__", counting_init)
    texts = ["SSN 123-45-6789, call 787-555-0142", "Patient: Okonkwo, Rosa\nMRN: 00482913", "no PHI here"]
    lines = [
        json.dumps(texts[0]),
        json.dumps({"id": "n2", "text": texts[1]}),
        "",
        json.dumps({"text": texts[2]}),
    ]
    result = CliRunner().invoke(app, ["pii", "detect", "--jsonl"], input="\n".join(lines) + "\n")
    assert result.exit_code == 0, result.output
    assert loads == [1]
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [r["id"] for r in rows] == [1, "n2", 4]
    first = {texts[0][s["start"] : s["end"]]: s["entity_type"] for s in rows[0]["spans"]}
    assert first == {"123-45-6789": "US_SSN", "787-555-0142": "PHONE_NUMBER"}
    second = {texts[1][s["start"] : s["end"]]: (s["type"], s["entity_type"]) for s in rows[1]["spans"]}
    assert second == {"Okonkwo, Rosa": ("PERSON", "PERSON"), "00482913": ("MRN", "ID")}
    assert rows[2]["spans"] == []


@pytest.mark.parametrize("bad", ["not json", json.dumps({"id": 1}), json.dumps([1, 2])])
def test_pii_detect_jsonl_rejects_bad_lines_without_echoing_them(bad: str) -> None:
    result = CliRunner().invoke(app, ["pii", "detect", "--jsonl"], input=f'"fine"\n{bad}\n')
    assert result.exit_code == 2
    assert "line 2" in result.output
    assert bad not in result.output
