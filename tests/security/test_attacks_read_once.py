"""Hash what you use, use what you hashed (issue 13, point 2/4): the host swaps a measured input right after
the enclave reads it. What is enforced must be what clients attest.

The swap is a deterministic seam: every ``Path.read_bytes`` / ``Path.open`` of the watched file is observed,
and right after each read the file is replaced with the host's version (a requester with full clearance).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from enclavia.enclave.boot import EnclaveConfig, build_enclave
from enclavia.observability.metrics import EnclaveMetrics
from enclavia.protect.classification import parse_classification
from enclavia.tee.simulated import init_platform_key
from tests.support import ensure_model

pytestmark = pytest.mark.slow

DEFAULT = Path(__file__).parents[2] / "src/enclavia/protect/default-classification.yaml"
ALL = ["PHI", "PCI", "PII", "CONFIDENTIAL"]


def _doc(requesters: list[dict[str, Any]]) -> bytes:
    doc = yaml.safe_load(DEFAULT.read_text())
    doc["requesters"] = requesters
    return yaml.safe_dump(doc).encode()


BENIGN = _doc(
    [{"id": "analyst", "tenant": "t1", "clearance": [], "actions": ["query"], "token_sha256": "a" * 64}]
)
HOSTILE = _doc(
    [
        {"id": "analyst", "tenant": "t1", "clearance": ALL, "actions": ["query"], "token_sha256": "a" * 64},
        {"id": "host", "tenant": "t1", "clearance": ALL, "actions": ["ingest", "query", "egress"],
         "token_sha256": hashlib.sha256(b"host").hexdigest()},
    ]
)  # fmt: skip


class SwapAfterRead:
    """Replaces ``target`` with ``hostile`` right after each read of it; counts the reads."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, target: Path, hostile: bytes) -> None:
        self.target, self.hostile, self.reads = target.resolve(), hostile, 0
        original = Path.read_bytes

        def read_bytes(path: Path) -> bytes:
            data = original(path)
            if path.resolve() == self.target:
                self.reads += 1
                self.target.write_bytes(self.hostile)
            return data

        monkeypatch.setattr(Path, "read_bytes", read_bytes)


@pytest.fixture
def swapped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, SwapAfterRead]]:
    init_platform_key(tmp_path / "sim")
    path = tmp_path / "classification.yaml"
    path.write_bytes(BENIGN)
    watcher = SwapAfterRead(monkeypatch, path, HOSTILE)
    config = EnclaveConfig(ensure_model(), tmp_path / "sim", classification=path)
    yield build_enclave(config, EnclaveMetrics()), watcher


def test_a_classification_swapped_after_the_read_is_never_enforced(
    swapped: tuple[Any, SwapAfterRead],
) -> None:
    enclave, watcher = swapped
    benign, hostile = parse_classification(BENIGN), parse_classification(HOSTILE)
    assert benign.measured() != hostile.measured()
    # One read at boot, and the swap really happened on disk right after it.
    assert watcher.reads == 1
    assert watcher.target.read_bytes() == HOSTILE
    # Attested and enforced: both the benign manifest.
    assert enclave.manifest.config["classification"] == benign.measured()
    enforced = enclave.app.data.classification
    assert enforced.measured() == benign.measured()
    assert [r.id for r in enforced.requesters] == ["analyst"]
    assert enforced.requesters[0].clearance == frozenset({"PUBLIC"})


def test_an_ner_model_file_swapped_after_the_measuring_read_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """spaCy reads the model directory itself: the digest read and the load are two reads. The host swaps
    a file of the model right after the digest read; the loaded pipeline is checked against its pin."""
    import json
    import shutil

    from enclavia.errors import MeasuredInputChangedError
    from enclavia.protect import detect

    copy = tmp_path / "ner"
    shutil.copytree(detect.ner_model_dir(), copy)
    monkeypatch.setattr(detect, "ner_model_dir", lambda: copy)
    meta = json.loads((copy / "meta.json").read_text())
    meta["description"] = "host's model"
    watcher = SwapAfterRead(monkeypatch, copy / "meta.json", json.dumps(meta).encode())
    with pytest.raises(MeasuredInputChangedError):
        detect.Detector()
    assert watcher.reads == 1  # the measuring read saw the pinned bytes (the file pin held)


def test_an_embedding_model_swapped_after_the_read_is_never_what_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The host rewrites the model's config.json (one layer instead of six) right after the enclave reads
    it. The model that runs, and its measured digest, are those of the bytes read."""
    import json
    import shutil

    import numpy as np

    from enclavia.inference.embeddings import EmbeddingModel, directory_digest, model_dir

    texts = ["Patient John Smith, 54, reports chest pain.", "hello world"]
    reference = EmbeddingModel()
    want, want_digest = reference.embed_array(texts), reference.digest
    copy = tmp_path / "model"
    shutil.copytree(model_dir(), copy)
    config = json.loads((copy / "config.json").read_text())
    config["num_hidden_layers"] = 1
    watcher = SwapAfterRead(monkeypatch, copy / "config.json", json.dumps(config).encode())
    model = EmbeddingModel(root=copy)
    assert watcher.reads == 1
    assert json.loads((copy / "config.json").read_text())["num_hidden_layers"] == 1  # the swap happened
    assert model.digest == want_digest
    assert directory_digest(copy) != want_digest
    assert np.array_equal(model.embed_array(texts), want)
