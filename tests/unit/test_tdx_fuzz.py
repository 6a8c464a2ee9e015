"""Fuzz the TDX parser and verifier: only EnclaviaError subclasses escape, in bounded time."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enclavia.attestation.platforms.tdx.abi import parse_quote
from enclavia.attestation.platforms.tdx.verify import verify
from enclavia.errors import EnclaviaError
from tests.conftest import VECTORS

D = VECTORS / "tdx" / "dcap-qvl"
# A missing vector fails collection, not a silent empty corpus.
QUOTE = (D / "tdx_quote").read_bytes()
QUOTE_V5 = (D / "tdx_quote_outdated").read_bytes()
COLLATERAL = json.loads((D / "tdx_quote_collateral.json").read_bytes())
AT = datetime(2025, 6, 20, tzinfo=UTC)
FUZZ = settings(max_examples=300, deadline=500, suppress_health_check=[HealthCheck.too_slow])


def _mutate(base: bytes, edits: list[tuple[int, int]], cut: int | None, tail: bytes) -> bytes:
    b = bytearray(base)
    for pos, val in edits:
        b[pos % len(b)] = val
    out = bytes(b[:cut] if cut is not None else b)
    return out + tail


mutations = st.tuples(
    st.sampled_from([QUOTE, QUOTE_V5]),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=4),
    st.one_of(st.none(), st.integers(0, 6000)),
    st.binary(max_size=16),
)


@FUZZ
@given(st.binary(max_size=6000))
def test_parse_random_bytes(data: bytes) -> None:
    with contextlib.suppress(EnclaviaError):
        parse_quote(data)


@FUZZ
@given(mutations)
def test_parse_mutated_quotes(m: tuple[bytes, list[tuple[int, int]], int | None, bytes]) -> None:
    with contextlib.suppress(EnclaviaError):
        parse_quote(_mutate(*m))


@settings(max_examples=150, deadline=1000, suppress_health_check=[HealthCheck.too_slow])
@given(mutations)
def test_verify_mutated_quotes(m: tuple[bytes, list[tuple[int, int]], int | None, bytes]) -> None:
    with contextlib.suppress(EnclaviaError):
        verify(_mutate(*m), collateral=COLLATERAL, now=AT)


@settings(max_examples=100, deadline=1000, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(COLLATERAL)), st.text(max_size=200))
def test_verify_mutated_collateral(key: str, value: str) -> None:
    with contextlib.suppress(EnclaviaError):
        verify(QUOTE, collateral={**COLLATERAL, key: value}, now=AT)


def test_vectors_present() -> None:
    assert Path(D).is_dir() and QUOTE and QUOTE_V5
