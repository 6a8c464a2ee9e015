"""Scale-out: 2 broker replicas on one PostgreSQL and 2 enclave hosts (`enclavia serve`), each pair behind a
round-robin; kill one of each, and requests and key releases keep succeeding."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from enclavia.client.sdk import Client
from enclavia.policy.document import parse_policy
from tests.broker_support import PgSchemas, pg_schemas
from tests.ops_support import (
    Proc,
    admin,
    features,
    policy_text,
    register_model_key,
    sealed_model_dir,
    served_measurement,
    start_broker,
    start_host,
    wait_secrets,
)
from tests.rr_proxy import RoundRobin
from tests.support import Served

__all__ = ["pg_schemas"]
pytestmark = pytest.mark.postgres


def _addr(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", int(parts.port or 80)


def _key_id(url: str) -> int:
    import base64
    import secrets

    from enclavia.crypto.ohttp import KeyConfig

    bundle = httpx.get(f"{url}/v1/attestation?nonce={secrets.token_hex(32)}", timeout=30).json()
    return KeyConfig.decode(base64.b64decode(bundle["key_config"])).key_id


def _kill_group(proc: object) -> None:
    pid = proc.pid  # type: ignore[attr-defined]
    os.killpg(pid, signal.SIGKILL)
    proc.wait()  # type: ignore[attr-defined]


@pytest.fixture
def cluster(tmp_path: Path, pg_schemas: PgSchemas) -> Iterator[dict[str, object]]:
    db_url = pg_schemas.new()
    keystore = tmp_path / "broker-root.key"
    brokers: list[Proc] = []
    hosts: list[Served] = []
    proxies: list[RoundRobin] = []
    try:
        brokers.append(
            start_broker(tmp_path / "b1", db_url, keystore=keystore)
        )  # runs migrations, makes keys
        brokers.append(start_broker(tmp_path / "b2", db_url, keystore=keystore))
        kbs = RoundRobin([_addr(b.url) for b in brokers])
        proxies.append(kbs)
        model_dir, dek = sealed_model_dir(tmp_path / "shared")
        register_model_key(kbs.url, dek)
        for name in ("h1", "h2"):
            home = tmp_path / name
            home.mkdir()
            hosts.append(start_host(home, model_dir, kbs.url, secrets=False))
        # Both enclaves run the same build; the simulated platform keys differ per host, so trust both.
        text = policy_text(served_measurement(hosts[0].url), tmp_path / "h1" / "sim")
        assert served_measurement(hosts[1].url) in text
        from enclavia.tee.simulated import load_platform_key

        second = load_platform_key(tmp_path / "h2" / "sim").public_bytes.hex()
        text = text.replace("simulated_platform_keys: ['", f"simulated_platform_keys: ['{second}', '")
        admin(kbs.url, "PUT", "/kbs/v1/admin/policy", json={"policy": text, "expected_revision": 0})
        for host in hosts:
            wait_secrets(host)
        # Distinct OHTTP key ids, so a request sealed for one replica is refused by the other as unknown
        # (and the client re-attests) rather than failing to decrypt.
        while _key_id(hosts[0].url) == _key_id(hosts[1].url):
            os.kill(hosts[1].enclave_pid(), signal.SIGKILL)
            time.sleep(0.5)
            hosts[1].wait_healthy()
            wait_secrets(hosts[1])
        front = RoundRobin([_addr(h.url) for h in hosts])
        proxies.append(front)
        yield {"brokers": brokers, "hosts": hosts, "kbs": kbs, "front": front, "policy": text, "db": db_url}
    finally:
        for proxy in proxies:
            proxy.stop()
        for host in hosts:
            host.stop()
        for broker in brokers:
            broker.stop()


def test_two_brokers_two_enclaves_survive_losing_one_of_each(cluster: dict[str, object]) -> None:
    brokers: list[Proc] = cluster["brokers"]  # type: ignore[assignment]
    hosts: list[Served] = cluster["hosts"]  # type: ignore[assignment]
    kbs: RoundRobin = cluster["kbs"]  # type: ignore[assignment]
    front: RoundRobin = cluster["front"]  # type: ignore[assignment]
    policy = parse_policy(str(cluster["policy"]))
    row = features()
    assert min(kbs.connections) >= 1, "both broker replicas served key releases"

    def predict() -> str:
        # A fresh client (a fresh connection) per call: the front round-robin alternates replicas.
        with Client(front.url, policy, reattest_wait=20.0) as client:
            return str(client.predict("clinical-risk", row)["class"])

    before = {predict() for _ in range(4)}
    assert min(front.connections) >= 2 and len(before) == 1
    with Client(front.url, policy, reattest_wait=20.0) as sticky:
        assert sticky.predict("clinical-risk", row)["class"] in before

        # Kill one broker replica and one enclave host (the host process and its enclave, SIGKILL).
        _kill_group(brokers[0].proc)
        _kill_group(hosts[0].proc)

        # Requests keep succeeding: new clients land on the surviving host; a client attested to the dead one
        # gets an unknown key id from the survivor, re-attests once and retries once.
        for _ in range(4):
            assert predict() in before
            assert sticky.predict("clinical-risk", row)["class"] in before

    # Key releases keep succeeding: the surviving enclave restarts (new HPKE key), its relay goes through the
    # round-robin to the surviving broker replica, which releases the sealed model's key again.
    survivor = hosts[1]
    old = survivor.enclave_pid()
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if survivor.enclave_pid() != old:
                break
        except LookupError:
            pass
        time.sleep(0.1)
    survivor.wait_healthy()
    wait_secrets(survivor)
    assert predict() in before
    metrics = httpx.get(survivor.url + "/metrics", timeout=10).text
    assert "enclavia_enclave_restarts_total 1.0" in metrics

    # The surviving broker's view: the same ledger, verified, with releases from both replicas' work.
    summary = admin(kbs.url, "GET", "/kbs/v1/admin/ops/summary?verify=now")
    assert summary["ledger"]["verification"]["ok"]
    releases = sum(
        r["count"]
        for r in summary["decisions"]["all_time"]
        if r["action"] == "release" and r["outcome"] == "ok"
    )
    assert releases >= 3  # two enclaves at start, one after the restart
