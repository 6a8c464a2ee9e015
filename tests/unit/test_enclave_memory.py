"""Enclave memory size: parsing, the start-time fit check, enforcement, request-time exhaustion."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from enclavia import channel, launch
from enclavia.crypto.bhttp import Request
from enclavia.enclave import memory
from enclavia.enclave.routes import InnerApp
from enclavia.errors import ModelTooLargeError, error_for_code
from enclavia.inference.linear import LinearClassifier
from tests.support import ensure_model

MIB = 1 << 20


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("512MiB", 512 * MIB),
        ("512M", 512 * MIB),
        ("512", 512 * MIB),
        ("1.5GiB", 1536 * MIB),
        ("2G", 2048 * MIB),
        ("800MB", 800_000_000),
        (" 64 mib ", 64 * MIB),
    ],
)
def test_parse_size(text: str, expected: int) -> None:
    assert memory.parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "MiB", "12 parsecs", "-5MiB", "1KiB", "5Xi"])
def test_parse_size_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        memory.parse_size(text)


def test_status_reads_proc() -> None:
    s = memory.read_status()
    assert 0 < s.rss <= s.peak_rss
    assert s.rss <= s.vm_size <= s.vm_peak
    assert s.data > 0


def _big_artifact(directory: Path, n: int) -> Path:
    doc = json.loads((ensure_model() / "clinical-risk.json").read_bytes())
    doc.update(
        name="too-big",
        feature_names=[f"f{i}" for i in range(n)],
        scaler={"mean": [0.123456789] * n, "scale": [1.23456789] * n},
        coef=[[0.5123456789] * n],
    )
    path = directory / "too-big.json"
    path.write_text(json.dumps(doc))
    return path


def test_estimate_uses_artifact_sizes_and_runtimes(tmp_path: Path) -> None:
    base = memory.read_status()
    small = memory.estimate([memory.Artifact("m", "linear", 10_000)], base)
    big = memory.estimate([memory.Artifact("m", "linear", 100 * MIB)], base)
    assert big.counted("rlimit_data") - small.counted("rlimit_data") > 500 * MIB
    # Runtimes are counted once however many artifacts need them.
    one = memory.estimate([memory.Artifact("e", "embeddings", MIB)], base)
    two = memory.estimate([memory.Artifact("e", "embeddings", MIB), memory.Artifact("n", "ner", MIB)], base)
    torch = memory.RUNTIME_COST["torch"]
    assert two.runtimes.rss == one.runtimes.rss + sum(
        memory.RUNTIME_COST[r].rss for r in ("spacy", "presidio")
    )
    assert two.runtimes.rss < one.runtimes.rss + torch.rss + 500 * MIB
    # The address-space figure is the larger one for torch.
    assert one.counted("rlimit_as") > one.counted("rlimit_data")


def test_check_fits_names_need_and_limit(tmp_path: Path) -> None:
    _big_artifact(tmp_path, 200_000)
    artifacts = memory.artifacts_for(tmp_path, embeddings=False, classification=False, chat_model=None)
    assert [a.kind for a in artifacts] == ["linear"]
    limit = memory.Enforcement("rlimit_data", 96 * MIB, "test")
    with pytest.raises(ModelTooLargeError) as info:
        memory.check_fits(limit, artifacts)
    err = info.value
    assert err.limit == 96 * MIB and err.need > err.limit
    assert err.code == "enclave.model_too_large"
    assert f"{-(-err.need // MIB)} MiB" in err.detail and "96 MiB" in err.detail
    # No limit configured: nothing is refused. The host maps the code back to the class without arguments.
    memory.check_fits(memory.NO_LIMIT, artifacts)
    assert error_for_code("enclave.model_too_large")().need == 0


def _enclave(tmp_path: Path, model_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    from enclavia.tee.simulated import init_platform_key

    init_platform_key(tmp_path / "sim")
    cmd = launch.enclave_command(
        sys.executable,
        [
            "--socket",
            str(tmp_path / "e.sock"),
            "--model-dir",
            str(model_dir),
            "--sim-dir",
            str(tmp_path / "sim"),
            *args,
        ],
    )
    env = launch.enclave_env(os.environ)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.slow
def test_enclave_process_refuses_a_model_over_the_limit(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    _big_artifact(models, 300_000)  # about 7 MiB of JSON: needs far more than 96 MiB once parsed
    done = _enclave(tmp_path, models, "--memory-limit", str(96 * MIB), "--memory-mode", "rlimit-data")
    assert done.returncode == channel.EXIT_REFUSED
    events = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    refused = [e for e in events if e["event"] == "enclave.refused"]
    assert len(refused) == 1
    assert refused[0]["error_code"] == "enclave.model_too_large"
    assert refused[0]["limit_bytes"] == 96 * MIB and refused[0]["need_bytes"] > 96 * MIB
    assert "MiB" in refused[0]["detail"]
    assert not [e for e in events if e["event"] == "enclave.ready"]


def test_cgroup_v2_child_on_a_delegated_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cgroup path, against a stand-in directory (this machine offers no delegated cgroup v2)."""
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("")
    enforced = memory.enforce(256 * MIB, "cgroup", cgroup_parent=str(tmp_path))
    assert enforced.mechanism == "cgroup_v2" and enforced.cgroup is not None
    assert (enforced.cgroup / "memory.max").read_text() == str(256 * MIB)
    assert (enforced.cgroup / "memory.swap.max").read_text() == "0"
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+memory"
    (enforced.cgroup / "memory.current").write_text(str(42 * MIB))
    assert enforced.usage() == 42 * MIB
    # Without the memory controller: "cgroup" refuses, "auto" falls back to the data rlimit (checked in a
    # child process: an rlimit cannot be raised again).
    (tmp_path / "cgroup.controllers").write_text("cpu pids\n")
    with pytest.raises(PermissionError):
        memory.enforce(256 * MIB, "cgroup", cgroup_parent=str(tmp_path))


@pytest.mark.slow
def test_rlimit_turns_a_runaway_allocation_into_memory_error() -> None:
    code = (
        "from enclavia.enclave import memory\n"
        "e = memory.enforce(memory.read_status().data + 64 * memory.MIB, 'auto', cgroup_parent='')\n"
        "print(e.mechanism, e.reason)\n"
        "try:\n"
        "    b = bytearray(512 * memory.MIB)\n"
        "    print('allocated')\n"
        "except MemoryError:\n"
        "    print('memory error')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["rlimit_data", "no_delegated_cgroup", "memory", "error"]


def test_memory_error_in_a_request_is_a_503_not_a_crash() -> None:
    model = LinearClassifier((ensure_model() / "clinical-risk.json").read_bytes())

    class Hungry(LinearClassifier):
        def __init__(self) -> None:
            self.__dict__.update(model.__dict__)

        def predict(self, features: object) -> object:  # type: ignore[override]
            raise MemoryError

    app = InnerApp(models={"clinical-risk": Hungry()})
    body = json.dumps({"features": dict.fromkeys(model.feature_names, 1.0)}).encode()
    req = Request(
        "POST", "https", "enclave", "/v1/predict/clinical-risk", (("content-type", "application/json"),), body
    )
    resp = app.handle(req)
    assert resp.status == 503
    assert json.loads(resp.content)["code"] == "enclave.memory_exhausted"
    app.models = {"clinical-risk": model}  # type: ignore[misc]
    assert app.handle(req).status == 200


def test_metrics_gauges() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    memory.register_metrics(registry, memory.Enforcement("rlimit_data", 200 * MIB, "test"))
    text = generate_latest(registry).decode()
    values = {
        line.split()[0]: float(line.split()[1]) for line in text.splitlines() if not line.startswith("#")
    }
    assert values['enclavia_enclave_memory_limit_bytes{mechanism="rlimit_data"}'] == 200 * MIB
    assert 0 < values["enclavia_enclave_memory_rss_bytes"] <= values["enclavia_enclave_memory_peak_rss_bytes"]
    assert values["enclavia_enclave_memory_usage_bytes"] > 0
