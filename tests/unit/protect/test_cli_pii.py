from __future__ import annotations

import json

from typer.testing import CliRunner

from enclavia.cli.main import app


def test_pii_detect_json_offsets() -> None:
    text = "Patient MRN: 00123456, card 4111 1111 1111 1111, age 93."
    result = CliRunner().invoke(app, ["pii", "detect", "--json"], input=text)
    assert result.exit_code == 0, result.output
    spans = json.loads(result.output)
    assert all(set(s) == {"start", "end", "type", "score"} for s in spans)
    by_type = {s["type"]: text[s["start"] : s["end"]] for s in spans}
    assert by_type["MRN"] == "00123456"
    assert by_type["CREDIT_CARD"] == "4111 1111 1111 1111"
    assert by_type["AGE_OVER_89"] == "93"
