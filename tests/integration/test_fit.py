"""`enclavia fit` on the bundled classifier: report structure and sane numbers (no timing assertions)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import ensure_model

pytestmark = pytest.mark.slow
MIB = 1 << 20


def _fit(tmp_path: Path, *args: str) -> tuple[int, dict[str, Any]]:
    ensure_model()
    env = {**os.environ, "ENCLAVIA_HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "enclavia.cli.main", "fit", *args, "--json"],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr[-2000:]
    return done.returncode, json.loads(done.stdout)


def test_fit_report_for_the_bundled_classifier(tmp_path: Path) -> None:
    rc, report = _fit(tmp_path, "clinical-risk", "--memory", "200MiB", "--requests", "40")
    assert rc == 0 and report["fits"] is True
    assert report["model"] == "clinical-risk" and report["kind"] == "classifier"
    assert report["memory_limit_bytes"] == 200 * MIB and report["mechanism"] == "rlimit_data"
    assert report["samples"] == "generated" and report["requests"] == 40
    # memory: a classifier-only enclave is small, and the start estimate is in the same range as the peak
    assert 10 * MIB < report["peak_memory_bytes"] < 200 * MIB
    assert 10 * MIB < report["estimated_need_bytes"] < 200 * MIB
    assert 0 < report["memory_usage_bytes"] < 200 * MIB
    assert report["plain_peak_memory_bytes"] > 0
    # cold start is measured from the enclave process's start to the first answer
    assert report["first_answer_status"] == 200
    assert 0 < report["enclave_ready_s"] < report["cold_start_s"] < 120
    for side in ("plain", "confidential"):
        s = report[side]
        assert s["requests"] == 40 and s["errors"] == {}
        assert 0 < s["p50_ms"] <= s["p99_ms"]
    assert report["ratio"]["p50"] > 0 and report["ratio"]["p99"] > 0
    assert report["recommendation"]["mode"] in {"full", "split"}
    assert report["recommendation"]["reason"]


def test_fit_refuses_below_the_enclave_baseline_and_recommends_split(tmp_path: Path) -> None:
    rc, report = _fit(tmp_path, "clinical-risk", "--memory", "32MiB")
    assert rc == 1 and report["fits"] is False
    refused = report["refused"]
    assert refused["error_code"] == "enclave.model_too_large"
    assert refused["limit_bytes"] == 32 * MIB and refused["need_bytes"] > 32 * MIB
    assert report["recommendation"]["mode"] == "split"
    assert report["recommendation"]["reason"].startswith("memory")
    assert "confidential" not in report


def test_fit_replays_a_samples_file(tmp_path: Path) -> None:
    names = json.loads((ensure_model() / "clinical-risk.json").read_bytes())["feature_names"]
    samples = tmp_path / "samples.jsonl"
    rows = [{"features": dict.fromkeys(names, float(i))} for i in range(3)]
    rows.append({"path": "/v1/models", "body": None})
    samples.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    rc, report = _fit(tmp_path, "clinical-risk", "--memory", "256MiB", "--samples", str(samples))
    assert rc == 0 and report["samples"] == str(samples)
    assert report["requests"] == 4
    assert report["confidential"]["requests"] == report["plain"]["requests"] == 4
