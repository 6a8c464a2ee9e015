"""The audit ledger: `enclavia audit verify` catches edited, deleted and reordered records."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable

import pytest
from sqlalchemy import delete, select, text, update
from typer.testing import CliRunner

from enclavia.broker.audit import AuditRecord, canonical, verify_ledger
from enclavia.broker.store import audit_checkpoints, audit_head, audit_records
from enclavia.cli.main import app
from enclavia.crypto.signing import SigningKey
from enclavia.errors import AuditVerificationError, AuditWriteError, SecretPathInvalidError
from tests.broker_support import Harness

runner = CliRunner()


def _populate(h: Harness) -> None:
    h.service.put_secret("models/m1", b"k" * 32, rotate=False)
    for _ in range(4):
        token = "Bearer " + h.attest()["token"]
        h.service.release("models/m1", token)
        with pytest.raises(SecretPathInvalidError):
            h.service.release("../x", token)
    assert len(h.records()) >= 14  # 1 policy + 1 secret + 4 * (attest, release, denial); challenges aggregate


def _verify(h: Harness, *extra: str) -> tuple[int, str]:
    result = runner.invoke(app, ["audit", "verify", "--db", h.db_url, *extra])
    return result.exit_code, result.output


def _tamper(h: Harness, fn: Callable[..., None]) -> None:
    with h.service.store.engine.begin() as conn:
        fn(conn)


def test_intact_ledger_verifies(harness: Harness) -> None:
    _populate(harness)
    code, out = _verify(harness)
    assert code == 0, out
    assert "OK" in out and "signed checkpoint" in out
    pinned = harness.service.public_key.hex()
    code, out = _verify(harness, "--public-key", pinned)
    assert code == 0 and "(pinned)" in out


def test_edited_record_is_caught(harness: Harness) -> None:
    _populate(harness)
    _tamper(
        harness,
        lambda c: c.execute(update(audit_records).where(audit_records.c.seq == 5).values(code="edited")),
    )
    code, out = _verify(harness)
    assert code == 1 and "audit.verification_failed" in out and "seq 5" in out


def test_deleted_record_is_caught(harness: Harness) -> None:
    _populate(harness)
    _tamper(harness, lambda c: c.execute(delete(audit_records).where(audit_records.c.seq == 6)))
    code, out = _verify(harness)
    assert code == 1 and "audit.verification_failed" in out


def test_reordered_records_are_caught(harness: Harness) -> None:
    _populate(harness)

    def swap(conn: object) -> None:
        c = conn  # type: ignore[assignment]
        c.execute(update(audit_records).where(audit_records.c.seq == 6).values(seq=-1))  # type: ignore[attr-defined]
        c.execute(update(audit_records).where(audit_records.c.seq == 7).values(seq=6))  # type: ignore[attr-defined]
        c.execute(update(audit_records).where(audit_records.c.seq == -1).values(seq=7))  # type: ignore[attr-defined]

    _tamper(harness, swap)
    code, out = _verify(harness)
    assert code == 1 and "audit.verification_failed" in out


def test_deleted_last_record_is_caught(harness: Harness) -> None:
    _populate(harness)
    last = harness.records()[-1].seq
    _tamper(harness, lambda c: c.execute(delete(audit_records).where(audit_records.c.seq == last)))
    code, out = _verify(harness)
    assert code == 1 and "head" in out


def test_rewritten_chain_is_caught_by_signed_checkpoints(harness: Harness) -> None:
    """An attacker with write access edits record 3 and recomputes every later hash and the head."""
    _populate(harness)

    def rewrite(conn: object) -> None:
        c = conn  # type: ignore[assignment]
        rows = list(c.execute(select(audit_records).order_by(audit_records.c.seq)))  # type: ignore[attr-defined]
        prev = "0" * 64
        for row in rows:
            rec = AuditRecord.from_row(row)
            if rec.seq == 3:
                rec = dataclasses.replace(rec, outcome="denied", code="made.up", prev_hash=prev)
            else:
                rec = dataclasses.replace(rec, prev_hash=prev)
            digest = rec.digest()
            c.execute(  # type: ignore[attr-defined]
                update(audit_records)
                .where(audit_records.c.seq == rec.seq)
                .values(outcome=rec.outcome, code=rec.code, prev_hash=prev, hash=digest)
            )
            prev = digest
        c.execute(update(audit_head).values(hash=prev))  # type: ignore[attr-defined]

    _tamper(harness, rewrite)
    code, out = _verify(harness)
    assert code == 1 and "checkpoint" in out


def test_forged_checkpoint_and_wrong_key_are_caught(harness: Harness) -> None:
    _populate(harness)
    code, out = _verify(harness, "--public-key", SigningKey.generate().public_bytes.hex())
    # The first thing signed by the broker key that verify meets is the policy history.
    assert code == 1 and "not signed by the broker" in out
    _tamper(
        harness,
        lambda c: c.execute(update(audit_checkpoints).values(signature="00" * 64)),
    )
    code, out = _verify(harness)
    assert code == 1 and "signature" in out


def test_on_demand_checkpoint_and_ids_are_hmacs(harness: Harness) -> None:
    _populate(harness)
    cp = harness.service.checkpoint(create=True)
    assert cp["seq"] == harness.records()[-1].seq
    assert harness.service.checkpoint(create=False)["seq"] == cp["seq"]
    with harness.service.store.transaction() as conn:
        report = verify_ledger(conn, harness.service.public_key)
    assert report.last_checkpoint_seq == cp["seq"]
    ledger = harness.service._ready().ledger
    secret_ref = ledger.ref("secret", "models/m1")
    releases = [json.loads(r.ids) for r in harness.records() if r.action == "release" and r.outcome == "ok"]
    assert releases and all(ids["secret"] == secret_ref for ids in releases)
    # Canonical JSON is what is hashed: sorted keys, no whitespace.
    assert canonical({"b": 1, "a": [1, 2]}) == b'{"a":[1,2],"b":1}'


def test_failed_audit_append_fails_the_release(harness: Harness) -> None:
    h = harness
    h.service.put_secret("models/m1", b"k" * 32, rotate=False)
    token = "Bearer " + h.attest()["token"]
    before = len(h.records())
    with h.service.store.engine.begin() as conn:
        if h.service.store.is_postgres:
            conn.execute(
                text(
                    "CREATE FUNCTION refuse_release_audit() RETURNS trigger AS $$ BEGIN "
                    "IF NEW.action = 'release' THEN RAISE EXCEPTION 'audit volume full'; END IF; "
                    "RETURN NEW; END $$ LANGUAGE plpgsql"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER refuse_release BEFORE INSERT ON audit_records "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_release_audit()"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE TRIGGER refuse_release BEFORE INSERT ON audit_records "
                    "WHEN NEW.action = 'release' BEGIN SELECT RAISE(ABORT, 'audit volume full'); END"
                )
            )
    with pytest.raises(AuditWriteError):
        h.service.release("models/m1", token)
    assert len(h.records()) == before  # nothing committed: no release without its record
    with h.service.store.transaction() as conn:
        verify_ledger(conn, h.service.public_key)


def test_verify_ledger_raises_typed_error(harness: Harness) -> None:
    _populate(harness)
    _tamper(
        harness, lambda c: c.execute(update(audit_records).where(audit_records.c.seq == 2).values(time="x"))
    )
    with harness.service.store.transaction() as conn, pytest.raises(AuditVerificationError):
        verify_ledger(conn, harness.service.public_key)


def test_audit_show_and_ref_find_records_without_identifiers(harness: Harness) -> None:
    _populate(harness)
    result = runner.invoke(app, ["audit", "show", "--db", harness.db_url, "--denied", "--last", "50"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 4 and all("broker.secret_path_invalid" in line for line in lines)
    ref = harness.service.audit_ref("secret", "models/m1")["ref"]
    result = runner.invoke(app, ["audit", "show", "--db", harness.db_url, "--ref", ref, "--last", "50"])
    shown = result.output.strip().splitlines()
    assert len(shown) == 5  # the create and four releases
    assert all(ref[:16] in line for line in shown) and "models/m1" not in result.output
