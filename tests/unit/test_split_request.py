"""Split-mode request parsing: strict shape, bounded numbers, declared identifiers; no input echoed."""

from __future__ import annotations

from typing import Any

import pytest

from enclavia.enclave.split import parse_identifiers, parse_request
from enclavia.errors import BadRequestError

OK: dict[str, Any] = {"model": "gpu-box", "messages": [{"role": "user", "content": "Hello Jane Roe"}]}


def test_parse_minimal_and_full() -> None:
    assert parse_request(OK) == ("gpu-box", [{"role": "user", "content": "Hello Jane Roe"}], {}, "default")
    full = {**OK, "max_tokens": 32, "temperature": 0.5, "top_p": 1, "seed": 7, "conversation": "c-1"}
    provider, _, params, conversation = parse_request(full)
    assert params == {"max_tokens": 32, "temperature": 0.5, "top_p": 1, "seed": 7}
    assert (provider, conversation) == ("gpu-box", "c-1")


@pytest.mark.parametrize(
    "change",
    [
        {"stream": True},
        {"model": "Jane Roe"},
        {"messages": []},
        {"messages": [{"role": "tool", "content": "Jane Roe"}]},
        {"messages": [{"role": "user", "content": "Jane Roe", "name": "x"}]},
        {"max_tokens": 0},
        {"max_tokens": 1.5},
        {"temperature": 3},
        {"top_p": True},
        {"conversation": "Jane Roe"},
        {"functions": []},
    ],
)
def test_refused_shapes_do_not_echo(change: dict[str, Any]) -> None:
    with pytest.raises(BadRequestError) as info:
        parse_request({**OK, **change})
    assert "Jane" not in str(info.value)


def test_identifiers() -> None:
    assert parse_identifiers(None) == []
    got = parse_identifiers([{"type": "PERSON", "value": " Jane Roe "}, {"type": "MRN", "value": "00482913"}])
    assert got == [("PERSON", "Jane Roe"), ("MRN", "00482913")]
    for bad in (
        [{"type": "NAME", "value": "Jane Roe"}],
        [{"type": "PERSON", "value": "J"}],
        [{"type": "PERSON"}],
        [{"type": "PERSON", "value": "Jane Roe", "x": 1}],
        {"type": "PERSON", "value": "Jane Roe"},
        [{"type": "PERSON", "value": "Jane Roe"}] * 65,
    ):
        with pytest.raises(BadRequestError) as info:
            parse_identifiers(bad)
        assert "Jane" not in str(info.value)
