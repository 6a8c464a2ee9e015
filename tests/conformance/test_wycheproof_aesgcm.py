"""Wycheproof AES-GCM (vectors/wycheproof, see its SOURCE.md): the 96-bit-IV cases.

256-bit keys go through enclavia.crypto.aead (open) and the HPKE AEAD layer (seal and open); 128-bit keys
through the HPKE AEAD layer, since HPKE and OHTTP use AES-128-GCM too. Other IV sizes are not used by
anything in enclavia and are out of scope.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from enclavia.crypto import aead
from enclavia.crypto.hpke import AEAD_AES_128_GCM, AEAD_AES_256_GCM, aead_open, aead_seal
from enclavia.errors import DecryptionError


def _cases(vectors: Path, key_size: int) -> list[dict[str, Any]]:
    doc = json.loads((vectors / "wycheproof" / "aes_gcm_test.json").read_text())
    return [
        t
        for g in doc["testGroups"]
        if g["keySize"] == key_size and g["ivSize"] == 96 and g["tagSize"] == 128
        for t in g["tests"]
    ]


@pytest.fixture(scope="module")
def cases256(vectors: Path) -> list[dict[str, Any]]:
    return _cases(vectors, 256)


@pytest.fixture(scope="module")
def cases128(vectors: Path) -> list[dict[str, Any]]:
    return _cases(vectors, 128)


def _b(case: dict[str, Any], name: str) -> bytes:
    return bytes.fromhex(case[name])


def test_there_are_valid_and_invalid_cases(cases256: list[dict[str, Any]]) -> None:
    results = {c["result"] for c in cases256}
    assert results == {"valid", "invalid"}
    assert len(cases256) > 20


def test_aead_open_256(cases256: list[dict[str, Any]]) -> None:
    for c in cases256:
        blob = _b(c, "iv") + _b(c, "ct") + _b(c, "tag")
        if c["result"] == "valid":
            assert aead.open_(_b(c, "key"), blob, _b(c, "aad")) == _b(c, "msg"), c["tcId"]
        else:
            with pytest.raises(DecryptionError):
                aead.open_(_b(c, "key"), blob, _b(c, "aad"))


@pytest.mark.parametrize(("size", "aead_id"), [(256, AEAD_AES_256_GCM), (128, AEAD_AES_128_GCM)])
def test_hpke_aead_layer(vectors: Path, size: int, aead_id: int) -> None:
    for c in _cases(vectors, size):
        key, iv, aad = _b(c, "key"), _b(c, "iv"), _b(c, "aad")
        sealed = _b(c, "ct") + _b(c, "tag")
        if c["result"] == "valid":
            assert aead_seal(aead_id, key, iv, aad, _b(c, "msg")) == sealed, c["tcId"]
            assert aead_open(aead_id, key, iv, aad, sealed) == _b(c, "msg"), c["tcId"]
        else:
            with pytest.raises(DecryptionError):
                aead_open(aead_id, key, iv, aad, sealed)
