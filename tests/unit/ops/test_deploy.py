"""deploy/: Helm charts reference only values they define and run enclaves under a confidential runtime class;
the Nitro vsock relay carries bytes both ways; the Nitro entrypoint uses options the enclave accepts."""

from __future__ import annotations

import asyncio
import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
HELM = REPO / "deploy" / "helm"


def _lookup(values: dict[str, Any], dotted: str) -> bool:
    node: Any = values
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


@pytest.mark.parametrize("chart", ["enclavia-broker", "enclavia-enclave"])
def test_chart_is_consistent(chart: str) -> None:
    root = HELM / chart
    meta = yaml.safe_load((root / "Chart.yaml").read_text())
    assert meta["apiVersion"] == "v2" and meta["name"] == chart
    values = yaml.safe_load((root / "values.yaml").read_text())
    templates = {p.name: p.read_text() for p in (root / "templates").iterdir()}
    assert "deployment.yaml" in templates and "service.yaml" in templates
    for name, text in templates.items():
        assert text.count("{{") == len(re.findall(r"{{.*?}}", text)), name
        opened = len(re.findall(r"{{-?\s*(if|range|define|with)\b", text))
        assert opened == len(re.findall(r"{{-?\s*end\s*-?}}", text)), name
        for ref in re.findall(r"\.Values\.([A-Za-z0-9_.]+)", text):
            assert _lookup(values, ref), f"{chart}/{name}: .Values.{ref} is not in values.yaml"
    assert values["replicaCount"] >= 2


def test_enclave_pods_run_in_confidential_containers() -> None:
    helpers = (HELM / "enclavia-enclave" / "templates" / "_helpers.tpl").read_text()
    deployment = (HELM / "enclavia-enclave" / "templates" / "deployment.yaml").read_text()
    assert 'runtimeClassName: {{ include "enclavia-enclave.runtimeClass" . }}' in deployment
    assert "kata-qemu-snp" in helpers and "kata-qemu-tdx" in helpers and "fail" in helpers
    assert "--tee" in deployment and "--broker" in deployment


def test_enclave_configuration_is_delivered_as_measured_init_data() -> None:
    """CoCo measures init-data into HOST_DATA / MRCONFIGID: the pod carries the configuration there."""
    helpers = (HELM / "enclavia-enclave" / "templates" / "_helpers.tpl").read_text()
    deployment = (HELM / "enclavia-enclave" / "templates" / "deployment.yaml").read_text()
    annotation = (
        'io.katacontainers.config.hypervisor.cc_init_data: {{ include "enclavia-enclave.initData" . '
        "| b64enc | quote }}"
    )
    assert annotation in deployment
    start = helpers.index('define "enclavia-enclave.initData"')
    init_data = helpers[start:]
    assert 'version = "0.1.0"' in init_data and "[data]" in init_data
    assert 'eq .Values.tee "tdx" }}sha384{{ else }}sha256' in init_data  # MRCONFIGID 48, HOST_DATA 32 bytes
    for value in (
        ".Values.tee",
        ".Values.embeddings",
        ".Values.classification.configMap",
        ".Values.broker.url",
    ):
        assert value in init_data
    assert "enclavia-enclave.image" in init_data  # the image reference (digest in production)


def test_broker_chart_shares_one_database() -> None:
    deployment = (HELM / "enclavia-broker" / "templates" / "deployment.yaml").read_text()
    assert "ENCLAVIA_BROKER_DB" in deployment and "secretKeyRef" in deployment
    assert "ENCLAVIA_BROKER_ADMIN_TOKEN" in deployment and "--admin-token" not in deployment


def _relay_module() -> Any:
    spec = importlib.util.spec_from_file_location("vsock_relay", REPO / "deploy" / "nitro" / "vsock_relay.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_vsock_relay_carries_frames_both_ways(tmp_path: Path) -> None:
    relay = _relay_module()
    assert relay.parse("vsock:ANY:5005") == ("vsock", (0xFFFFFFFF, 5005))
    assert relay.parse("vsock:16:5005") == ("vsock", (16, 5005))
    with pytest.raises(ValueError):
        relay.parse("vsock:16:x")

    async def scenario() -> bytes:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            writer.close()

        upstream = await asyncio.start_server(echo, "127.0.0.1", 0)
        port = upstream.sockets[0].getsockname()[1]
        ready = asyncio.Event()
        sock = tmp_path / "enclave.sock"
        task = asyncio.create_task(relay.relay(f"unix:{sock}", f"tcp:127.0.0.1:{port}", ready=ready))
        await ready.wait()
        assert sock.stat().st_mode & 0o777 == 0o600
        reader, writer = await asyncio.open_unix_connection(str(sock))
        payload = bytes(range(256)) * 300
        writer.write(payload)
        await writer.drain()
        got = await reader.readexactly(len(payload))
        writer.close()
        task.cancel()
        upstream.close()
        return got

    assert asyncio.run(scenario()) == bytes(range(256)) * 300


def test_nitro_entrypoint_uses_enclave_options() -> None:
    entry = (REPO / "deploy" / "nitro" / "enclave-entrypoint.sh").read_text()
    out = subprocess.run(
        [sys.executable, "-m", "enclavia.enclave.main", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for option in re.findall(r"(--[a-z-]+)", entry.split("enclavia.enclave.main", 1)[1]):
        assert option in out, option
    assert "nitro" in out
