"""Encrypted document store and vector index, per tenant. Everything it writes is ciphertext.

Layout in the blob store (names are HMACs under the naming DEK, so they reveal no tenant or document id):

- ``c/<hmac(tenant, doc, n)>``   chunk n of a document: AES-256-GCM under the document's DEK,
                                 AAD = tenant | document | n.
- ``s/<hmac(tenant, seg, k)>``   index segment k of a tenant: up to SEGMENT_ROWS embeddings
(float32) and their
                                 chunk references, AES-256-GCM under the tenant's index DEK, AAD = tenant | k.
- ``m/<hmac(tenant, meta)>``     the tenant's segment count, sealed like a segment.
- ``keyring``                    wrapped DEKs (enclavia.rag.keys).

Search is exact cosine similarity (normalised vectors, one matrix-vector product) over the tenant's own index
only: a tenant's query never touches another tenant's segments, and document ids are resolved inside the
tenant's namespace, so another tenant's ids simply do not exist there.
"""

from __future__ import annotations

import json
import re
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from enclavia.crypto import aead
from enclavia.rag.blobstore import BlobStore
from enclavia.rag.keys import KeyRing

__all__ = ["Chunk", "DocumentStore", "Hit", "chunk_text"]

SEGMENT_ROWS: Final = 4096
CHUNK_CHARS: Final = 800
CHUNK_OVERLAP: Final = 100
Embed = Callable[[list[str]], npt.NDArray[np.float32]]


def _lp(*parts: str | int) -> bytes:
    out = bytearray()
    for p in parts:
        raw = str(p).encode()
        out += struct.pack(">I", len(raw)) + raw
    return bytes(out)


_BREAK = re.compile(r"(?<=[.!?\n])\s+")


def chunk_text(text: str, size: int = CHUNK_CHARS, overlap: int = CHUNK_OVERLAP) -> list[str]:
    """Split at sentence ends where possible, into pieces of at most ``size`` characters."""
    text = text.strip()
    if len(text) <= size:
        return [text] if text else []
    chunks: list[str] = []
    start = 0
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text):
            cut = max((m.end() for m in _BREAK.finditer(text, start + size // 2, end)), default=end)
            end = cut
        chunks.append(text[start:end].strip())
        if end >= len(text):
            break
        start = max(end - overlap, start + 1)
    return [c for c in chunks if c]


@dataclass(frozen=True)
class Chunk:
    document_id: str
    n: int
    text: str


@dataclass(frozen=True)
class Hit:
    document_id: str
    n: int
    score: float
    text: str
    title: str


@dataclass
class _Index:
    vectors: npt.NDArray[np.float32]  # (rows, dim), normalised
    refs: list[tuple[str, int, str]]  # (document id, chunk n, title) per row
    segments: int
    unlock_ms: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


class DocumentStore:
    def __init__(self, blobs: BlobStore, keys: KeyRing, embed: Embed, dim: int) -> None:
        self.blobs = blobs
        self.keys = keys
        self.embed = embed
        self.dim = dim
        self._indexes: dict[str, _Index] = {}
        self._lock = threading.Lock()

    # -- keys and names ------------------------------------------------------------------------------

    def _index_dek(self, tenant: str) -> bytes:
        dek = self.keys.dek("i-" + self.keys.name("index-dek", tenant))
        assert dek is not None
        return dek

    def _doc_dek(self, tenant: str, doc: str, create: bool, persist: bool = True) -> bytes | None:
        return self.keys.dek("d-" + self.keys.name("doc-dek", tenant, doc), create=create, persist=persist)

    # -- index persistence ---------------------------------------------------------------------------

    def _seal_segment(
        self, tenant: str, k: int, vectors: npt.NDArray[np.float32], refs: list[tuple[str, int, str]]
    ) -> None:
        header = json.dumps(
            {"rows": len(refs), "dim": self.dim, "refs": refs}, separators=(",", ":")
        ).encode()
        body = struct.pack(">I", len(header)) + header + np.ascontiguousarray(vectors, dtype="<f4").tobytes()
        blob = aead.seal(self._index_dek(tenant), body, b"enclavia-index-v1" + _lp(tenant, k))
        self.blobs.put("s/" + self.keys.name("seg", tenant, str(k)), blob)

    def _open_segment(
        self, tenant: str, k: int
    ) -> tuple[npt.NDArray[np.float32], list[tuple[str, int, str]]]:
        blob = self.blobs.get("s/" + self.keys.name("seg", tenant, str(k)))
        if blob is None:
            raise LookupError("index segment missing")
        body = aead.open_(self._index_dek(tenant), blob, b"enclavia-index-v1" + _lp(tenant, k))
        (hlen,) = struct.unpack(">I", body[:4])
        header = json.loads(body[4 : 4 + hlen])
        rows = int(header["rows"])
        vectors = np.frombuffer(body[4 + hlen :], dtype="<f4").reshape(rows, self.dim)
        return vectors, [(str(d), int(n), str(t)) for d, n, t in header["refs"]]

    def _meta_name(self, tenant: str) -> str:
        return "m/" + self.keys.name("meta", tenant)

    def _read_meta(self, tenant: str) -> int:
        blob = self.blobs.get(self._meta_name(tenant))
        if blob is None:
            return 0
        body = aead.open_(self._index_dek(tenant), blob, b"enclavia-index-meta-v1" + _lp(tenant))
        return int(json.loads(body)["segments"])

    def _write_meta(self, tenant: str, segments: int) -> None:
        body = json.dumps({"segments": segments}).encode()
        blob = aead.seal(self._index_dek(tenant), body, b"enclavia-index-meta-v1" + _lp(tenant))
        self.blobs.put(self._meta_name(tenant), blob)

    def unlock(self, tenant: str) -> _Index:
        """Load and decrypt the tenant's index into enclave memory (once; then cached)."""
        with self._lock:
            idx = self._indexes.get(tenant)
            if idx is not None:
                return idx
            start = time.perf_counter()
            segments = self._read_meta(tenant)
            parts: list[npt.NDArray[np.float32]] = []
            refs: list[tuple[str, int, str]] = []
            for k in range(segments):
                v, r = self._open_segment(tenant, k)
                parts.append(v)
                refs.extend(r)
            vectors = np.vstack(parts) if parts else np.zeros((0, self.dim), dtype=np.float32)
            idx = _Index(np.ascontiguousarray(vectors), refs, segments)
            idx.unlock_ms = (time.perf_counter() - start) * 1000
            self._indexes[tenant] = idx
            return idx

    def forget(self, tenant: str | None = None) -> None:
        """Drop unlocked indexes from memory (as a restart would)."""
        with self._lock:
            if tenant is None:
                self._indexes.clear()
            else:
                self._indexes.pop(tenant, None)

    # -- ingestion -----------------------------------------------------------------------------------

    def ingest(self, tenant: str, documents: Sequence[tuple[str, str, str]]) -> int:
        """documents: (id, title, text). Returns the number of chunks stored. Re-ingesting an id appends."""
        chunks: list[Chunk] = []
        titles: dict[str, str] = {}
        for doc_id, title, text in documents:
            titles[doc_id] = title
            dek = self._doc_dek(tenant, doc_id, create=True, persist=False)
            assert dek is not None
            for n, piece in enumerate(chunk_text(text)):
                chunks.append(Chunk(doc_id, n, piece))
                blob = aead.seal(dek, piece.encode(), b"enclavia-chunk-v1" + _lp(tenant, doc_id, n))
                self.blobs.put("c/" + self.keys.name("chunk", tenant, doc_id, str(n)), blob)
        self.keys.flush()  # new DEKs are wrapped and persisted before any body that needs them is indexed
        if not chunks:
            return 0
        vectors = self.embed([c.text for c in chunks]).astype(np.float32)
        self._append(tenant, vectors, [(c.document_id, c.n, titles[c.document_id]) for c in chunks])
        return len(chunks)

    def add_vectors(
        self, tenant: str, vectors: npt.NDArray[np.float32], refs: list[tuple[str, int, str]]
    ) -> None:
        """Append precomputed embeddings (benchmarks; the chunks must already be stored)."""
        self._append(tenant, vectors, refs)

    def _append(
        self, tenant: str, vectors: npt.NDArray[np.float32], refs: list[tuple[str, int, str]]
    ) -> None:
        idx = self.unlock(tenant)
        with idx.lock:
            start_seg = max(0, idx.segments - 1)
            base = start_seg * SEGMENT_ROWS
            all_vectors = np.vstack([idx.vectors, vectors]) if len(idx.refs) else np.asarray(vectors)
            all_refs = idx.refs + list(refs)
            total = len(all_refs)
            segments = max(1, -(-total // SEGMENT_ROWS))
            for k in range(start_seg, segments):
                lo, hi = k * SEGMENT_ROWS, min(total, (k + 1) * SEGMENT_ROWS)
                if lo >= base:
                    self._seal_segment(tenant, k, all_vectors[lo:hi], all_refs[lo:hi])
            self._write_meta(tenant, segments)
            idx.vectors, idx.refs, idx.segments = np.ascontiguousarray(all_vectors), all_refs, segments

    # -- retrieval -----------------------------------------------------------------------------------

    def search(
        self,
        tenant: str,
        query_vector: npt.NDArray[np.float32],
        k: int,
        document_ids: frozenset[str] | None = None,
    ) -> list[tuple[int, float]]:
        """Top-k rows of the tenant's index by cosine similarity: [(row, score)]."""
        idx = self.unlock(tenant)
        if not idx.refs:
            return []
        scores = idx.vectors @ query_vector.astype(np.float32)
        if document_ids is not None:
            allowed = np.fromiter((r[0] in document_ids for r in idx.refs), dtype=bool, count=len(idx.refs))
            scores = np.where(allowed, scores, -np.inf)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top])]
        return [(int(i), float(scores[i])) for i in top if np.isfinite(scores[i])]

    def fetch(self, tenant: str, row: int, score: float) -> Hit:
        idx = self.unlock(tenant)
        doc_id, n, title = idx.refs[row]
        dek = self._doc_dek(tenant, doc_id, create=False)
        blob = self.blobs.get("c/" + self.keys.name("chunk", tenant, doc_id, str(n)))
        if dek is None or blob is None:
            raise LookupError("chunk missing")
        text = aead.open_(dek, blob, b"enclavia-chunk-v1" + _lp(tenant, doc_id, n)).decode()
        return Hit(doc_id, n, score, text, title)

    def query(
        self, tenant: str, query: str, k: int = 5, document_ids: frozenset[str] | None = None
    ) -> list[Hit]:
        vector = self.embed([query])[0]
        return [self.fetch(tenant, row, score) for row, score in self.search(tenant, vector, k, document_ids)]

    def count(self, tenant: str) -> int:
        return len(self.unlock(tenant).refs)
