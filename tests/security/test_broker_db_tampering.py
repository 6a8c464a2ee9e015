"""An attacker with write access to the key broker's database only: no admin token, no signing key, no key
store. Each test does to the database of a running broker exactly what the review did (issue 14), with plain
SQL on a connection of its own, and then asks the broker for the secret. Nothing stored may turn a refusal
into a release; what cannot be prevented (cutting the ledger, deleting rows) must be refused or detected.

Both backends: the ``db_url`` fixture gives SQLite and PostgreSQL (a throwaway schema per test).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from enclavia.broker.keystore import FileKeyStore
from enclavia.broker.service import BrokerService, create_app
from enclavia.crypto.signing import SigningKey
from enclavia.errors import (
    PolicyChainBrokenError,
    ReleaseDeniedError,
    StoreTamperedError,
)
from tests.broker_support import Harness, db_url, make_enclave, make_harness, pg_schemas

__all__ = ["db_url", "pg_schemas"]

SECRET = b"\x42" * 32
OTHER = b"\x17" * 32


def _policy(h: Harness, other_measurement: bytes, *, revision: int, allow_good: bool = True) -> str:
    """good-build may open models/*; other-build is a known build that may attest but opens nothing."""
    refs = f"    - name: other-build\n      measurement: '{other_measurement.hex()}'\n"
    if allow_good:
        refs = f"    - name: good-build\n      measurement: '{h.enclave.manifest_digest.hex()}'\n" + refs
    rules = "secrets:\n  - {path: models/*, allow: [good-build]}\n" if allow_good else ""
    return (
        f"policy_id: test\nrevision: {revision}\nprofile: dev\n"
        "requirements: {allow_debug: false, max_evidence_age_s: 300}\n"
        f"trust: {{simulated_platform_keys: ['{h.platform.public_bytes.hex()}']}}\n"
        f"reference_values:\n  simulated:\n{refs}{rules}"
    )


@pytest.fixture
def h(db_url: str, tmp_path: Path) -> Iterator[Harness]:
    harness = make_harness(db_url, tmp_path)
    harness.service.put_secret("models/m1", SECRET, rotate=False)
    harness.service.put_secret("models/m2", OTHER, rotate=False)
    yield harness
    harness.service.close()


def _sql(h: Harness, statement: str, **params: Any) -> None:
    """The attacker's own connection to the broker's database."""
    engine = create_engine(h.db_url)
    try:
        with engine.begin() as conn:
            conn.execute(text(statement), params)
    finally:
        engine.dispose()


def _restart(h: Harness, tmp_path: Path) -> BrokerService:
    h.service.close()
    service = BrokerService(h.service.config, clock=h.clock, keystore=FileKeyStore(tmp_path / "root.key"))
    assert service.start()
    h.service = service
    return service


def _released(h: Harness) -> int:
    return sum(1 for r in h.records() if r.action == "release" and r.outcome == "ok")


def _codes(h: Harness, action: str) -> list[str]:
    return [r.code for r in h.records() if r.action == action and r.outcome == "denied"]


def test_edited_attestation_claims_do_not_open_a_refused_secret(h: Harness) -> None:
    """A build refused with release_denied gets its stored claims edited to name the allowed reference
    (and its measurement); the same token is presented again, without a restart."""
    other = make_enclave(h.platform, tee_config="other")
    h.service.put_policy(_policy(h, other.manifest_digest, revision=2), 1)
    token = h.attest(other)["token"]
    with pytest.raises(ReleaseDeniedError):
        h.service.release("models/m1", "Bearer " + token)
    _sql(
        h,
        "UPDATE attestations SET claims = REPLACE(REPLACE(claims, 'other-build', 'good-build'), :m, :g)",
        m=other.manifest_digest.hex(),
        g=h.enclave.manifest_digest.hex(),
    )
    with pytest.raises(ReleaseDeniedError):
        h.service.release("models/m1", "Bearer " + token)
    assert _released(h) == 0
    assert _codes(h, "release") == ["broker.release_denied"] * 2


def test_secret_row_moved_or_renumbered_fails_to_unwrap(h: Harness) -> None:
    """Another secret's wrapped key and ciphertext copied onto a path the enclave may open; a version
    renumbered. Wrapped with path and version as associated data, neither opens: a typed error."""
    token = h.attest()["token"]
    _sql(
        h,
        "UPDATE secret_versions SET"
        " wrapped_key = (SELECT s.wrapped_key FROM secret_versions s WHERE s.path = 'models/m2'),"
        " ciphertext = (SELECT s.ciphertext FROM secret_versions s WHERE s.path = 'models/m2')"
        " WHERE path = 'models/m1'",
    )
    with pytest.raises(StoreTamperedError):
        h.service.release("models/m1", "Bearer " + token)
    _sql(h, "UPDATE secret_versions SET version = 2 WHERE path = 'models/m2'")
    with pytest.raises(StoreTamperedError):
        h.service.release("models/m2", "Bearer " + token)
    assert _released(h) == 0
    assert _codes(h, "release") == ["broker.store_tampered"] * 2


def test_edited_policy_source_is_refused_after_restart(h: Harness, tmp_path: Path) -> None:
    """The stored YAML of the revision in force is edited to allow an unapproved build, and the broker
    restarts. The signature no longer verifies: service is refused (typed, counted, audited), never the
    stored text used."""
    rogue = make_enclave(h.platform, tee_config="rogue")
    _sql(
        h,
        "UPDATE policies SET source = REPLACE(source, :good, :rogue) WHERE revision = 1",
        good=h.enclave.manifest_digest.hex(),
        rogue=rogue.manifest_digest.hex(),
    )
    service = _restart(h, tmp_path)
    for enclave in (rogue, h.enclave):
        with pytest.raises(PolicyChainBrokenError):
            h.attest(enclave)
    with pytest.raises(PolicyChainBrokenError):
        service.get_policy()
    assert _codes(h, "attest")[-2:] == ["broker.policy_chain_broken"] * 2
    assert service.metrics.integrity_failures.labels("broker.policy_chain_broken")._value.get() == 1
    with TestClient(create_app(service)) as c:
        nonce = c.post("/kbs/v1/challenge").json()["nonce"]
        r = c.post("/kbs/v1/attest", content=json.dumps({"bundle": h.bundle(nonce, rogue)}))
        health = c.get("/healthz")
    assert (r.status_code, r.json()["code"]) == (503, "broker.policy_chain_broken")
    assert (health.status_code, health.json()["code"]) == (503, "broker.policy_chain_broken")


def test_wiped_ledger_and_stripped_signatures_are_not_adopted(h: Harness, tmp_path: Path) -> None:
    """The attacker makes the store look like one from before signed policies: every ledger record and
    checkpoint deleted, the signatures stripped, the stored text edited to allow an unapproved build. The
    broker signs an unsigned history only when its operator asks (``adopt_unsigned_policies``), never
    because the database says it is old: the restart is refused, not the attacker's text signed."""
    rogue = make_enclave(h.platform, tee_config="rogue")
    for statement in (
        "DELETE FROM audit_checkpoints",
        "DELETE FROM audit_records",
        "UPDATE audit_head SET seq = 0, hash = :zero",
        "UPDATE policies SET signature = NULL, digest = NULL, prev_digest = NULL",
    ):
        _sql(h, statement, zero="00" * 32)
    _sql(
        h,
        "UPDATE policies SET source = REPLACE(source, :good, :rogue) WHERE revision = 1",
        good=h.enclave.manifest_digest.hex(),
        rogue=rogue.manifest_digest.hex(),
    )
    _restart(h, tmp_path)
    with pytest.raises(PolicyChainBrokenError):
        h.attest(rogue)
    assert not [r for r in h.records() if r.action == "policy.adopt"]


def test_policy_head_set_back_live_is_refused(h: Harness) -> None:
    """Revision 2 revoked good-build; the head is set back to revision 1 while the broker runs."""
    token = h.attest()["token"]
    other = make_enclave(h.platform, tee_config="other")
    h.service.put_policy(_policy(h, other.manifest_digest, revision=2, allow_good=False), 1)
    _sql(h, "UPDATE policy_head SET revision = 1")
    with pytest.raises(PolicyChainBrokenError):
        h.attest()
    with pytest.raises(PolicyChainBrokenError):
        h.service.release("models/m1", "Bearer " + token)
    assert _released(h) == 0


def test_revision_deleted_and_head_set_back_is_refused_after_restart(h: Harness, tmp_path: Path) -> None:
    """The revoking revision's row is deleted as well and the broker restarts: the signed checkpoint
    written with revision 2 holds the high-water mark."""
    other = make_enclave(h.platform, tee_config="other")
    h.service.put_policy(_policy(h, other.manifest_digest, revision=2, allow_good=False), 1)
    _sql(h, "DELETE FROM policies WHERE revision = 2")
    _sql(h, "UPDATE policy_head SET revision = 1")
    _restart(h, tmp_path)
    with pytest.raises(PolicyChainBrokenError):
        h.attest()


def test_forged_revision_with_stripped_signatures_is_refused(h: Harness, tmp_path: Path) -> None:
    """Signatures stripped from every row, hoping the broker signs the (edited) history again as it does
    once after the upgrade to signed policies."""
    rogue = make_enclave(h.platform, tee_config="rogue")
    _sql(
        h,
        "UPDATE policies SET signature = NULL, digest = NULL, prev_digest = NULL,"
        " source = REPLACE(source, :good, :rogue)",
        good=h.enclave.manifest_digest.hex(),
        rogue=rogue.manifest_digest.hex(),
    )
    _restart(h, tmp_path)
    with pytest.raises(PolicyChainBrokenError):
        h.attest(rogue)


def test_revision_signed_by_another_key_is_refused(h: Harness, tmp_path: Path) -> None:
    """A whole revision 2 forged and signed with a key of the attacker's own."""
    from enclavia.broker.policychain import sign_revision
    from enclavia.policy.document import parse_policy

    rogue = make_enclave(h.platform, tee_config="rogue")
    head = h.service.get_policy()
    forged = sign_revision(
        SigningKey.generate(), parse_policy(_policy(h, rogue.manifest_digest, revision=2)), head["digest"]
    )
    _sql(
        h,
        "INSERT INTO policies (revision, policy_id, source, created_at_ms, prev_digest, digest, signature)"
        " VALUES (2, 'test', :src, 0, :prev, :digest, :sig)",
        src=forged.content,
        prev=forged.prev_digest,
        digest=forged.digest,
        sig=forged.signature,
    )
    _sql(h, "UPDATE policy_head SET revision = 2")
    with pytest.raises(PolicyChainBrokenError):
        h.attest(rogue)  # live: the new head is verified link by link before use
    _restart(h, tmp_path)
    with pytest.raises(PolicyChainBrokenError):
        h.attest(rogue)


def test_deleted_broker_key_is_not_replaced_by_a_new_identity(h: Harness, tmp_path: Path) -> None:
    """The wrapped signing key is deleted: the broker must not mint a new key (and sign a new history)."""
    _sql(h, "DELETE FROM key_material WHERE name = 'signing'")
    h.service.close()
    service = BrokerService(h.service.config, clock=h.clock, keystore=FileKeyStore(tmp_path / "root.key"))
    assert not service.start()
    with pytest.raises(StoreTamperedError):
        service.challenge()
    service.close()
