"""Our transformers-based loader computes the same vectors as sentence-transformers for this model."""

from __future__ import annotations

import numpy as np
from sentence_transformers import SentenceTransformer

from enclavia.inference.embeddings import EmbeddingModel, model_dir

TEXTS = [
    "Patient has type 2 diabetes.",
    "Quarterly revenue rose 4%.",
    "word " * 400,  # longer than max_seq_length: truncated the same way
    "é ß 漢字",
]


def test_same_vectors_as_sentence_transformers() -> None:
    ours = np.asarray(EmbeddingModel().embed(TEXTS))
    reference = SentenceTransformer(str(model_dir()), device="cpu", local_files_only=True).encode(
        TEXTS, normalize_embeddings=True, convert_to_numpy=True
    )
    assert ours.shape == (len(TEXTS), 384)
    assert np.allclose(ours, reference, atol=1e-5)
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-6)
