"""Signed policy history: the upgrade of a database written before signatures (migration 0003), and
``enclavia audit verify`` on the policy checks."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import text

from enclavia.broker.audit import verify_ledger
from enclavia.broker.keystore import FileKeyStore
from enclavia.broker.service import BrokerConfig, BrokerService
from enclavia.broker.store import MIGRATIONS_DIR, Store
from enclavia.crypto.signing import SigningKey
from enclavia.errors import PolicyChainBrokenError
from tests.broker_support import ADMIN_TOKEN, Clock, make_enclave, policy_text


def test_legacy_unsigned_history_is_signed_once_at_upgrade(db_url: str, tmp_path: Path) -> None:
    """A database at schema 0002 with two unsigned revisions (as the broker wrote them before): the first
    start after the upgrade, asked by the operator, signs that history once, records it, and verify accepts
    the result; a start without the flag refuses it."""
    platform = SigningKey.generate()
    enclave = make_enclave(platform)
    store = Store(db_url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0002")
        for rev in (1, 2):
            conn.execute(
                text(
                    "INSERT INTO policies (revision, policy_id, source, created_at_ms)"
                    " VALUES (:r, 'test', :s, 0)"
                ),
                {"r": rev, "s": policy_text(platform, enclave.manifest_digest, revision=rev)},
            )
        conn.execute(text("UPDATE policy_head SET revision = 2"))
    store.dispose()
    config = BrokerConfig(db_url=db_url, keystore=f"file:{tmp_path / 'root.key'}", admin_token=ADMIN_TOKEN)
    keystore = FileKeyStore(tmp_path / "root.key")
    unasked = BrokerService(config, clock=Clock(), keystore=keystore)
    try:  # without the operator's flag the unsigned history is a broken chain, not signed
        unasked.start()
        with pytest.raises(PolicyChainBrokenError):
            unasked.get_policy()
    finally:
        unasked.close()
    config = dataclasses.replace(config, adopt_unsigned_policies=True)
    service = BrokerService(config, clock=Clock(), keystore=keystore)
    try:
        assert service.start()
        head = service.get_policy()
        assert head["revision"] == 2 and len(head["digest"]) == 64 and head["signature"]
        with service.store.transaction() as conn:
            actions = [r.action for r in conn.execute(text("SELECT action FROM audit_records ORDER BY seq"))]
            report = verify_ledger(conn, service.public_key)
        assert actions == ["policy.adopt"]
        assert report.policy_revisions == 2 and report.checkpoints == 1
        nonce = service.challenge()["nonce"]
        out = service.attest(
            json.dumps({"bundle": enclave.attestation_bundle(bytes.fromhex(nonce)).to_json()}).encode()
        )
        assert out["result"]["policy_revision"] == 2
    finally:
        service.close()
