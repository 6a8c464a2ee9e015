"""The enclave memory size through a real `enclavia serve`: refused at start when the models cannot fit (no
restart loop, no OOM kill later), and reported in /metrics when they can."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from enclavia.client.sdk import Client
from enclavia.policy.document import parse_policy
from tests.support import Served, ensure_model, free_port, start_served

pytestmark = pytest.mark.slow
MIB = 1 << 20


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    s = start_served(Path(tmp_path_factory.mktemp("mem")), extra_args=("--enclave-memory", "200MiB"))
    yield s
    s.stop()


def _metrics(url: str) -> dict[str, float]:
    text = httpx.get(url + "/metrics", timeout=10).text
    return {
        line.split()[0]: float(line.split()[1])
        for line in text.splitlines()
        if line.startswith("enclavia_enclave_memory")
    }


def test_memory_reported_in_metrics(limited: Served) -> None:
    names = json.loads((ensure_model() / "clinical-risk.json").read_bytes())["feature_names"]
    with Client(limited.url, parse_policy(limited.policy_text)) as client:
        assert client.predict("clinical-risk", dict.fromkeys(names, 1.0))["class"]
    m = _metrics(limited.url)
    assert m['enclavia_enclave_memory_limit_bytes{mechanism="rlimit_data"}'] == 200 * MIB
    assert 0 < m["enclavia_enclave_memory_rss_bytes"] <= m["enclavia_enclave_memory_peak_rss_bytes"]
    assert m["enclavia_enclave_memory_peak_rss_bytes"] < 200 * MIB
    assert 0 < m["enclavia_enclave_memory_usage_bytes"] < 200 * MIB
    events = [json.loads(x) for x in limited.logs().splitlines() if x.startswith("{")]
    (mem,) = [e for e in events if e["event"] == "enclave.memory"]
    assert mem["mechanism"] == "rlimit_data" and mem["limit_bytes"] == 200 * MIB
    assert mem["need_bytes"] < 200 * MIB


def test_serve_refuses_a_model_over_the_limit(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    doc = json.loads((ensure_model() / "clinical-risk.json").read_bytes())
    n = 300_000
    doc.update(
        name="too-big",
        feature_names=[f"f{i}" for i in range(n)],
        scaler={"mean": [0.1234567] * n, "scale": [1.234567] * n},
        coef=[[0.51234567] * n],
    )
    (models / "too-big.json").write_text(json.dumps(doc))
    from enclavia.tee.simulated import init_platform_key

    init_platform_key(tmp_path / "sim")
    log = tmp_path / "serve.log"
    cmd = [
        *(sys.executable, "-m", "enclavia.cli.main", "serve"),
        *("--listen", f"127.0.0.1:{free_port()}", "--model-dir", str(models), "--state-dir", str(tmp_path)),
        *("--enclave-memory", "128MiB"),
    ]
    with log.open("wb") as out:
        rc = subprocess.run(
            cmd, env={**os.environ, "ENCLAVIA_HOME": str(tmp_path)}, stdout=out, stderr=subprocess.STDOUT,
            timeout=90, check=False,
        ).returncode  # fmt: skip
    assert rc != 0
    events = [json.loads(x) for x in log.read_text().splitlines() if x.startswith("{")]
    refused = [e for e in events if e["event"] == "enclave.refused"]
    assert [e["error_code"] for e in refused] == ["enclave.model_too_large"]
    assert refused[0]["limit_bytes"] == 128 * MIB and refused[0]["need_bytes"] > 128 * MIB
    # The host did not restart it: one spawn, one exit with the refusal status.
    assert len([e for e in events if e["event"] == "host.enclave_spawned"]) == 1
    exits = [e for e in events if e["event"] == "host.enclave_exited"]
    assert [e["returncode"] for e in exits] == [78]
