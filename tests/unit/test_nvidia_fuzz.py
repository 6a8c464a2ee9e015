"""Fuzz the NVIDIA SPDM parser, verifier and evidence-list reader: only EnclaviaError escapes, fast."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enclavia.attestation.platforms.nvidia.abi import parse_report
from enclavia.attestation.platforms.nvidia.verify import verify, verify_evidence_list
from enclavia.crypto.pki import ChainCache
from enclavia.errors import EnclaviaError
from tests.conftest import VECTORS
from tests.tee_vectors import read_evidence

D = VECTORS / "nvidia" / "nvtrust"
REPORT = read_evidence(D / "hopperAttestationReport.txt")
CHAIN = (D / "hopperCertChain.pem").read_bytes()
PPCIE = json.loads((D / "ppcie_gpu_evidence_8xH100.json").read_bytes())
AT = datetime(2025, 1, 1, tzinfo=UTC)
CACHE = ChainCache()
FUZZ = settings(max_examples=300, deadline=500, suppress_health_check=[HealthCheck.too_slow])

mutations = st.tuples(
    st.lists(st.tuples(st.integers(0, 5000), st.integers(0, 255)), max_size=4),
    st.one_of(st.none(), st.integers(0, 4200)),
    st.binary(max_size=8),
)


def _mutate(edits: list[tuple[int, int]], cut: int | None, tail: bytes) -> bytes:
    b = bytearray(REPORT)
    for pos, val in edits:
        b[pos % len(b)] = val
    return bytes(b[:cut] if cut is not None else b) + tail


@FUZZ
@given(st.binary(max_size=5000))
def test_parse_random_bytes(data: bytes) -> None:
    with contextlib.suppress(EnclaviaError):
        parse_report(data)


@FUZZ
@given(st.binary(min_size=37, max_size=200))
def test_parse_valid_request_random_response(tail: bytes) -> None:
    with contextlib.suppress(EnclaviaError):
        parse_report(REPORT[:37] + tail)


@FUZZ
@given(mutations)
def test_parse_mutated(m: tuple[list[tuple[int, int]], int | None, bytes]) -> None:
    with contextlib.suppress(EnclaviaError):
        parse_report(_mutate(*m))


@settings(max_examples=150, deadline=1000, suppress_health_check=[HealthCheck.too_slow])
@given(mutations)
def test_verify_mutated(m: tuple[list[tuple[int, int]], int | None, bytes]) -> None:
    with contextlib.suppress(EnclaviaError):
        verify(_mutate(*m), cert_chain_pem=CHAIN, nonce=None, now=AT, cache=CACHE)


@settings(max_examples=100, deadline=1000, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(CHAIN) - 1), st.integers(0, 255))
def test_verify_mutated_chain(pos: int, val: int) -> None:
    chain = bytearray(CHAIN)
    chain[pos] = val
    with contextlib.suppress(EnclaviaError):
        verify(REPORT, cert_chain_pem=bytes(chain), nonce=None, now=AT)


@settings(max_examples=100, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(PPCIE[0])), st.one_of(st.text(max_size=50), st.integers(), st.none()))
def test_evidence_list_mutated(key: str, value: object) -> None:
    with contextlib.suppress(EnclaviaError):
        verify_evidence_list(json.dumps([{**PPCIE[0], key: value}]).encode(), nonce=None, now=AT, cache=CACHE)
