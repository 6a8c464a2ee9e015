"""Broker test helpers (unit and integration): stores on SQLite and PostgreSQL (a throwaway schema per test),
a simulated enclave, policies, and a harness around an in-process BrokerService."""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from enclavia.attestation.manifest import ImageManifest
from enclavia.broker.keystore import FileKeyStore
from enclavia.broker.service import BrokerConfig, BrokerService
from enclavia.crypto.kbs import open_secret, release_aad
from enclavia.crypto.signing import SigningKey
from enclavia.enclave.core import Enclave
from enclavia.enclave.routes import InnerApp
from enclavia.tee.simulated import SimulatedAttester

PG_BASE = os.environ.get("ENCLAVIA_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
ADMIN_TOKEN = "admin-" + "x" * 32


def _pg_conninfo() -> str:
    return PG_BASE.replace("postgresql+psycopg://", "postgresql://")


@dataclass
class PgSchemas:
    """Creates throwaway schemas in the test database and drops them afterwards."""

    made: list[str] = field(default_factory=list)

    def new(self) -> str:
        import psycopg

        name = "enclavia_t_" + secrets.token_hex(6)
        try:
            with psycopg.connect(_pg_conninfo(), autocommit=True, connect_timeout=5) as conn:
                conn.execute(f'CREATE SCHEMA "{name}"')
        except psycopg.OperationalError as exc:
            pytest.fail(
                f"PostgreSQL is required at {PG_BASE} (start it with .ci/run or pg_ctlcluster): "
                f"{type(exc).__name__}"
            )
        self.made.append(name)
        sep = "&" if "?" in PG_BASE else "?"
        return f"{PG_BASE}{sep}options=-csearch_path%3D{name}"

    def drop_all(self) -> None:
        import psycopg

        if not self.made:
            return
        with psycopg.connect(_pg_conninfo(), autocommit=True, connect_timeout=5) as conn:
            for name in self.made:
                conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture(scope="session")
def pg_schemas() -> Iterator[PgSchemas]:
    schemas = PgSchemas()
    yield schemas
    schemas.drop_all()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, pg_schemas: PgSchemas) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'broker.db'}"
    return pg_schemas.new()


class Clock:
    def __init__(self) -> None:
        import time

        self.offset = 0.0
        self._time = time.time

    def __call__(self) -> float:
        return self._time() + self.offset


def make_enclave(platform: SigningKey, *, tee_config: str = "simulated", debug: bool = False) -> Enclave:
    manifest = ImageManifest(
        enclavia_version="0.1.0",
        files={"enclavia/__init__.py": "00" * 32},
        dependencies=(),
        models={},
        config={"tee": tee_config},
    )
    attester = SimulatedAttester(platform_key=platform, measurement=manifest.digest(), debug=debug)
    return Enclave(attester, manifest, InnerApp(models={}))


def policy_text(
    platform: SigningKey,
    measurement: bytes,
    *,
    revision: int = 1,
    profile: str = "dev",
    secrets_yaml: str = "",
) -> str:
    return (
        "policy_id: test\n"
        f"revision: {revision}\n"
        f"profile: {profile}\n"
        "requirements: {allow_debug: false, max_evidence_age_s: 300}\n"
        f"trust: {{simulated_platform_keys: ['{platform.public_bytes.hex()}']}}\n"
        "reference_values:\n"
        "  simulated:\n"
        "    - name: good-build\n"
        f"      measurement: '{measurement.hex()}'\n" + secrets_yaml
    )


ALLOW_MODELS = """secrets:
  - path: models/*
    allow: [good-build]
    condition: 'claims.tee == "simulated" && !claims.debug'
  - path: tenants/a/key
    allow: [good-build]
"""


@dataclass
class Harness:
    service: BrokerService
    clock: Clock
    platform: SigningKey
    enclave: Enclave
    db_url: str

    def bundle(self, nonce_hex: str, enclave: Enclave | None = None) -> dict[str, Any]:
        return (enclave or self.enclave).attestation_bundle(bytes.fromhex(nonce_hex)).to_json()

    def attest(self, enclave: Enclave | None = None) -> dict[str, Any]:
        import json

        nonce = self.service.challenge()["nonce"]
        return self.service.attest(json.dumps({"bundle": self.bundle(nonce, enclave)}).encode())

    def open(self, out: dict[str, Any], enclave: Enclave | None = None) -> bytes:
        enc = enclave or self.enclave
        aad = release_aad(
            out["path"], out["version"], out["policy_revision"], out["jti"], out.get("current_version")
        )
        return open_secret(
            enc.gateway_key.private_key,
            base64.b64decode(out["enc"]),
            base64.b64decode(out["ciphertext"]),
            aad,
        )

    def records(self) -> list[Any]:
        from sqlalchemy import select

        from enclavia.broker.store import audit_records

        with self.service.store.transaction() as conn:
            return list(conn.execute(select(audit_records).order_by(audit_records.c.seq)))


def make_harness(
    db_url: str,
    tmp_path: Path,
    *,
    checkpoint_every: int = 8,
    secrets_yaml: str = ALLOW_MODELS,
    **config: Any,
) -> Harness:
    platform = SigningKey.generate()
    enclave = make_enclave(platform)
    clock = Clock()
    broker_config = BrokerConfig(
        db_url=db_url,
        keystore=f"file:{tmp_path / 'root.key'}",
        admin_token=ADMIN_TOKEN,
        checkpoint_every=checkpoint_every,
        bootstrap_policy=policy_text(platform, enclave.manifest_digest, secrets_yaml=secrets_yaml),
        **config,
    )
    service = BrokerService(broker_config, clock=clock, keystore=FileKeyStore(tmp_path / "root.key"))
    assert service.start()
    return Harness(service=service, clock=clock, platform=platform, enclave=enclave, db_url=db_url)


# -- real processes (integration tests) ---------------------------------------------------------


@dataclass
class BrokerProc:
    url: str
    port: int
    proc: Any
    log_path: Path
    db_url: str
    keystore: str

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        import signal
        import subprocess

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def cli_env(home: Path, broker_url: str | None = None) -> dict[str, str]:
    env = {**os.environ, "ENCLAVIA_HOME": str(home), "ENCLAVIA_BROKER_ADMIN_TOKEN": ADMIN_TOKEN}
    if broker_url:
        env["ENCLAVIA_BROKER_URL"] = broker_url
    return env


def run_cli(home: Path, *args: str, broker_url: str | None = None) -> Any:
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "enclavia.cli.main", *args],
        env=cli_env(home, broker_url),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def start_broker(
    home: Path,
    db_url: str,
    policy: str | None,
    *,
    port: int | None = None,
    wait: bool = True,
    keystore: str | None = None,
    extra: tuple[str, ...] = (),
) -> BrokerProc:
    import subprocess
    import sys
    import time

    import httpx

    from tests.support import free_port

    port = port or free_port()
    keystore = keystore or f"file:{home / 'broker-root.key'}"
    log_path = home / f"broker-{port}.log"
    cmd = [
        sys.executable,
        "-m",
        "enclavia.cli.main",
        "broker",
        "serve",
        "--db",
        db_url,
        "--keystore",
        keystore,
        "--listen",
        f"127.0.0.1:{port}",
        "--checkpoint-every",
        "16",
        *extra,
    ]
    if policy is not None:
        (home / "broker-policy.yaml").write_text(policy)
        cmd += ["--policy", str(home / "broker-policy.yaml")]
    with log_path.open("ab") as log:
        proc = subprocess.Popen(cmd, env=cli_env(home), stdout=log, stderr=subprocess.STDOUT)
    b = BrokerProc(f"http://127.0.0.1:{port}", port, proc, log_path, db_url, keystore)
    if wait:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError("broker exited:\n" + b.logs()[-3000:])
            try:
                if httpx.get(b.url + "/healthz", timeout=1.0).status_code == 200:
                    return b
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError("broker not healthy:\n" + b.logs()[-3000:])
    return b


def start_served_with_broker(
    home: Path, model_dir: Path, broker_url: str, *, extra_args: tuple[str, ...] = (), policy_text: str = ""
) -> Any:
    """`enclavia serve --broker URL` as a real process (host + separate enclave), like tests.support."""
    import subprocess
    import sys

    from tests.support import Served, free_port

    port = free_port()
    log_path = home / "serve.log"
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
        *extra_args,
    ]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, env=cli_env(home), stdout=log, stderr=subprocess.STDOUT)
    served = Served(
        url=f"http://127.0.0.1:{port}",
        home=home,
        proc=proc,
        log_path=log_path,
        policy_text=policy_text,
        platform_key=b"",
    )
    served.wait_healthy()
    return served


def enclave_dev_policy(
    home: Path, model_dir: Path, *, revision: int = 1, secrets_yaml: str = "", **config: Any
) -> str:
    """The dev policy for the enclave `enclavia serve` will start from model_dir (sealed or not); ``config``:
    further EnclaveConfig fields (embeddings, classification, kek_secret) that change the measurement."""
    from enclavia.cli.core import dev_policy_text
    from enclavia.enclave.boot import EnclaveConfig, load_models, manifest_for
    from enclavia.tee.simulated import init_platform_key

    pub = init_platform_key(home / "sim")
    manifest = manifest_for(EnclaveConfig(model_dir, home / "sim", **config), load_models(model_dir))
    text = dev_policy_text(manifest.digest().hex(), pub.hex())
    return text.replace("revision: 1\n", f"revision: {revision}\n") + secrets_yaml
