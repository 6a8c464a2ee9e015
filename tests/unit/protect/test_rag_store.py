"""Encrypted store: ciphertext only in blobs, tenant isolation, rotation by rewrap, segments."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from enclavia.crypto import aead
from enclavia.errors import SecretsUnavailableError
from enclavia.rag import store as store_mod
from enclavia.rag.blobstore import MemoryBlobStore
from enclavia.rag.keys import KeyRing, StaticKekSource
from enclavia.rag.store import DocumentStore, chunk_text

DIM = 32


def embed(texts: list[str]) -> np.ndarray:
    # Deterministic bag-of-words hashing embedding: similar words, similar vectors.
    out = np.zeros((len(texts), DIM), dtype=np.float32)
    for i, t in enumerate(texts):
        for w in t.lower().split():
            # zlib.crc32, not hash(): str hashing is salted per process (PYTHONHASHSEED).
            out[i, zlib.crc32(w.encode()) % DIM] += 1.0
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def make(
    keks: StaticKekSource, blobs: MemoryBlobStore | None = None
) -> tuple[DocumentStore, MemoryBlobStore]:
    blobs = blobs or MemoryBlobStore()
    return DocumentStore(blobs, KeyRing(blobs, keks), embed, DIM), blobs


def test_ciphertext_only_and_tenant_isolation() -> None:
    keks = StaticKekSource({"k1": aead.generate_key()}, "k1")
    st, blobs = make(keks)
    st.ingest("tenant-a", [("a1", "title-a", "alpha canary-aaaa cardiology note")])
    st.ingest("tenant-b", [("b1", "title-b", "beta canary-bbbb oncology note")])
    for name, blob in blobs.blobs.items():
        assert b"canary" not in blob and b"tenant" not in blob and b"cardiology" not in blob, name
        assert "tenant" not in name  # names are HMAC hex (a short id like "a1" can occur in hex by chance)
    hits = st.query("tenant-a", "oncology canary-bbbb", k=5)
    assert [h.document_id for h in hits] == ["a1"]
    assert st.query("tenant-a", "oncology", k=5, document_ids=frozenset({"b1"})) == []


def test_rotation_rewraps_without_touching_bodies() -> None:
    keks = StaticKekSource({"k1": aead.generate_key()}, "k1")
    st, blobs = make(keks)
    st.ingest("t", [("d1", "", "first document about kidneys"), ("d2", "", "second about lungs")])
    bodies = {n: b for n, b in blobs.blobs.items() if n != "keyring"}
    old = keks.keks["k1"]
    keks.keks["k2"] = aead.generate_key()
    keks.current_id = "k2"
    assert st.keys.rotate() > 0
    assert {n: b for n, b in blobs.blobs.items() if n != "keyring"} == bodies  # no body re-encrypted
    assert st.keys.check_unwraps("k2", keks.keks["k2"])
    assert not st.keys.check_unwraps("k1", old)  # old KEK opens nothing any more
    # A fresh enclave holding only the new KEK retrieves everything.
    fresh, _ = make(StaticKekSource({"k2": keks.keks["k2"]}, "k2"), blobs)
    assert fresh.query("t", "kidneys", k=1)[0].document_id == "d1"
    # And one holding only the old KEK cannot even open the keyring.
    with pytest.raises(SecretsUnavailableError):
        make(StaticKekSource({"k1": old}, "k1"), blobs)


def test_segments_and_unlock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_mod, "SEGMENT_ROWS", 3)
    keks = StaticKekSource({"k1": aead.generate_key()}, "k1")
    st, blobs = make(keks)
    for i in range(4):
        st.ingest("t", [(f"d{i}", "", f"document number {i} word{i} word{i}"), (f"e{i}", "", f"extra {i}")])
    assert st.count("t") == 8 and len(blobs.list("s/")) == 3
    st.forget()
    assert st.count("t") == 8
    assert st.query("t", "word2 word2", k=1)[0].document_id == "d2"


def test_chunking() -> None:
    text = ("Sentence one is here. " * 100).strip()
    chunks = chunk_text(text, size=200, overlap=20)
    assert all(len(c) <= 200 for c in chunks) and len(chunks) > 5
    assert chunk_text("  ") == []
