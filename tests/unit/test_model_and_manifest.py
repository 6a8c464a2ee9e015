from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from enclavia.attestation.manifest import ImageManifest, parse_manifest
from enclavia.enclave.image import enclave_code_files
from enclavia.errors import BadRequestError, EvidenceFormatError
from enclavia.inference.linear import ArtifactError, LinearClassifier
from enclavia.inference.training import canonical_json, train_clinical_risk
from tests.support import ensure_model


@pytest.fixture(scope="module")
def model() -> LinearClassifier:
    return LinearClassifier((ensure_model() / "clinical-risk.json").read_bytes())


def test_training_is_reproducible_and_useful() -> None:
    a, b = train_clinical_risk(), train_clinical_risk()
    assert canonical_json(a) == canonical_json(b)
    assert a["metrics"]["held_out_accuracy"] > 0.9
    assert len(a["feature_names"]) == 30


def test_predictions_agree_with_sklearn_pipeline(model: LinearClassifier) -> None:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    correct = 0
    for row, target in zip(data.data, data.target, strict=True):
        pred = model.predict(dict(zip(model.feature_names, map(float, row), strict=True)))
        assert math.isclose(sum(pred.probabilities.values()), 1.0, rel_tol=1e-9)
        correct += pred.label == data.target_names[target]
    assert correct / len(data.target) > 0.9


@pytest.mark.parametrize(
    "mutate",
    [
        lambda f: {k: f[k] for k in list(f)[:29]},
        lambda f: {**f, "extra": 1.0},
        lambda f: {**f, next(iter(f)): float("nan")},
        lambda f: {**f, next(iter(f)): float("inf")},
        lambda f: {**f, next(iter(f)): None},
        lambda f: {**f, next(iter(f)): False},
        lambda f: list(f.values()),
    ],
)
def test_feature_validation(model: LinearClassifier, mutate: object) -> None:
    features = dict.fromkeys(model.feature_names, 1.0)
    with pytest.raises(BadRequestError) as info:
        model.predict(mutate(features))  # type: ignore[operator]
    assert "mean radius" not in str(info.value)


def test_bad_artifacts_fail_at_load() -> None:
    for blob in (b"{}", b"not json", json.dumps({"format": "enclavia-linear-v1"}).encode()):
        with pytest.raises(ArtifactError):
            LinearClassifier(blob)


def test_manifest_digest_ignores_order_mtime_and_install_path(tmp_path: Path) -> None:
    import enclavia

    root = Path(enclavia.__file__).resolve().parent
    copy = tmp_path / "elsewhere" / "enclavia"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("__pycache__"))
    for p in copy.rglob("*.py"):
        p.touch()
    assert enclave_code_files(copy) == enclave_code_files(root)
    m1 = ImageManifest("0.1.0", {"b": "0" * 64, "a": "1" * 64}, ("x==1", "a==2"), {}, {"tee": "simulated"})
    m2 = ImageManifest("0.1.0", {"a": "1" * 64, "b": "0" * 64}, ("a==2", "x==1"), {}, {"tee": "simulated"})
    assert m1.digest() == m2.digest() and len(m1.digest()) == 48
    assert parse_manifest(m1.to_json()).digest() == m1.digest()
    (copy / "enclave" / "core.py").write_text("# changed\n")
    assert enclave_code_files(copy) != enclave_code_files(root)


def test_manifest_parser_is_strict() -> None:
    good = ImageManifest("0.1.0", {}, (), {}, {}).to_json()
    for bad in ({**good, "extra": 1}, {**good, "files": {"a": "zz"}}, {**good, "schema": "v0"}, [], None):
        with pytest.raises(EvidenceFormatError):
            parse_manifest(bad)
