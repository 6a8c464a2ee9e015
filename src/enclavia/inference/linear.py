"""Load the JSON linear-model artifact and serve predictions (numpy only).

The artifact is a StandardScaler + LogisticRegression trained with scikit-learn (enclavia.inference.training);
serving needs only their arithmetic, so scikit-learn and SciPy stay out of the enclave (smaller trusted base,
about 100 MiB less memory and a second less cold start). Probabilities equal scikit-learn's predict_proba.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from enclavia.errors import BadRequestError
from enclavia.inference.training import ARTIFACT_FORMAT


class ArtifactError(ValueError):
    """The artifact file is not a valid model (operator error at start, not a request error)."""


@dataclass(frozen=True)
class Prediction:
    label: str
    probability: float
    probabilities: Mapping[str, float]


class LinearClassifier:
    def __init__(self, artifact: bytes) -> None:
        self.digest = hashlib.sha256(artifact).hexdigest()
        try:
            doc = json.loads(artifact)
            self._load(doc)
        except (ValueError, KeyError, TypeError) as exc:
            raise ArtifactError("model artifact invalid") from exc

    def _load(self, doc: dict[str, Any]) -> None:
        if doc.get("format") != ARTIFACT_FORMAT:
            raise ArtifactError("unknown artifact format")
        self.name: str = doc["name"]
        self.feature_names: tuple[str, ...] = tuple(doc["feature_names"])
        self.classes: tuple[str, ...] = tuple(doc["classes"])
        self.metrics: dict[str, Any] = dict(doc.get("metrics", {}))
        n = len(self.feature_names)
        self._index = {name: i for i, name in enumerate(self.feature_names)}
        self._mean = np.asarray(doc["scaler"]["mean"], dtype=np.float64)
        self._scale = np.asarray(doc["scaler"]["scale"], dtype=np.float64)
        self._coef = np.asarray(doc["coef"], dtype=np.float64)
        self._intercept = np.asarray(doc["intercept"], dtype=np.float64)
        rows = 1 if len(self.classes) == 2 else len(self.classes)
        if (
            len(self.classes) < 2
            or self._mean.shape != (n,)
            or self._scale.shape != (n,)
            or self._coef.shape != (rows, n)
            or self._intercept.shape != (rows,)
        ):
            raise ArtifactError("artifact shapes disagree")
        if not (np.all(np.isfinite(self._coef)) and np.all(self._scale > 0)):
            raise ArtifactError("artifact values invalid")

    def _proba(self, row: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """scikit-learn's predict_proba: sigmoid for two classes, softmax (multinomial) for more."""
        z = self._coef @ ((row - self._mean) / self._scale) + self._intercept
        if z.shape == (1,):
            d = float(z[0])
            p1 = 1.0 / (1.0 + math.exp(-d)) if d >= 0 else math.exp(d) / (1.0 + math.exp(d))
            return np.array([1.0 - p1, p1])
        e = np.exp(z - np.max(z))
        return np.asarray(e / e.sum(), dtype=np.float64)

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.name,
            "object": "model",
            "kind": "classifier",
            "artifact_sha256": self.digest,
            "features": list(self.feature_names),
            "classes": list(self.classes),
            "metrics": self.metrics,
        }

    def example_features(self) -> dict[str, float]:
        """A valid input: every feature at its training mean (a typical case), in artifact order."""
        return {name: round(float(v), 6) for name, v in zip(self.feature_names, self._mean, strict=True)}

    def vectorize(self, features: object) -> np.ndarray[Any, np.dtype[np.float64]]:
        """Exactly the named features, each a finite number. Errors never echo names or values."""
        if not isinstance(features, Mapping):
            raise BadRequestError("features must be an object of name to number")
        if len(features) != len(self.feature_names):
            raise BadRequestError(f"expected exactly {len(self.feature_names)} features")
        row = np.empty(len(self.feature_names), dtype=np.float64)
        for key, value in features.items():
            idx = self._index.get(key) if isinstance(key, str) else None
            if idx is None:
                raise BadRequestError("unknown feature name")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise BadRequestError("feature values must be numbers")
            fv = float(value)
            if not math.isfinite(fv):
                raise BadRequestError("feature values must be finite")
            row[idx] = fv
        return row

    def predict(self, features: object) -> Prediction:
        proba = self._proba(self.vectorize(features))
        best = int(np.argmax(proba))
        return Prediction(
            label=self.classes[best],
            probability=float(proba[best]),
            probabilities={c: float(p) for c, p in zip(self.classes, proba, strict=True)},
        )
