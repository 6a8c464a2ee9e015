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


@pytest.fixture(params=["sqlite", "postgresql"])
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
        aad = release_aad(out["path"], out["version"], out["policy_revision"], out["jti"])
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
    db_url: str, tmp_path: Path, *, checkpoint_every: int = 8, secrets_yaml: str = ALLOW_MODELS
) -> Harness:
    platform = SigningKey.generate()
    enclave = make_enclave(platform)
    clock = Clock()
    config = BrokerConfig(
        db_url=db_url,
        keystore=f"file:{tmp_path / 'root.key'}",
        admin_token=ADMIN_TOKEN,
        checkpoint_every=checkpoint_every,
        bootstrap_policy=policy_text(platform, enclave.manifest_digest, secrets_yaml=secrets_yaml),
    )
    service = BrokerService(config, clock=clock, keystore=FileKeyStore(tmp_path / "root.key"))
    assert service.start()
    return Harness(service=service, clock=clock, platform=platform, enclave=enclave, db_url=db_url)
