"""Wycheproof X25519 (vectors/wycheproof, see its SOURCE.md) through the HPKE KEM layer.

Every case either computes Wycheproof's shared secret or, when that secret is all zero (low-order
public keys), is refused with InvalidPublicKeyError, as RFC 9180 section 7.1.4 requires.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from enclavia.crypto.hpke import DEFAULT_SUITE, KemPrivateKey, setup_base_recipient
from enclavia.errors import InvalidPublicKeyError

ZERO = bytes(32)


@pytest.fixture(scope="module")
def cases(vectors: Path) -> list[dict[str, Any]]:
    doc = json.loads((vectors / "wycheproof" / "x25519_test.json").read_text())
    assert doc["numberOfTests"] == 518
    return [t for g in doc["testGroups"] for t in g["tests"]]


def _expect_refusal(case: dict[str, Any]) -> bool:
    return bytes.fromhex(case["shared"]) == ZERO


def test_counts_match_source(cases: list[dict[str, Any]]) -> None:
    assert len(cases) == 518
    zero = [c for c in cases if _expect_refusal(c)]
    assert len(zero) == 31
    # Every all-zero case is flagged as such, and is never "valid".
    assert all("ZeroSharedSecret" in c["flags"] and c["result"] == "acceptable" for c in zero)


def test_exchange(cases: list[dict[str, Any]]) -> None:
    failures = []
    for c in cases:
        sk = KemPrivateKey.from_bytes(bytes.fromhex(c["private"]))
        public = bytes.fromhex(c["public"])
        try:
            shared = sk.exchange(public)
        except InvalidPublicKeyError:
            if not _expect_refusal(c):
                failures.append(c["tcId"])
            continue
        if _expect_refusal(c) or shared != bytes.fromhex(c["shared"]):
            failures.append(c["tcId"])
    assert failures == []


def test_decap_refuses_zero_shared_secret(cases: list[dict[str, Any]]) -> None:
    # The same low-order points used as an HPKE enc must stop SetupBaseR before any key is derived.
    zero = [c for c in cases if _expect_refusal(c)]
    for c in zero:
        sk = KemPrivateKey.from_bytes(bytes.fromhex(c["private"]))
        with pytest.raises(InvalidPublicKeyError):
            setup_base_recipient(DEFAULT_SUITE, bytes.fromhex(c["public"]), sk, b"")


def test_decap_accepts_valid_cases(cases: list[dict[str, Any]]) -> None:
    for c in cases:
        if c["result"] == "valid":
            sk = KemPrivateKey.from_bytes(bytes.fromhex(c["private"]))
            setup_base_recipient(DEFAULT_SUITE, bytes.fromhex(c["public"]), sk, b"")


@pytest.mark.parametrize("length", [0, 31, 33, 56])
def test_wrong_length_public_key(length: int) -> None:
    with pytest.raises(InvalidPublicKeyError):
        KemPrivateKey.generate().exchange(b"\x09" * length)
