"""The broker over HTTP (FastAPI TestClient): problem+json codes, admin auth, database down -> 503."""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from enclavia.broker.service import BrokerConfig, BrokerService, create_app
from tests.broker_support import ADMIN_TOKEN, Harness, make_harness

ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def client(db_url: str, tmp_path: Path) -> Iterator[tuple[TestClient, Harness]]:
    h = make_harness(db_url, tmp_path)
    with TestClient(create_app(h.service)) as c:
        yield c, h


def _code(resp: object) -> str:
    return json.loads(resp.content)["code"]  # type: ignore[attr-defined]


def test_release_over_http(client: tuple[TestClient, Harness]) -> None:
    c, h = client
    value = base64.b64encode(b"m" * 32).decode()
    r = c.post("/kbs/v1/admin/secrets/models/m1", json={"value": value}, headers=ADMIN)
    assert r.status_code == 201 and r.json() == {"path": "models/m1", "version": 1}
    r = c.post("/kbs/v1/admin/secrets/models/m1", json={"value": value}, headers=ADMIN)
    assert r.status_code == 409 and _code(r) == "broker.secret_exists"
    r = c.post("/kbs/v1/admin/secrets/models/m1/versions", json={"value": value}, headers=ADMIN)
    assert r.status_code == 201 and r.json()["version"] == 2

    ch = c.post("/kbs/v1/challenge").json()
    assert len(bytes.fromhex(ch["nonce"])) == 32 and ch["expires_at"].endswith("Z")
    bundle = h.bundle(ch["nonce"])
    r = c.post("/kbs/v1/attest", json={"bundle": bundle})
    assert r.status_code == 200, r.content
    token = r.json()["token"]
    r = c.get("/kbs/v1/secrets/models/m1", headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    assert h.open(r.json()) == b"m" * 32
    # The same bundle again: its nonce is spent.
    r = c.post("/kbs/v1/attest", json={"bundle": bundle})
    assert r.status_code == 403 and _code(r) == "attestation.replayed_nonce"


def test_denials_are_problem_json_without_echo(client: tuple[TestClient, Harness]) -> None:
    c, h = client
    token = h.attest()["token"]
    auth = {"authorization": f"Bearer {token}"}
    cases = [
        ("/kbs/v1/secrets/models/%2e%2e/admin", auth, 400, "broker.secret_path_invalid"),
        ("/kbs/v1/secrets/models/..%2fadmin", auth, 400, "broker.secret_path_invalid"),
        ("/kbs/v1/secrets/models/m1%00", auth, 400, "broker.secret_path_invalid"),
        ("/kbs/v1/secrets/models/m1", {}, 401, "broker.token_invalid"),
        (
            "/kbs/v1/secrets/models/m1",
            {"authorization": "Bearer canary-token-xyz"},
            401,
            "broker.token_invalid",
        ),
        ("/kbs/v1/secrets/models/m1?version=abc", auth, 400, "broker.secret_path_invalid"),
        ("/kbs/v1/secrets/models/m1", auth, 404, "broker.secret_not_found"),
    ]
    for url, headers, status, code in cases:
        r = c.get(url, headers=headers)
        assert (r.status_code, _code(r)) == (status, code), url
        assert r.headers["content-type"] == "application/problem+json"
        assert b"canary" not in r.content and b"admin" not in r.content
    r = c.post("/kbs/v1/attest", content=b"canary-" + b"x" * 10)
    assert (
        r.status_code == 403 and _code(r) == "attestation.malformed_evidence" and b"canary" not in r.content
    )
    r = c.post("/kbs/v1/attest", content=b"x" * (3 << 20))
    assert r.status_code == 413
    metrics = c.get("/metrics").text
    assert 'enclavia_broker_key_release_denials_total{code="broker.secret_path_invalid"} 4.0' in metrics, (
        metrics
    )


def test_admin_api_requires_the_token(client: tuple[TestClient, Harness]) -> None:
    c, h = client
    for method, url in (
        ("GET", "/kbs/v1/admin/secrets"),
        ("GET", "/kbs/v1/admin/policy"),
        ("PUT", "/kbs/v1/admin/policy"),
        ("DELETE", "/kbs/v1/admin/secrets/models/m1"),
        ("POST", "/kbs/v1/admin/secrets/models/m1"),
        ("GET", "/kbs/v1/admin/audit/checkpoint"),
    ):
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": ADMIN_TOKEN}):
            r = c.request(method, url, headers=headers, json={})
            # Failures are limited per source (burst 10): then refused before the token is even compared.
            assert (r.status_code, _code(r)) in {
                (401, "broker.admin_unauthorized"),
                (429, "broker.rate_limited"),
            }, (method, url)
    # One aggregate record per outcome for the window, with the counts (broker.surface).
    h.service.flush_aggregates(force=True)
    denied = {r.code: r.count for r in h.records() if r.action == "admin.auth"}
    assert denied == {"broker.admin_unauthorized": 10, "broker.rate_limited": 8}


def test_admin_policy_and_checkpoint(client: tuple[TestClient, Harness]) -> None:
    c, h = client
    r = c.get("/kbs/v1/admin/policy", headers=ADMIN)
    assert r.status_code == 200 and r.json()["revision"] == 1
    src = r.json()["source"].replace("revision: 1", "revision: 2")
    r = c.put("/kbs/v1/admin/policy", json={"policy": src, "expected_revision": 0}, headers=ADMIN)
    assert r.status_code == 409 and _code(r) == "policy.revision_conflict"
    r = c.put("/kbs/v1/admin/policy", json={"policy": "not: [valid", "expected_revision": 1}, headers=ADMIN)
    assert r.status_code == 400 and _code(r) == "policy.invalid"
    r = c.put("/kbs/v1/admin/policy", json={"policy": src, "expected_revision": 1}, headers=ADMIN)
    assert r.status_code == 200 and r.json()["revision"] == 2
    r = c.post("/kbs/v1/admin/audit/checkpoint", headers=ADMIN)
    assert r.status_code == 201
    cp = r.json()
    assert cp["public_key"] == c.get("/kbs/v1/public-key").json()["public_key"]
    assert c.get("/kbs/v1/admin/audit/checkpoint", headers=ADMIN).json()["seq"] == cp["seq"]
    r = c.get("/kbs/v1/admin/secrets", headers=ADMIN)
    assert r.status_code == 200 and r.json() == {"secrets": []}
    r = c.get("/kbs/v1/admin/audit/ref", params={"name": "secret", "value": "models/m1"}, headers=ADMIN)
    assert r.json() == {"name": "secret", "ref": h.service._ready().ledger.ref("secret", "models/m1")}
    r = c.get("/kbs/v1/admin/audit/ref", params={"name": "password", "value": "x"}, headers=ADMIN)
    assert r.status_code == 400
    assert c.get("/healthz").json() == {"status": "ok"}


def test_database_down_at_start_is_503_then_recovers(tmp_path: Path) -> None:
    """The broker starts against a database on a closed port: every route answers 503, nothing crashes."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = BrokerConfig(
        db_url=f"postgresql+psycopg://postgres@127.0.0.1:{port}/test", keystore=f"file:{tmp_path}/k"
    )
    service = BrokerService(config)
    with TestClient(create_app(service)) as c:
        for method, url in (
            ("POST", "/kbs/v1/challenge"),
            ("POST", "/kbs/v1/attest"),
            ("GET", "/kbs/v1/secrets/models/m1"),
            ("GET", "/healthz"),
        ):
            r = c.request(method, url, content=b"{}")
            assert r.status_code == 503 and _code(r) == "broker.store_unavailable", url
            assert r.headers["retry-after"] == "1"


class _Proxy:
    """A TCP proxy to PostgreSQL that the test can cut, to take the database away mid-flight."""

    def __init__(self, target_port: int = 5432) -> None:
        self.target = ("127.0.0.1", target_port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.up = True
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.up = False
        for s in self.conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        self.conns.clear()

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


@pytest.mark.postgres
def test_database_going_down_mid_flight_is_503(tmp_path: Path, pg_schemas: object) -> None:
    url = pg_schemas.new()  # type: ignore[attr-defined]
    proxy = _Proxy()
    try:
        h = make_harness(url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}"), tmp_path)
        h.service.put_secret("models/m1", b"k" * 32, rotate=False)
        token = "Bearer " + h.attest()["token"]
        with TestClient(create_app(h.service)) as c:
            assert c.get("/kbs/v1/secrets/models/m1", headers={"authorization": token}).status_code == 200
            proxy.cut()
            for _ in range(3):
                r = c.get("/kbs/v1/secrets/models/m1", headers={"authorization": token})
                assert r.status_code == 503 and _code(r) in {"broker.store_unavailable", "audit.write_failed"}
            assert c.post("/kbs/v1/challenge").status_code == 503
            proxy.restore()
            r = c.get("/kbs/v1/secrets/models/m1", headers={"authorization": token})
            assert r.status_code == 200
        h.service.close()
    finally:
        proxy.close()
