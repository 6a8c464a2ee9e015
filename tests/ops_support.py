"""A live test deployment for the operations tests: real `enclavia broker serve` processes (SQLite or
PostgreSQL) and real `enclavia serve` hosts whose enclaves fetch a sealed model's key from the broker."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support import Served, ensure_model, free_port

ADMIN_TOKEN = "ops-admin-" + "z" * 32
MODEL_ID = "clinical-risk"


@dataclass
class Proc:
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        """SIGKILL the whole process group (a host and its enclave child, or a broker)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def _spawn(cmd: list[str], log_path: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def wait_for(url: str, proc: Proc, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.proc.poll() is not None:
            raise RuntimeError("process exited:\n" + proc.logs()[-3000:])
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(url + "\n" + proc.logs()[-3000:])


def start_broker(
    home: Path,
    db_url: str,
    *,
    policy: Path | None = None,
    env: dict[str, str] | None = None,
    keystore: Path | None = None,
) -> Proc:
    """One broker replica; replicas of one deployment share ``db_url`` and the ``keystore`` file."""
    home.mkdir(parents=True, exist_ok=True)
    token_file = home / "admin-token"
    token_file.write_text(ADMIN_TOKEN)
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "enclavia.cli.main",
        "broker",
        "serve",
        "--db",
        db_url,
        "--keystore",
        f"file:{keystore or home / 'broker-root.key'}",
        "--listen",
        f"127.0.0.1:{port}",
        "--admin-token-file",
        str(token_file),
        *(["--policy", str(policy)] if policy else []),
    ]
    proc = Proc(
        f"http://127.0.0.1:{port}",
        _spawn(cmd, home / f"broker-{port}.log", {**os.environ, **(env or {})}),
        home / f"broker-{port}.log",
    )
    wait_for(proc.url + "/healthz", proc)
    return proc


def admin(url: str, method: str, path: str, **kwargs: Any) -> Any:
    resp = httpx.request(
        method, url + path, headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30.0, **kwargs
    )
    assert resp.status_code < 400, (resp.status_code, resp.text)
    return resp.json()


def sealed_model_dir(home: Path) -> tuple[Path, bytes]:
    """The clinical-risk model sealed under a fresh key (secret version 1); only the sealed file is there."""
    from enclavia.crypto import aead
    from enclavia.enclave.sealed import SUFFIX, seal_artifact

    plaintext = (ensure_model() / "clinical-risk.json").read_bytes()
    model_dir = home / "models"
    model_dir.mkdir(parents=True, exist_ok=True)
    dek = aead.generate_key()
    (model_dir / ("clinical-risk.json" + SUFFIX)).write_bytes(seal_artifact(plaintext, MODEL_ID, dek, 1))
    return model_dir, dek


def register_model_key(broker_url: str, dek: bytes) -> None:
    admin(
        broker_url,
        "POST",
        f"/kbs/v1/admin/secrets/models/{MODEL_ID}",
        json={"value": base64.b64encode(dek).decode()},
    )


def policy_text(measurement_hex: str, sim_dir: Path, *, revision: int = 1) -> str:
    """A dev policy for this measurement and simulated platform key, releasing models/* to it."""
    from enclavia.cli.core import dev_policy_text
    from enclavia.tee.simulated import load_platform_key

    text = dev_policy_text(measurement_hex, load_platform_key(sim_dir).public_bytes.hex())
    text = text.replace("revision: 1\n", f"revision: {revision}\n")
    return text + "secrets:\n  - path: models/*\n    allow: [local-build]\n"


def served_measurement(url: str) -> str:
    """The measurement the running enclave reports. Tests take it from the enclave rather than recomputing
    it, so an edit to a measured file elsewhere in the tree during the run cannot make them disagree."""
    import secrets

    bundle = httpx.get(f"{url}/v1/attestation?nonce={secrets.token_hex(32)}", timeout=30).json()
    from enclavia.attestation.manifest import parse_manifest

    return parse_manifest(bundle["manifest"]).digest().hex()


def start_host(
    home: Path, model_dir: Path, broker_url: str, *, env: dict[str, str] | None = None, secrets: bool = True
) -> Served:
    """`enclavia serve --broker URL`; returns once the enclave is up (and holds its secrets, by default)."""
    from enclavia.tee.simulated import init_platform_key

    if not (home / "sim" / "platform_key.pem").exists():
        init_platform_key(home / "sim")
    port = free_port()
    log_path = home / f"serve-{port}.log"
    cmd = [
        sys.executable,
        "-m",
        "enclavia.cli.main",
        "serve",
        "--listen",
        f"127.0.0.1:{port}",
        "--model-dir",
        str(model_dir),
        "--state-dir",
        str(home),
        "--broker",
        broker_url,
        "--broker-retry-max",
        "1",
    ]
    proc = _spawn(cmd, log_path, {**os.environ, "ENCLAVIA_HOME": str(home), **(env or {})})
    served = Served(
        url=f"http://127.0.0.1:{port}",
        home=home,
        proc=proc,
        log_path=log_path,
        policy_text="",
        platform_key=b"",
    )
    served.wait_healthy()
    if secrets:
        wait_secrets(served)
    return served


def wait_secrets(served: Served, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            text = httpx.get(served.url + "/metrics", timeout=2.0).text
        except httpx.HTTPError:
            text = ""
        if "enclavia_host_kbs_complete 1.0" in text:
            return
        time.sleep(0.2)
    raise TimeoutError("enclave did not get its secrets:\n" + served.logs()[-3000:])


@dataclass
class Deployment:
    home: Path
    broker: Proc
    host: Served
    model_dir: Path
    db_url: str
    policy_text: str
    trace_dir: Path
    extra: list[Any] = field(default_factory=list)

    def stop(self) -> None:
        self.host.stop()
        self.broker.stop()
        for item in self.extra:
            item.stop()


def start_deployment(home: Path) -> Deployment:
    """Broker on SQLite + one `enclavia serve` with a sealed model; spans exported to home/traces."""
    trace_dir = home / "traces"
    env = {"ENCLAVIA_TRACE_EXPORT": f"file:{trace_dir}"}
    host_home = home / "host"
    host_home.mkdir(parents=True, exist_ok=True)
    model_dir, dek = sealed_model_dir(host_home)
    db_url = f"sqlite:///{home / 'broker.db'}"
    deployment = home / "deployment.yaml"
    deployment.write_text(
        "name: clinical-risk (test)\ntee: simulated\nclients: [EHR integration]\n"
        "hosts: [{name: host-a, url: 'http://127.0.0.1'}]\nbroker: {replicas: 1, store: sqlite}\n"
    )
    broker = start_broker(home / "broker", db_url, env={**env, "ENCLAVIA_DEPLOYMENT": str(deployment)})
    register_model_key(broker.url, dek)
    host = start_host(host_home, model_dir, broker.url, env=env, secrets=False)
    text = policy_text(served_measurement(host.url), host_home / "sim")
    admin(broker.url, "PUT", "/kbs/v1/admin/policy", json={"policy": text, "expected_revision": 0})
    host.policy_text = text
    wait_secrets(host)
    return Deployment(home, broker, host, model_dir, db_url, text, trace_dir)


def read_spans(trace_dir: Path) -> list[dict[str, Any]]:
    spans = []
    for path in sorted(trace_dir.glob("*.jsonl")):
        spans += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return spans


def features(row: int = 1) -> dict[str, float]:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    return {str(n): float(v) for n, v in zip(data.feature_names, data.data[row], strict=True)}
