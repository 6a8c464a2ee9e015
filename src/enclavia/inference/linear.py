"""Load the JSON linear-model artifact into scikit-learn objects and serve predictions."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

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
        scaler = StandardScaler()
        scaler.mean_ = np.asarray(doc["scaler"]["mean"], dtype=np.float64)
        scaler.scale_ = np.asarray(doc["scaler"]["scale"], dtype=np.float64)
        scaler.var_ = scaler.scale_**2
        scaler.n_features_in_ = n
        clf = LogisticRegression()
        clf.coef_ = np.asarray(doc["coef"], dtype=np.float64)
        clf.intercept_ = np.asarray(doc["intercept"], dtype=np.float64)
        clf.classes_ = np.arange(len(self.classes))
        clf.n_features_in_ = n
        if scaler.mean_.shape != (n,) or clf.coef_.shape[1] != n:
            raise ArtifactError("artifact shapes disagree")
        self._scaler, self._clf = scaler, clf

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
        row = self.vectorize(features).reshape(1, -1)
        proba = self._clf.predict_proba(self._scaler.transform(row))[0]
        best = int(np.argmax(proba))
        return Prediction(
            label=self.classes[best],
            probability=float(proba[best]),
            probabilities={c: float(p) for c, p in zip(self.classes, proba, strict=True)},
        )
