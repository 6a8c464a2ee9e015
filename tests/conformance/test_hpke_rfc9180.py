"""RFC 9180 base-mode vectors (vectors/hpke, see its SOURCE.md) through enclavia.crypto.hpke."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from enclavia.crypto.hpke import KemPrivateKey, Suite, setup_base_recipient, setup_base_sender
from enclavia.errors import DecryptionError

AEAD_IDS = [1, 2, 3]


def _load(vectors: Path) -> dict[int, dict[str, Any]]:
    entries = json.loads((vectors / "hpke" / "rfc9180_base_x25519_hkdfsha256.json").read_text())
    return {e["aead_id"]: e for e in entries}


@pytest.fixture(scope="module")
def hpke_vectors(vectors: Path) -> dict[int, dict[str, Any]]:
    return _load(vectors)


def h(x: str) -> bytes:
    return bytes.fromhex(x)


def _suite(v: dict[str, Any]) -> Suite:
    return Suite(v["kem_id"], v["kdf_id"], v["aead_id"])


def test_vector_file_is_the_documented_set(hpke_vectors: dict[int, dict[str, Any]]) -> None:
    # SOURCE.md: one entry per AEAD, base mode, 257 encryptions and 3 exports each.
    assert sorted(hpke_vectors) == AEAD_IDS
    for v in hpke_vectors.values():
        assert (v["mode"], v["kem_id"], v["kdf_id"]) == (0, 0x20, 1)
        assert len(v["encryptions"]) == 257
        assert len(v["exports"]) == 3


@pytest.mark.parametrize("aead_id", AEAD_IDS)
def test_derive_key_pair(hpke_vectors: dict[int, dict[str, Any]], aead_id: int) -> None:
    v = hpke_vectors[aead_id]
    sk_r = KemPrivateKey.derive(h(v["ikmR"]))
    sk_e = KemPrivateKey.derive(h(v["ikmE"]))
    assert sk_r.private_bytes() == h(v["skRm"])
    assert sk_r.public_bytes() == h(v["pkRm"])
    assert sk_e.private_bytes() == h(v["skEm"])
    assert sk_e.public_bytes() == h(v["pkEm"])


@pytest.mark.parametrize("aead_id", AEAD_IDS)
def test_sender_enc_and_all_encryptions(hpke_vectors: dict[int, dict[str, Any]], aead_id: int) -> None:
    v = hpke_vectors[aead_id]
    enc, ctx = setup_base_sender(_suite(v), h(v["pkRm"]), h(v["info"]), ikm_e=h(v["ikmE"]))
    assert enc == h(v["enc"]) == h(v["pkEm"])
    # One context, in order: encryption i uses sequence number i (nonce = base_nonce XOR i).
    for i, e in enumerate(v["encryptions"]):
        assert ctx.seal(h(e["aad"]), h(e["pt"])) == h(e["ct"]), f"encryption {i}"


@pytest.mark.parametrize("aead_id", AEAD_IDS)
def test_sender_with_injected_ephemeral_key(hpke_vectors: dict[int, dict[str, Any]], aead_id: int) -> None:
    v = hpke_vectors[aead_id]
    sk_e = KemPrivateKey.from_bytes(h(v["skEm"]))
    enc, ctx = setup_base_sender(_suite(v), h(v["pkRm"]), h(v["info"]), sk_e=sk_e)
    assert enc == h(v["enc"])
    first = v["encryptions"][0]
    assert ctx.seal(h(first["aad"]), h(first["pt"])) == h(first["ct"])


@pytest.mark.parametrize("aead_id", AEAD_IDS)
def test_recipient_opens_all_encryptions(hpke_vectors: dict[int, dict[str, Any]], aead_id: int) -> None:
    v = hpke_vectors[aead_id]
    sk_r = KemPrivateKey.from_bytes(h(v["skRm"]))
    ctx = setup_base_recipient(_suite(v), h(v["enc"]), sk_r, h(v["info"]))
    for i, e in enumerate(v["encryptions"]):
        assert ctx.open(h(e["aad"]), h(e["ct"])) == h(e["pt"]), f"encryption {i}"


@pytest.mark.parametrize("aead_id", AEAD_IDS)
def test_exports_on_both_sides(hpke_vectors: dict[int, dict[str, Any]], aead_id: int) -> None:
    v = hpke_vectors[aead_id]
    _, sender = setup_base_sender(_suite(v), h(v["pkRm"]), h(v["info"]), ikm_e=h(v["ikmE"]))
    recipient = setup_base_recipient(_suite(v), h(v["enc"]), KemPrivateKey.derive(h(v["ikmR"])), h(v["info"]))
    for x in v["exports"]:
        want = h(x["exported_value"])
        assert sender.export(h(x["exporter_context"]), x["L"]) == want
        assert recipient.export(h(x["exporter_context"]), x["L"]) == want


@pytest.mark.parametrize("aead_id", AEAD_IDS)
def test_out_of_order_open_fails_and_keeps_sequence(
    hpke_vectors: dict[int, dict[str, Any]], aead_id: int
) -> None:
    v = hpke_vectors[aead_id]
    ctx = setup_base_recipient(_suite(v), h(v["enc"]), KemPrivateKey.from_bytes(h(v["skRm"])), h(v["info"]))
    e0, e1 = v["encryptions"][0], v["encryptions"][1]
    with pytest.raises(DecryptionError):
        ctx.open(h(e1["aad"]), h(e1["ct"]))
    # A failed open does not advance the sequence number (RFC 9180 section 5.2).
    assert ctx.open(h(e0["aad"]), h(e0["ct"])) == h(e0["pt"])


@pytest.mark.parametrize("aead_id", AEAD_IDS)
def test_wrong_info_fails(hpke_vectors: dict[int, dict[str, Any]], aead_id: int) -> None:
    v = hpke_vectors[aead_id]
    ctx = setup_base_recipient(_suite(v), h(v["enc"]), KemPrivateKey.from_bytes(h(v["skRm"])), b"other")
    e0 = v["encryptions"][0]
    with pytest.raises(DecryptionError):
        ctx.open(h(e0["aad"]), h(e0["ct"]))


@pytest.mark.parametrize("aead_id", AEAD_IDS)
def test_interop_with_pyhpke(aead_id: int) -> None:
    # An independent implementation (dev dependency): both directions with fresh random keys.
    import pyhpke

    suite = Suite(0x20, 1, aead_id)
    theirs = pyhpke.CipherSuite.new(pyhpke.KEMId(0x20), pyhpke.KDFId(1), pyhpke.AEADId(aead_id))
    info, aad, pt = b"interop", b"aad", os.urandom(100)

    ours_r = KemPrivateKey.generate()
    pk_r = theirs.kem.deserialize_public_key(ours_r.public_bytes())
    enc, sender = theirs.create_sender_context(pk_r, info)
    assert setup_base_recipient(suite, enc, ours_r, info).open(aad, sender.seal(pt, aad)) == pt

    their_kp = theirs.kem.derive_key_pair(os.urandom(32))
    enc, ours_s = setup_base_sender(suite, their_kp.public_key.to_public_bytes(), info)
    recipient = theirs.create_recipient_context(enc, their_kp.private_key, info)
    assert recipient.open(ours_s.seal(aad, pt), aad) == pt
    assert recipient.export(b"ctx", 32) == ours_s.export(b"ctx", 32)
