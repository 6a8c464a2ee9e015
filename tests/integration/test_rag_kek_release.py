"""The document store's KEK released by a real broker (SQLite) to `enclavia serve --kek-secret keks/rag`.

Until the broker holds the secret and its policy allows it, ingest and query answer 503
``enclave.secrets_unavailable`` while other routes work; once released they work without a restart. The KEK
never reaches the host's logs or blob files, and the broker's ledger records the release.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import create_engine, select

from enclavia.broker.store import audit_records
from enclavia.client.sdk import Client
from enclavia.policy.document import parse_policy
from tests.broker_support import (
    ADMIN_TOKEN,
    enclave_dev_policy,
    run_cli,
    start_broker,
    start_served_with_broker,
)
from tests.integration.test_data_protection import TOKENS, _call
from tests.support import ensure_model

pytestmark = pytest.mark.slow

KEK_PATH = "keks/rag"
KEK_RULE = """secrets:
  - path: keks/*
    allow: [local-build]
    condition: '!claims.debug && claims.tee == "simulated"'
"""
DOC = {"documents": [{"id": "n-1", "title": "note", "text": "Cardiology follow-up for atrial fibrillation."}]}


def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise TimeoutError(what)


def _classification(home: Path) -> Path:
    doc = yaml.safe_load(
        (Path(__file__).parents[2] / "src/enclavia/protect/default-classification.yaml").read_text()
    )
    doc["requesters"] = [
        {
            "id": "dr-a",
            "tenant": "hosp-a",
            "clearance": ["PHI", "PCI", "PII", "CONFIDENTIAL"],
            "actions": ["ingest", "query"],
            "token_sha256": hashlib.sha256(TOKENS["a"].encode()).hexdigest(),
        }
    ]
    path = home / "classification.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_rag_kek_released_by_broker(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    model_dir = ensure_model()
    classification = _classification(home)
    measured = {"embeddings": True, "classification": classification, "kek_secret": KEK_PATH}
    rev1 = enclave_dev_policy(home, model_dir, **measured)  # trusts the enclave, releases nothing
    db_url = f"sqlite:///{tmp_path / 'broker.db'}"
    broker = start_broker(home, db_url, rev1)
    served = None
    try:
        served = start_served_with_broker(
            home,
            model_dir,
            broker.url,
            extra_args=("--embeddings", "--classification", str(classification), "--kek-secret", KEK_PATH),
            policy_text=rev1,
        )
        with Client(served.url, parse_policy(rev1)) as client:
            manifest = client.attest().bundle.manifest
            assert manifest.config["kek_secret"] == KEK_PATH
            # The relay asks for the KEK and the broker refuses: document routes are 503, others work.
            _wait_for(lambda: '"stage": "retry"' in served.logs(), 30, "relay never tried the broker")
            for route, body in (("/v1/documents", DOC), ("/v1/rag/query", {"query": "fibrillation"})):
                status, out = _call(served, route, body, TOKENS["a"])
                assert status == 503 and out["code"] == "enclave.secrets_unavailable", (route, out)
            assert client.models()["data"]

        # The admin creates the KEK and a policy revision allowing it; the running enclave gets it.
        kek = secrets.token_bytes(32)
        resp = httpx.post(
            f"{broker.url}/kbs/v1/admin/secrets/{KEK_PATH}",
            json={"value": base64.b64encode(kek).decode()},
            headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=10,
        )
        assert resp.status_code == 201, resp.text
        rev2 = enclave_dev_policy(home, model_dir, revision=2, secrets_yaml=KEK_RULE, **measured)
        (home / "rev2.yaml").write_text(rev2)
        res = run_cli(home, "policy", "apply", str(home / "rev2.yaml"), "--broker", broker.url)
        assert res.returncode == 0, res.stderr

        pid = served.enclave_pid()
        result: dict[str, object] = {}

        def ingested() -> bool:
            status, out = _call(served, "/v1/documents", DOC, TOKENS["a"])
            result.update(status=status, out=out)
            return status == 200

        _wait_for(ingested, 60, f"ingest never worked after the release: {result}")
        assert served.enclave_pid() == pid  # no restart
        status, out = _call(served, "/v1/rag/query", {"query": "atrial fibrillation"}, TOKENS["a"])
        assert status == 200 and out["context"] and out["context"][0]["document_id"] == "n-1"

        # The KEK stays inside the enclave: not in host logs, not in the host's blob files.
        needles = [kek, kek.hex().encode(), base64.b64encode(kek), base64.urlsafe_b64encode(kek).rstrip(b"=")]
        logs = served.log_path.read_bytes()
        blobs = [p for p in (home / "blobs").rglob("*") if p.is_file()]
        assert blobs, "the host stored the (encrypted) documents"
        for data in [logs, *(p.read_bytes() for p in blobs)]:
            assert not any(n in data for n in needles)

        # The broker's ledger shows the release (and the denials before it).
        with create_engine(db_url).connect() as conn:
            rows = list(conn.execute(select(audit_records).order_by(audit_records.c.seq)))
        releases = [r for r in rows if r.action == "release"]
        assert any(r.outcome == "ok" for r in releases)
        assert any(r.outcome != "ok" for r in releases)
        res = run_cli(home, "audit", "verify", "--db", db_url)
        assert res.returncode == 0 and res.stdout.startswith("OK"), res.stdout + res.stderr
    finally:
        if served is not None:
            served.stop()
        broker.stop()
