"""crypto.pki ECDSA P-384/SHA-384 verification against Project Wycheproof (raw r||s and DER encodings)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from enclavia.crypto.pki import load_public_key, verify_ecdsa_p384
from enclavia.errors import SignatureInvalidError


def _cases(vectors: Path, name: str) -> list[tuple[bytes, dict[str, Any]]]:
    doc = json.loads((vectors / "wycheproof" / name).read_text(encoding="utf-8"))
    out = []
    for group in doc["testGroups"]:
        assert group["sha"] == "SHA-384"
        for t in group["tests"]:
            out.append((bytes.fromhex(group["publicKeyDer"]), t))
    assert len(out) == doc["numberOfTests"]
    return out


@pytest.mark.parametrize(
    ("name", "encoding"),
    [("ecdsa_secp384r1_sha384_p1363_test.json", "raw"), ("ecdsa_secp384r1_sha384_test.json", "der")],
)
def test_wycheproof(vectors: Path, name: str, encoding: str) -> None:
    failures = []
    counts = {"valid": 0, "invalid": 0}
    for key_der, t in _cases(vectors, name):
        key = load_public_key(key_der)
        msg, sig = bytes.fromhex(t["msg"]), bytes.fromhex(t["sig"])
        try:
            verify_ecdsa_p384(key, sig, msg, encoding=encoding)  # type: ignore[arg-type]
            ok = True
        except SignatureInvalidError:
            ok = False
        if t["result"] == "acceptable":
            continue
        counts[t["result"]] += 1
        if ok != (t["result"] == "valid"):
            failures.append((t["tcId"], t["comment"], t["result"]))
    assert not failures, failures[:10]
    assert counts["valid"] > 150 and counts["invalid"] > 80
