"""Faults around key release: the broker down or slow, its database down, its audit sink failing, and the
enclave restarting with its keys gone. The host's real KbsRelay drives a real enclave socket server
against a real broker over HTTP (tests/faults/support.py), all in this process.

In every case: nothing is released that the ledger does not record, nothing is released without a fresh
attestation, the sealed model never serves before its key arrives, and what the broker stores (secrets,
their values, the policy, a ledger that verifies) is the same after the fault as before it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sklearn.datasets import load_breast_cancer
from sqlalchemy import text

from enclavia.errors import DecryptionError, SecretsUnavailableError
from tests.broker_support import PgSchemas
from tests.faults.support import BrokerWorld, FaultProxy, RelayStack, wait_for

ROW = {
    str(n): float(v)
    for n, v in zip(load_breast_cancer().feature_names, load_breast_cancer().data[3], strict=True)
}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[BrokerWorld]:
    w = BrokerWorld(tmp_path / "broker", f"sqlite:///{tmp_path / 'broker.db'}")
    yield w
    w.close()


@pytest.fixture
def proxy(world: BrokerWorld) -> Iterator[FaultProxy]:
    p = FaultProxy(world.http.port)
    yield p
    p.close()


def _stack(world: BrokerWorld, url: str, tmp_path: Path) -> RelayStack:
    return RelayStack(world, url, tmp_path)


def _ok(records: list[Any], action: str) -> list[Any]:
    return [r for r in records if r.action == action and r.outcome == "ok"]


def _assert_every_release_followed_a_fresh_attestation(world: BrokerWorld) -> None:
    """Each release in the ledger names a token (jti, as an HMAC) that an earlier successful attestation
    issued; each attestation consumed a challenge issued before it."""
    records = world.records()
    issued: dict[str, int] = {}
    for r in records:
        ids = json.loads(r.ids)
        if r.action == "attest" and r.outcome == "ok":
            issued[ids["jti"]] = r.seq
        if r.action == "release" and r.outcome == "ok":
            assert ids["jti"] in issued and issued[ids["jti"]] < r.seq, r.seq


def _serves_the_real_model(stack: RelayStack, world: BrokerWorld) -> None:
    got, want = stack.model.predict(ROW), world.plain.predict(ROW)
    assert (got.label, got.probability) == (want.label, want.probability)


def test_broker_down_then_back(world: BrokerWorld, proxy: FaultProxy, tmp_path: Path) -> None:
    """The broker is unreachable when the enclave boots: the relay backs off and retries, the sealed model
    answers 503 (SecretsUnavailableError), and it serves once the broker is back."""
    before = world.snapshot()
    proxy.mode = "refuse"
    stack = _stack(world, proxy.url, tmp_path)
    try:
        wait_for(lambda: stack.attempts("transport.error") >= 3, 15, "relay did not retry")
        assert not stack.serving() and stack.installed == []
        with pytest.raises(SecretsUnavailableError):
            stack.model.predict(ROW)
        proxy.restore()
        wait_for(stack.serving, 15, "never recovered after the broker came back")
        _serves_the_real_model(stack, world)
    finally:
        stack.close()
    assert world.snapshot() == before
    _assert_every_release_followed_a_fresh_attestation(world)


def test_broker_slow(world: BrokerWorld, proxy: FaultProxy, tmp_path: Path) -> None:
    """Every broker answer takes longer than the relay's timeout: attempts time out (no half-installed
    secret), then the broker speeds up (still slow, within the timeout) and the release completes."""
    before = world.snapshot()
    proxy.delay_s = 1.0  # relay timeout: 0.5 s
    stack = _stack(world, proxy.url, tmp_path)
    try:
        wait_for(lambda: stack.attempts("transport.error") >= 2, 20, "relay did not time out")
        assert not stack.serving() and stack.installed == []
        proxy.delay_s = 0.05
        wait_for(stack.serving, 20, "never recovered when the broker sped up")
        _serves_the_real_model(stack, world)
        assert len(stack.installed) == 1
    finally:
        stack.close()
    assert world.snapshot() == before
    _assert_every_release_followed_a_fresh_attestation(world)


@pytest.mark.parametrize("action", ["attest", "release"])
def test_audit_sink_failing(world: BrokerWorld, proxy: FaultProxy, tmp_path: Path, action: str) -> None:
    """The audit ledger refuses appends (a full audit volume, a trigger, a lost replica): the decision it
    would record fails with it, 503 audit.write_failed; no token or secret leaves unaudited."""
    before = world.snapshot()
    with world.service.store.engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_records "
                f"WHEN NEW.action = '{action}' BEGIN SELECT RAISE(ABORT, 'audit volume full'); END"
            )
        )
    stack = _stack(world, proxy.url, tmp_path)
    try:
        wait_for(lambda: stack.attempts("audit.write_failed") >= 2, 15, "audit failure not seen")
        assert not stack.serving() and stack.installed == []
        assert _ok(world.records(), "release") == []
        if action == "attest":
            assert _ok(world.records(), "attest") == []
        with world.service.store.engine.begin() as conn:
            conn.execute(text("DROP TRIGGER refuse_audit"))
        wait_for(stack.serving, 15, "never recovered when the audit sink came back")
        _serves_the_real_model(stack, world)
    finally:
        stack.close()
    assert world.snapshot() == before
    assert len(_ok(world.records(), "release")) == len(stack.installed) == 1
    _assert_every_release_followed_a_fresh_attestation(world)


def test_restart_with_keys_lost_needs_a_fresh_attestation(
    world: BrokerWorld, proxy: FaultProxy, tmp_path: Path
) -> None:
    """The enclave restarts (a new process: new HPKE key, the model sealed again). Its keys come back
    only through a new challenge and a new attestation; the release captured before the restart is
    useless to it (sealed to the old key), and a replay of it is refused."""
    stack = _stack(world, proxy.url, tmp_path)
    try:
        wait_for(stack.serving, 15, "first release")
        first_key = stack.enclave.key_config
        old_release = stack.installed[0]
        restart_seq = world.records()[-1].seq
        stack.restart()
        assert not stack.serving() and stack.enclave.key_config != first_key
        with pytest.raises(DecryptionError):
            stack.enclave.key_release.install(old_release)
        assert not stack.serving()
        wait_for(stack.serving, 15, "no release after the restart")
        _serves_the_real_model(stack, world)
        after = [r for r in world.records() if r.seq > restart_seq]
        actions = [(r.action, r.outcome) for r in after]
        assert actions.index(("attest", "ok")) < actions.index(("release", "ok"))
        first, second = (json.loads(b)["jti"] for b in stack.installed)
        assert first != second
    finally:
        stack.close()
    _assert_every_release_followed_a_fresh_attestation(world)


def test_database_down_then_back(tmp_path: Path, pg_schemas: PgSchemas) -> None:
    """PostgreSQL goes away (every pooled connection cut, new ones refused) while an enclave waits for its
    key: the broker answers 503 broker.store_unavailable, the relay retries, and when the database is back
    the release completes. The data the broker stored before the outage is all there, unchanged."""
    url = pg_schemas.new()
    db_proxy = FaultProxy(5432)
    world = BrokerWorld(tmp_path / "broker", url.replace("127.0.0.1:5432", f"127.0.0.1:{db_proxy.port}"))
    stack = None
    try:
        before = world.snapshot()
        db_proxy.cut()
        stack = _stack(world, world_url(world), tmp_path)
        wait_for(lambda: stack.attempts("broker.store_unavailable") >= 2, 15, "outage not seen")
        assert not stack.serving() and stack.installed == []
        db_proxy.restore()
        wait_for(stack.serving, 20, "never recovered after the database came back")
        _serves_the_real_model(stack, world)
        assert world.snapshot() == before
        _assert_every_release_followed_a_fresh_attestation(world)
    finally:
        if stack is not None:
            stack.close()
        world.close()
        db_proxy.close()


def world_url(world: BrokerWorld) -> str:
    return f"http://127.0.0.1:{world.http.port}"


@pytest.fixture(scope="module")
def pg_schemas() -> Iterator[PgSchemas]:
    schemas = PgSchemas()
    yield schemas
    schemas.drop_all()
