"""The client refuses an enclave whose measured code is not a published release (transparency log).

A real host and enclave process (the ``served`` fixture); the log in this process (SQLite), reached
as an object, over HTTP (FastAPI test client), or as `enclavia log serve` for the CLI. Every refusal
happens before any request reaches /v1/gateway.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from enclavia.attestation.release import ApproverSet
from enclavia.attestation.tlog import LogEntry
from enclavia.client.sdk import Client
from enclavia.client.tlog import HttpLogReader
from enclavia.crypto.signing import SigningKey
from enclavia.errors import (
    ConsistencyProofError,
    InclusionProofError,
    LogEntryNotFoundError,
    ReleaseSignatureError,
    TreeHeadInvalidError,
)
from enclavia.policy.document import Policy
from enclavia.release.tlog import TransparencyLog
from enclavia.release.tlog_server import create_log_app
from tests.release.helpers import Authority
from tests.support import Served, free_port

pytestmark = pytest.mark.slow

FEATURES_ROW = 0


def _row() -> dict[str, float]:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    return {str(n): float(v) for n, v in zip(data.feature_names, data.data[FEATURES_ROW], strict=True)}


@pytest.fixture(scope="module")
def manifest_digest(served: Served, dev_policy: Policy) -> bytes:
    with Client(served.url, dev_policy) as client:
        return client.attest().bundle.manifest.digest()


@pytest.fixture
def authority() -> Authority:
    return Authority()


class Counting:
    """An httpx client that counts what reaches the gateway."""

    def __init__(self) -> None:
        self.gateway_posts = 0
        self.http = httpx.Client(timeout=30, event_hooks={"request": [self._hook]})

    def _hook(self, request: httpx.Request) -> None:
        if request.url.path == "/v1/gateway":
            self.gateway_posts += 1


def _log(
    tmp_path: Path, auth: Authority, name: str = "tlog", key: SigningKey | None = None
) -> TransparencyLog:
    return TransparencyLog(
        f"sqlite:///{tmp_path / (name + '.db')}",
        key or SigningKey.generate(),
        release_keys=[auth.release_key.public_bytes],
    )


def _client(served: Served, policy: Policy, log: Any, key: bytes, counting: Counting, **kw: Any) -> Client:
    return Client(served.url, policy, http=counting.http, tlog=log, tlog_key=key, **kw)


def test_published_release_is_accepted(
    served: Served, dev_policy: Policy, manifest_digest: bytes, authority: Authority, tmp_path: Path
) -> None:
    log = _log(tmp_path, authority)
    log.append(authority.release(b"\x01" * 48, "0.9.0").encode())
    log.append(authority.release(manifest_digest, "1.0.0").encode())
    counting = Counting()
    with _client(
        served,
        dev_policy,
        log,
        log.public_key,
        counting,
        release_keys=[authority.release_key.public_bytes],
        approvers=authority.approvers,
        tlog_state=tmp_path / "state.json",
    ) as client:
        out = client.predict("clinical-risk", _row())
        assert out["class"] in {"malignant", "benign"}
        assert client.last_inclusion is not None
        assert client.last_inclusion.index == 1 and client.last_inclusion.release.record.version == "1.0.0"
    assert counting.gateway_posts == 1
    assert json.loads((tmp_path / "state.json").read_text())  # the head is kept for next time


def test_over_http(
    served: Served, dev_policy: Policy, manifest_digest: bytes, authority: Authority, tmp_path: Path
) -> None:
    log = _log(tmp_path, authority)
    log.append(authority.release(manifest_digest).encode())
    reader = HttpLogReader("http://testserver", http=TestClient(create_log_app(log, None)))
    counting = Counting()
    with _client(served, dev_policy, reader, log.public_key.hex(), counting) as client:
        client.attest()
        assert client.last_inclusion is not None


def test_unpublished_measurement_is_refused_before_any_data(
    served: Served, dev_policy: Policy, authority: Authority, tmp_path: Path
) -> None:
    log = _log(tmp_path, authority)
    log.append(authority.release(b"\x02" * 48).encode())  # some other build
    counting = Counting()
    client = _client(served, dev_policy, log, log.public_key, counting)
    with client, pytest.raises(LogEntryNotFoundError):
        client.predict("clinical-risk", _row())
    assert counting.gateway_posts == 0


def test_release_signed_by_an_untrusted_key_is_refused(
    served: Served, dev_policy: Policy, manifest_digest: bytes, authority: Authority, tmp_path: Path
) -> None:
    rogue = Authority()
    log = TransparencyLog(f"sqlite:///{tmp_path / 'l.db'}", SigningKey.generate())  # accepts any release
    log.append(rogue.release(manifest_digest).encode())
    counting = Counting()
    with (
        _client(
            served,
            dev_policy,
            log,
            log.public_key,
            counting,
            release_keys=[authority.release_key.public_bytes],
        ) as client,
        pytest.raises(ReleaseSignatureError),
    ):
        client.attest()
    assert counting.gateway_posts == 0


class Tamper:
    def __init__(self, log: TransparencyLog, **overrides: Any) -> None:
        self.log = log
        self.overrides = overrides

    def __getattr__(self, name: str) -> Any:
        return self.overrides.get(name, getattr(self.log, name))


def test_modified_leaf_is_detected(
    served: Served, dev_policy: Policy, manifest_digest: bytes, authority: Authority, tmp_path: Path
) -> None:
    log = _log(tmp_path, authority)
    log.append(authority.release(manifest_digest, "1.0.0").encode())
    real = log.lookup(manifest_digest)[0]
    doc = json.loads(real.leaf_input)
    doc["record"]["notes"] = "quietly changed"
    modified = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    reader = Tamper(
        log,
        lookup=lambda d: [LogEntry(real.index, modified)],
        get_inclusion_proof=lambda h, n: log.get_inclusion_proof(real.leaf_hash, n),
    )
    counting = Counting()
    client = _client(served, dev_policy, reader, log.public_key, counting)
    with client, pytest.raises(InclusionProofError):
        client.predict("clinical-risk", _row())
    assert counting.gateway_posts == 0


def test_modified_tree_head_is_detected(
    served: Served, dev_policy: Policy, manifest_digest: bytes, authority: Authority, tmp_path: Path
) -> None:
    log = _log(tmp_path, authority)
    log.append(authority.release(manifest_digest).encode())
    sth = log.get_sth()
    forged = type(sth)(sth.log_id, sth.tree_size, sth.timestamp, bytes(32), sth.signature)
    counting = Counting()
    client = _client(served, dev_policy, Tamper(log, get_sth=lambda: forged), log.public_key, counting)
    with client, pytest.raises(TreeHeadInvalidError):
        client.predict("clinical-risk", _row())
    assert counting.gateway_posts == 0


def test_forked_log_is_detected_across_client_runs(
    served: Served, dev_policy: Policy, manifest_digest: bytes, authority: Authority, tmp_path: Path
) -> None:
    """Same log key, two histories: the state file remembers the first head; the second view is refused."""
    key = SigningKey.generate()
    honest = _log(tmp_path, authority, "honest", key)
    forked = _log(tmp_path, authority, "forked", key)
    earlier = authority.release(b"\x05" * 48, "0.9.0").encode()
    for leaf in (earlier, authority.release(manifest_digest, "1.0.0").encode()):
        honest.append(leaf)
    for leaf in (
        authority.release(b"\x06" * 48, "0.9.0-other").encode(),
        authority.release(manifest_digest, "1.0.0").encode(),
        authority.release(b"\x07" * 48, "1.0.1").encode(),
    ):
        forked.append(leaf)
    state = tmp_path / "state.json"
    with _client(served, dev_policy, honest, key.public_bytes, Counting(), tlog_state=state) as client:
        client.attest()
    counting = Counting()
    client = _client(served, dev_policy, forked, key.public_bytes, counting, tlog_state=state)
    with client, pytest.raises(ConsistencyProofError):
        client.predict("clinical-risk", _row())
    assert counting.gateway_posts == 0
    # without the remembered head, the forked view alone is self-consistent: that is what the state is for
    with _client(served, dev_policy, forked, key.public_bytes, Counting()) as client:
        client.attest()


def test_quorum_is_enforced_when_configured(
    served: Served, dev_policy: Policy, manifest_digest: bytes, authority: Authority, tmp_path: Path
) -> None:
    log = _log(tmp_path, authority)
    log.append(authority.release(manifest_digest, approvals=1).encode())
    strict = ApproverSet(3, authority.approvers.members)
    with _client(
        served,
        dev_policy,
        log,
        log.public_key,
        Counting(),
        release_keys=[authority.release_key.public_bytes],
        approvers=strict,
    ) as client:
        from enclavia.errors import ApprovalQuorumError

        with pytest.raises(ApprovalQuorumError):
            client.attest()


# -- CLI: enclavia log serve / log append / attest --tlog -------------------------------------------


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "enclavia.cli.main", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def log_server(tmp_path: Path) -> Iterator[tuple[str, Path, str]]:
    key = tmp_path / "log.key"
    assert _cli("release", "keygen", "--out", str(key)).returncode == 0
    port = free_port()
    token = "t" * 40
    env = {**os.environ, "ENCLAVIA_LOG_ADMIN_TOKEN": token}
    proc = subprocess.Popen(
        [sys.executable, "-m", "enclavia.cli.main", "log", "serve", "--key", str(key),
         "--db", f"sqlite:///{tmp_path / 'served-log.db'}", "--listen", f"127.0.0.1:{port}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(url + "/healthz", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                raise RuntimeError("log server exited")
            import time

            time.sleep(0.05)
        yield url, key, token
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_cli_attest_with_tlog(
    served: Served, manifest_digest: bytes, log_server: tuple[str, Path, str], tmp_path: Path
) -> None:
    url, log_key, token = log_server
    auth = Authority()
    release = tmp_path / "release.json"
    release.write_bytes(auth.release(manifest_digest).encode())
    policy = str(served.home / "dev-policy.yaml")
    state = str(tmp_path / "state.json")
    pub = str(log_key) + ".pub"
    base = ["attest", served.url, "--policy", policy, "--tlog", url, "--tlog-key", pub, "--tlog-state", state]
    res = _cli(*base)
    assert res.returncode == 1 and "tlog.not_included" in res.stderr
    res = _cli(
        "log", "append", "--url", url, "--release", str(release), env={"ENCLAVIA_LOG_ADMIN_TOKEN": "nope"}
    )
    assert res.returncode == 1 and "broker.admin_unauthorized" in res.stderr
    res = _cli(
        "log", "append", "--url", url, "--release", str(release), env={"ENCLAVIA_LOG_ADMIN_TOKEN": token}
    )
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["index"] == 0
    res = _cli(*base, "--json", "--release-key", auth.release_key.public_bytes.hex())
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["transparency_log"] == {"release": "1.0.0", "index": 0, "tree_size": 1}
    res = _cli(*base, "--release-key", SigningKey.generate().public_bytes.hex())
    assert res.returncode == 1 and "release.bad_signature" in res.stderr
    res = _cli("log", "check", "--url", url, "--log-key", pub, "--manifest-digest", manifest_digest.hex(),
               "--state", state)  # fmt: skip
    assert res.returncode == 0 and "INCLUDED 1.0.0 at index 0 of 1" in res.stdout


def test_cli_drift_monitor(
    served: Served, manifest_digest: bytes, log_server: tuple[str, Path, str], tmp_path: Path
) -> None:
    url, log_key, token = log_server
    auth = Authority()
    approvers = tmp_path / "approvers.json"
    approvers.write_text(
        json.dumps(
            {"threshold": 2, "approvers": {n: k.public_bytes.hex() for n, k in auth.approver_keys.items()}}
        )
    )
    release = tmp_path / "release.json"
    release.write_bytes(auth.release(manifest_digest).encode())
    env = {"ENCLAVIA_LOG_ADMIN_TOKEN": token}
    assert _cli("log", "append", "--url", url, "--release", str(release), env=env).returncode == 0
    policy = served.home / "dev-policy.yaml"
    monitor = ["release", "monitor", "--enclave", served.url, "--tlog", url,
               "--tlog-key", str(log_key) + ".pub", "--release-key", auth.release_key.public_bytes.hex(),
               "--approvers", str(approvers),
               "--state-dir", str(tmp_path / "mon")]  # fmt: skip
    res = _cli(*monitor, "--policy", str(policy), "--metrics-out", str(tmp_path / "m.prom"))
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.strip() == ""
    assert (
        'enclavia_release_drift_active{kind="measurement_not_allowed"} 0.0'
        in (tmp_path / "m.prom").read_text()
    )
    # the policy in force no longer allows what runs: drift
    other = tmp_path / "other-policy.yaml"
    other.write_text(policy.read_text().replace(manifest_digest.hex(), "ab" * 48))
    res = _cli(*monitor, "--policy", str(other))
    assert res.returncode == 1
    assert [json.loads(line)["kind"] for line in res.stdout.splitlines()] == ["measurement_not_allowed"]
    # a log entry nobody approved: drift
    rogue = tmp_path / "rogue.json"
    rogue.write_bytes(Authority().release(b"\x09" * 48, "6.6.6").encode())
    assert _cli("log", "append", "--url", url, "--release", str(rogue), env=env).returncode == 0
    res = _cli(*monitor, "--policy", str(policy))
    assert res.returncode == 1
    found = [json.loads(line) for line in res.stdout.splitlines()]
    assert [(f["kind"], f["log_index"]) for f in found] == [("unapproved_log_entry", 1)]
