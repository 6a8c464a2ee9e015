"""Build-time training of the bundled clinical-risk classifier.

scikit-learn's bundled Breast Cancer Wisconsin (Diagnostic) data (no download): StandardScaler +
LogisticRegression. The artifact is canonical JSON holding only numbers and names (no pickle), so
loading it cannot execute code and the same inputs give the same bytes, hence the same digest in
the enclave image manifest.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ARTIFACT_FORMAT = "enclavia-linear-v1"


def train_clinical_risk(seed: int = 0) -> dict[str, Any]:
    import sklearn
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    data = load_breast_cancer()
    x_train, x_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=0.25, random_state=seed, stratify=data.target
    )
    scaler = StandardScaler().fit(x_train)
    clf = LogisticRegression(max_iter=5000, C=1.0).fit(scaler.transform(x_train), y_train)
    accuracy = float(clf.score(scaler.transform(x_test), y_test))
    return {
        "format": ARTIFACT_FORMAT,
        "name": "clinical-risk",
        "task": "breast mass malignancy from FNA image features (Wisconsin Diagnostic)",
        "feature_names": [str(n) for n in data.feature_names],
        "classes": [str(c) for c in data.target_names],
        "scaler": {"mean": [float(v) for v in scaler.mean_], "scale": [float(v) for v in scaler.scale_]},
        "coef": [[float(v) for v in row] for row in clf.coef_],
        "intercept": [float(v) for v in clf.intercept_],
        "metrics": {"held_out_accuracy": round(accuracy, 6), "n_train": len(y_train), "n_test": len(y_test)},
        "trained_with": {"scikit-learn": sklearn.__version__, "seed": seed},
    }


def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def write_artifact(out: Path, seed: int = 0) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(canonical_json(train_clinical_risk(seed)))
    return out
