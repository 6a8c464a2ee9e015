"""POST /v1/embeddings (OpenAI shape) with all-MiniLM-L6-v2 inside the enclave, loaded offline."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from enclavia.client.sdk import Client
from enclavia.errors import BadRequestError, NotFoundError
from enclavia.policy.document import parse_policy
from tests.support import Served, start_served

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served_emb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    s = start_served(Path(tmp_path_factory.mktemp("emb")), embeddings=True)
    yield s
    s.stop()


def _cos(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(
        sum(x * x for x in a) * sum(y * y for y in b)
    )


def test_embeddings_round_trip(served_emb: Served) -> None:
    policy = parse_policy(served_emb.policy_text)
    with Client(served_emb.url, policy) as client:
        enclave = client.attest()
        assert "all-minilm-l6-v2" in enclave.bundle.manifest.models
        out = client.embeddings(
            ["Patient has type 2 diabetes.", "The patient is diabetic (T2DM).", "Quarterly revenue rose 4%."]
        )
        vectors = [d["embedding"] for d in out["data"]]
        assert [d["index"] for d in out["data"]] == [0, 1, 2]
        assert all(len(v) == 384 for v in vectors)
        assert out["usage"]["prompt_tokens"] > 0
        # Meaning, not bytes: the two clinical sentences are closer to each other than to finance.
        assert _cos(vectors[0], vectors[1]) > _cos(vectors[0], vectors[2]) + 0.2
        listed = {m["id"]: m for m in client.models()["data"]}
        assert listed["all-minilm-l6-v2"]["dimensions"] == 384
        for bad in ([], [""], ["x"] * 257):
            with pytest.raises(BadRequestError):
                client.embeddings(bad)
        with pytest.raises(NotFoundError):
            client.embeddings("hello", model="text-embedding-3-large")
