"""End to end through a real host process and a real, separate enclave process."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
from sklearn.datasets import load_breast_cancer

from enclavia.client.sdk import Client
from enclavia.inference.linear import LinearClassifier
from enclavia.policy.document import Policy
from tests.support import MODEL_DIR, Served

pytestmark = pytest.mark.slow


def _row(i: int) -> dict[str, float]:
    data = load_breast_cancer()
    return {str(n): float(v) for n, v in zip(data.feature_names, data.data[i], strict=True)}


def test_python_round_trip_matches_the_model_run_locally(served: Served, dev_policy: Policy) -> None:
    local = LinearClassifier((MODEL_DIR / "clinical-risk.json").read_bytes())
    with Client(served.url, dev_policy) as client:
        enclave = client.attest()
        assert enclave.result.affirming
        assert enclave.result.tee == "simulated"
        assert enclave.bundle.manifest.models["clinical-risk"] == local.digest
        for i in (0, 19, 100):
            out = client.predict("clinical-risk", _row(i))
            want = local.predict(_row(i))
            assert out["class"] == want.label
            assert math.isclose(out["probability"], want.probability, rel_tol=1e-9)
            assert out["model_sha256"] == local.digest
        models = client.models()
    assert [m["id"] for m in models["data"]] == ["clinical-risk"]


def _cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "enclavia.cli.main", *args],
        check=False,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_attest_and_predict(served: Served) -> None:
    policy = str(served.home / "dev-policy.yaml")
    res = _cli("attest", served.url, "--policy", policy, "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["trusted"] is True
    assert doc["result"]["claims"]["tee"] == "simulated"
    assert doc["manifest"]["models"]["clinical-risk"]

    res = _cli(
        "predict",
        served.url,
        "clinical-risk",
        "--input",
        "-",
        "--policy",
        policy,
        stdin=json.dumps({"features": _row(3)}),
    )
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["class"] in {"malignant", "benign"}


def test_cli_attest_exits_1_with_a_reason_code_when_not_trusted(served: Served) -> None:
    bad = served.home / "wrong-measurement.yaml"
    lines = [
        "      measurement: '" + "ab" * 48 + "'" if line.strip().startswith("measurement:") else line
        for line in served.policy_text.splitlines()
    ]
    bad.write_text("\n".join(lines) + "\n")
    res = _cli("attest", served.url, "--policy", str(bad))
    assert res.returncode == 1
    assert "policy.measurement_not_allowed" in res.stderr
    res = _cli("attest", served.url, "--policy", str(bad), "--nonce", "zz")
    assert res.returncode == 2
