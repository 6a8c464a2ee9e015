"""Encrypted retrieval: search p50 over 10k and 100k chunks, index unlock time, ingestion throughput.

Search time excludes the query embedding (measured separately): exact cosine search over the tenant's
decrypted index (numpy matrix-vector product + argpartition), plus fetching and decrypting the top-k chunks
from the blob store. Index vectors are random unit vectors of the model's dimension (384); chunk bodies are
real ciphertext (AES-256-GCM) in an in-memory blob store, so crypto costs are real.

Usage: .venv/bin/python benchmarks/rag_retrieval.py [--sizes 10000 100000] [--embed]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from enclavia.crypto import aead
from enclavia.rag.blobstore import MemoryBlobStore
from enclavia.rag.keys import KeyRing, StaticKekSource
from enclavia.rag.store import DocumentStore

DIM = 384


def bench(n: int, queries: int = 200, k: int = 5) -> dict[str, float]:
    rng = np.random.default_rng(0)
    blobs = MemoryBlobStore()
    keks = StaticKekSource({"k1": aead.generate_key()}, "k1")
    store = DocumentStore(blobs, KeyRing(blobs, keks), lambda t: np.zeros((len(t), DIM), np.float32), DIM)
    # Chunk bodies: seal as ingest does, but with precomputed vectors (no model in the loop).
    t0 = time.perf_counter()
    texts = [f"chunk {i} " + "clinical text " * 40 for i in range(n)]
    docs = [(f"doc-{i // 10}", "", "") for i in range(0, n, 10)]
    from enclavia.rag import store as sm

    refs = []
    for i, text in enumerate(texts):
        doc = f"doc-{i // 10}"
        dek = store._doc_dek("bench", doc, create=True, persist=False)
        assert dek is not None
        blob = aead.seal(dek, text.encode(), b"enclavia-chunk-v1" + sm._lp("bench", doc, i % 10))
        blobs.put("c/" + store.keys.name("chunk", "bench", doc, str(i % 10)), blob)
        refs.append((doc, i % 10, ""))
    store.keys.flush()
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    store.add_vectors("bench", vectors, refs)
    seal_s = time.perf_counter() - t0
    del docs
    store.forget()
    t1 = time.perf_counter()
    store.unlock("bench")
    unlock_ms = (time.perf_counter() - t1) * 1000
    q = rng.standard_normal((queries, DIM)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    search_ms, total_ms = [], []
    for v in q:
        s0 = time.perf_counter()
        rows = store.search("bench", v, k)
        s1 = time.perf_counter()
        [store.fetch("bench", r, sc) for r, sc in rows]
        s2 = time.perf_counter()
        search_ms.append((s1 - s0) * 1000)
        total_ms.append((s2 - s0) * 1000)
    return {
        "n": n,
        "store_and_seal_per_s": n / seal_s,
        "unlock_ms": unlock_ms,
        "search_p50_ms": statistics.median(search_ms),
        "retrieve_p50_ms": statistics.median(total_ms),
        "retrieve_p95_ms": statistics.quantiles(total_ms, n=20)[18],
    }


def bench_ingest(chunks: int = 256) -> dict[str, float]:
    """End-to-end ingestion with the real embedding model (chunking, embedding, sealing, index append)."""
    from enclavia.inference.embeddings import EmbeddingModel

    model = EmbeddingModel(threads=2)
    st_model = model._model

    def embed(texts: list[str]) -> np.ndarray:
        return np.asarray(st_model.encode(texts, normalize_embeddings=True, batch_size=32), dtype=np.float32)

    blobs = MemoryBlobStore()
    store = DocumentStore(blobs, KeyRing(blobs, StaticKekSource({"k": aead.generate_key()}, "k")), embed, DIM)
    docs = [
        (f"d{i}", "", ("Patient seen for follow-up of hypertension and diabetes. " * 12)[:700])
        for i in range(chunks)
    ]
    t0 = time.perf_counter()
    n = store.ingest("t", docs)
    elapsed = time.perf_counter() - t0
    e0 = time.perf_counter()
    for _ in range(20):
        embed(["what medication was started for atrial fibrillation?"])
    return {"chunks_per_s": n / elapsed, "query_embed_ms": (time.perf_counter() - e0) / 20 * 1000}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000])
    ap.add_argument("--embed", action="store_true", help="also measure ingestion with the real model")
    args = ap.parse_args()
    print(
        "| chunks | search p50 (ms) | search + fetch/decrypt top-5 p50 (ms) | p95 (ms) | index unlock (ms) | seal+store (chunks/s) |"  # noqa: E501
    )
    print("|---|---|---|---|---|---|")
    for n in args.sizes:
        r = bench(n)
        print(
            f"| {n:,} | {r['search_p50_ms']:.2f} | {r['retrieve_p50_ms']:.2f} | {r['retrieve_p95_ms']:.2f} | "
            f"{r['unlock_ms']:.0f} | {r['store_and_seal_per_s']:.0f} |"
        )
    if args.embed:
        r = bench_ingest()
        print(
            f"\ningestion with all-MiniLM-L6-v2 (2 threads): {r['chunks_per_s']:.1f} chunks/s; "
            f"query embedding {r['query_embed_ms']:.1f} ms"
        )


if __name__ == "__main__":
    main()
