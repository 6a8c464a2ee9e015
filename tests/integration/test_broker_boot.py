"""Enclave boot against a real broker process, on SQLite and PostgreSQL: a sealed model serves only after
its key is released to the attested enclave (503 before), through the host acting as a relay."""

from __future__ import annotations

import math
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sklearn.datasets import load_breast_cancer

from enclavia.client.sdk import Client
from enclavia.errors import EnclaviaError, SecretsUnavailableError
from enclavia.inference.linear import LinearClassifier
from enclavia.policy.document import parse_policy
from tests.broker_support import (
    PgSchemas,
    enclave_dev_policy,
    run_cli,
    start_broker,
    start_served_with_broker,
)
from tests.support import ensure_model

pytestmark = pytest.mark.slow

RELEASE_RULE = """secrets:
  - path: models/*
    allow: [local-build]
    condition: '!claims.debug && claims.tee == "simulated"'
"""


def _row(i: int) -> dict[str, float]:
    data = load_breast_cancer()
    return {str(n): float(v) for n, v in zip(data.feature_names, data.data[i], strict=True)}


@pytest.fixture(scope="module")
def pg_schemas() -> Iterator[PgSchemas]:
    schemas = PgSchemas()
    yield schemas
    schemas.drop_all()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, pg_schemas: PgSchemas) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'broker.db'}"
    return pg_schemas.new()


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    out = tmp_path / "models"
    out.mkdir()
    shutil.copy(ensure_model() / "clinical-risk.json", out / "clinical-risk.json")
    return out


def _wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise TimeoutError(what)


def _predict_or_code(client: Client, row: dict[str, float]) -> dict[str, object] | str:
    status, out = client.request("POST", "/v1/predict/clinical-risk", {"features": row})
    if status == 200:
        return out  # type: ignore[no-any-return]
    return str(out.get("code")) if isinstance(out, dict) else str(status)


def test_sealed_model_serves_only_after_release(tmp_path: Path, db_url: str, model_dir: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    # Policy revision 1 trusts the enclave's measurement but releases nothing (deny by default).
    rev1 = enclave_dev_policy(home, model_dir)
    broker = start_broker(home, db_url, rev1)
    served = None
    try:
        res = run_cli(home, "model", "seal", str(model_dir / "clinical-risk.json"), "--broker", broker.url)
        assert res.returncode == 0, res.stderr
        assert (model_dir / "clinical-risk.json.sealed").exists()
        assert (model_dir / "clinical-risk.json").exists()  # the plaintext stays; the enclave must ignore it

        served = start_served_with_broker(home, model_dir, broker.url)
        local = LinearClassifier((model_dir / "clinical-risk.json").read_bytes())
        with Client(served.url, parse_policy(rev1)) as client:
            enclave = client.attest()
            assert enclave.bundle.manifest.models["clinical-risk"] == local.digest
            # Routes that need no key work; the sealed model answers 503 with a stable code.
            listed = client.models()["data"]
            assert listed == [
                {
                    "id": "clinical-risk",
                    "object": "model",
                    "artifact_sha256": local.digest,
                    "status": "sealed",
                }
            ]
            with pytest.raises(SecretsUnavailableError):
                client.predict("clinical-risk", _row(0))
            # The relay keeps trying and the broker keeps refusing (and auditing) under revision 1.
            _wait_for(lambda: "broker.release_denied" in served.logs(), 30, "relay never reached the broker")
            assert _predict_or_code(client, _row(0)) == "enclave.secrets_unavailable"

            # Revision 2 allows the release: compare-and-set through the CLI.
            rev2 = enclave_dev_policy(home, model_dir, revision=2, secrets_yaml=RELEASE_RULE)
            (home / "rev2.yaml").write_text(rev2)
            res = run_cli(home, "policy", "check", str(home / "rev2.yaml"))
            assert res.returncode == 0 and "1 secret rule" in res.stdout, res.stderr
            res = run_cli(home, "policy", "apply", str(home / "rev2.yaml"), "--broker", broker.url)
            assert res.returncode == 0, res.stderr
            res = run_cli(home, "policy", "apply", str(home / "rev2.yaml"), "--broker", broker.url)
            assert res.returncode == 1 and "policy.revision_conflict" in res.stderr

            out: dict[str, object] | str = ""

            def served_now() -> bool:
                nonlocal out
                try:
                    out = _predict_or_code(client, _row(19))
                except EnclaviaError:  # the enclave is restarting: the client re-attests next time
                    return False
                return isinstance(out, dict)

            _wait_for(served_now, 30, "sealed model never served after the policy allowed it")
            assert isinstance(out, dict)
            want = local.predict(_row(19))
            assert out["class"] == want.label and math.isclose(float(out["probability"]), want.probability)  # type: ignore[arg-type]
            assert out["model_sha256"] == local.digest

            # A restarted enclave has a new key: the relay goes through the whole flow again.
            os.kill(served.enclave_pid(), signal.SIGKILL)
            _wait_for(served_now, 60, "restarted enclave never got its key again")

        res = run_cli(home, "policy", "show", "--broker", broker.url)
        assert res.returncode == 0 and "# revision 2" in res.stdout
        res = run_cli(home, "audit", "verify", "--db", db_url)
        assert res.returncode == 0 and res.stdout.startswith("OK"), res.stdout + res.stderr
        res = run_cli(home, "broker", "secret", "list", "--broker", broker.url)
        assert res.returncode == 0 and "models/clinical-risk" in res.stdout and '"value"' not in res.stdout
        # The host saw only ciphertext and a token: nothing in its logs is a key, token or release body.
        logs = served.logs()
        assert "ciphertext" not in logs and "Bearer" not in logs and "eyJ" not in logs
        assert "ciphertext" not in broker.logs() and "eyJ" not in broker.logs()
    finally:
        if served is not None:
            served.stop()
        broker.stop()


def test_broker_down_enclave_keeps_retrying_and_serves_nothing_sealed(
    tmp_path: Path, model_dir: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    db_url = f"sqlite:///{tmp_path / 'broker.db'}"
    policy = enclave_dev_policy(home, model_dir, secrets_yaml=RELEASE_RULE)
    broker = start_broker(home, db_url, policy)
    res = run_cli(home, "model", "seal", str(model_dir / "clinical-risk.json"), "--broker", broker.url)
    assert res.returncode == 0, res.stderr
    port = broker.port
    broker.stop()  # the broker is down before the enclave boots
    served = start_served_with_broker(home, model_dir, broker.url)
    try:
        with Client(served.url, parse_policy(policy)) as client:
            client.attest()
            assert client.models()["data"][0]["status"] == "sealed"
            _wait_for(lambda: served.logs().count('"stage": "retry"') >= 3, 30, "relay did not retry")
            assert "transport.error" in served.logs()
            assert _predict_or_code(client, _row(1)) == "enclave.secrets_unavailable"
            # The broker comes back on the same address: the relay's next attempt succeeds.
            broker = start_broker(home, db_url, None, port=port)
            _wait_for(lambda: isinstance(_predict_or_code(client, _row(1)), dict), 30, "never recovered")
    finally:
        served.stop()
        broker.stop()


def test_broker_with_its_database_down_answers_503(tmp_path: Path) -> None:
    import httpx

    from tests.support import free_port

    home = tmp_path / "home"
    home.mkdir()
    closed = free_port()
    broker = start_broker(home, f"postgresql+psycopg://postgres@127.0.0.1:{closed}/test", None, wait=False)
    try:
        deadline = time.monotonic() + 30
        resp = None
        while time.monotonic() < deadline:
            try:
                resp = httpx.post(broker.url + "/kbs/v1/challenge", timeout=5)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert resp is not None and resp.status_code == 503
        assert resp.json()["code"] == "broker.store_unavailable"
        assert httpx.get(broker.url + "/healthz", timeout=5).status_code == 503
        assert broker.proc.poll() is None  # still running, still refusing
    finally:
        broker.stop()
