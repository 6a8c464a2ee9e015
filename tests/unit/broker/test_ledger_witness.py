"""The ledger shows truncation and rewrite: checkpoints required at the cadence, checkpoints kept outside the
broker (``audit verify --checkpoint FILE``, file and HTTP witnesses), policy revisions that only grow and
decisions that name a signed revision. Each attack is done with SQL on the database of a running broker."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select, update
from typer.testing import CliRunner

from enclavia.broker.audit import AuditRecord
from enclavia.broker.keystore import FileKeyStore
from enclavia.broker.service import BrokerService
from enclavia.broker.store import audit_checkpoints, audit_head, audit_records
from enclavia.broker.witness import read_checkpoints
from enclavia.cli.main import app
from enclavia.errors import LedgerBehindWitnessError, SecretPathInvalidError
from tests.broker_support import Harness, make_harness

runner = CliRunner()


def _populate(h: Harness, rounds: int = 6) -> None:
    h.service.put_secret("models/m1", b"k" * 32, rotate=False)
    for _ in range(rounds):
        token = "Bearer " + h.attest()["token"]
        h.service.release("models/m1", token)
        with pytest.raises(SecretPathInvalidError):
            h.service.release("../x", token)


def _verify(h: Harness, *extra: str) -> tuple[int, str]:
    result = runner.invoke(app, ["audit", "verify", "--db", h.db_url, *extra])
    return result.exit_code, result.output


def _save_checkpoint(h: Harness, path: Path) -> dict[str, Any]:
    """What an auditor (or a witness) keeps: a checkpoint of the head, taken now."""
    cp = h.service.checkpoint(create=True)
    path.write_text(json.dumps(cp))
    return cp


def _cut_to(h: Harness, seq: int) -> None:
    """Delete every record and checkpoint after ``seq`` and point the head at ``seq``: a ledger that is
    consistent in itself, just shorter."""
    with h.service.store.engine.begin() as conn:
        keep = conn.execute(select(audit_records.c.hash).where(audit_records.c.seq == seq)).scalar_one()
        conn.execute(delete(audit_records).where(audit_records.c.seq > seq))
        conn.execute(delete(audit_checkpoints).where(audit_checkpoints.c.seq > seq))
        conn.execute(update(audit_head).values(seq=seq, hash=keep))


def _rewrite(h: Harness, seq: int) -> None:
    """Change one record, re-chain everything after it, delete every checkpoint."""
    with h.service.store.engine.begin() as conn:
        rows = list(conn.execute(select(audit_records).order_by(audit_records.c.seq)))
        prev = "0" * 64
        for row in rows:
            rec = dataclasses.replace(AuditRecord.from_row(row), prev_hash=prev)
            if rec.seq == seq:
                rec = dataclasses.replace(rec, outcome="ok", code="ok")
            digest = rec.digest()
            conn.execute(
                update(audit_records)
                .where(audit_records.c.seq == rec.seq)
                .values(outcome=rec.outcome, code=rec.code, prev_hash=prev, hash=digest)
            )
            prev = digest
        conn.execute(update(audit_head).values(hash=prev))
        conn.execute(delete(audit_checkpoints))


def test_missing_checkpoint_fails_verify(harness: Harness) -> None:
    _populate(harness)
    assert _verify(harness)[0] == 0
    with harness.service.store.engine.begin() as conn:
        conn.execute(delete(audit_checkpoints).where(audit_checkpoints.c.seq == 8))
    code, out = _verify(harness)
    assert code == 1 and "checkpoint missing" in out, out


def test_tail_truncation_with_its_checkpoints_deleted(harness: Harness, tmp_path: Path) -> None:
    """The review's case: the ledger's tail and the checkpoints after the cut are deleted, the head row
    fixed. Verify on its own cannot know; an external checkpoint taken before the cut shows it."""
    h = harness
    _populate(h)
    saved = tmp_path / "auditor-checkpoint.json"
    cp = _save_checkpoint(h, saved)
    _cut_to(h, 16)
    code, out = _verify(h)
    assert code == 0, out  # consistent in itself: this is why checkpoints must be kept elsewhere
    code, out = _verify(h, "--checkpoint", str(saved))
    assert code == 1 and "audit.behind_checkpoint" in out and f"seq {cp['seq']}" in out, out


def test_rewrite_rechain_and_deleted_checkpoints(harness: Harness, tmp_path: Path) -> None:
    """A denial rewritten as a release, the chain recomputed, all checkpoints deleted: caught by the
    cadence (checkpoints missing) and by the external checkpoint (ledger differs)."""
    h = harness
    _populate(h)
    saved = tmp_path / "cp.json"
    _save_checkpoint(h, saved)
    denied = next(r.seq for r in h.records() if r.outcome == "denied")
    _rewrite(h, denied)
    code, out = _verify(h)
    assert code == 1 and "checkpoint missing" in out, out
    code, out = _verify(h, "--checkpoint", str(saved))
    assert code == 1 and "audit.behind_checkpoint" in out and "rewritten" in out, out


def test_external_checkpoint_from_an_evidence_report_and_a_forged_one(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    _populate(h)
    cp = h.service.checkpoint(create=True)
    report = tmp_path / "evidence.json"
    report.write_text(json.dumps({"broker": {"ledger": {"last_checkpoint": cp}}}))
    assert _verify(h, "--checkpoint", str(report))[0] == 0
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps({**cp, "seq": cp["seq"] + 100}))
    code, out = _verify(h, "--checkpoint", str(forged))
    assert code == 1 and "signature invalid" in out, out


def test_policy_revision_going_back_fails_verify(harness: Harness) -> None:
    """A policy update record naming an older revision than one already applied, written through the
    broker's own ledger (signed checkpoints and all): the key holder cannot make history shrink either."""
    h = harness
    _populate(h, rounds=1)
    rev1 = h.service.get_policy()
    rt = h.service._ready()
    with h.service.store.transaction() as conn:
        rt.ledger.append(
            conn,
            action="policy.update",
            outcome="ok",
            code="ok",
            policy_revision=1,
            policy_digest=rev1["digest"],
        )
    code, out = _verify(h)
    assert code == 1 and "policy revision went backwards" in out, out


@pytest.mark.parametrize("digest", ["ab" * 32, None], ids=["unsigned-digest", "no-digest"])
def test_decision_naming_an_unsigned_revision_fails_verify(harness: Harness, digest: str | None) -> None:
    h = harness
    _populate(h, rounds=1)
    rt = h.service._ready()
    with h.service.store.transaction() as conn:
        rt.ledger.append(
            conn, action="release", outcome="ok", code="ok", policy_revision=1, policy_digest=digest
        )
    code, out = _verify(h)
    assert code == 1 and "signed policy revision" in out, out


def test_file_witness_gets_every_checkpoint_and_the_broker_refuses_a_ledger_behind_it(
    db_url: str, tmp_path: Path
) -> None:
    witness = tmp_path / "witness" / "checkpoints.jsonl"
    h = make_harness(db_url, tmp_path, witnesses=(f"file:{witness}",))
    try:
        _populate(h)
        with h.service.store.transaction() as conn:
            stored = [
                int(s)
                for s in conn.execute(
                    select(audit_checkpoints.c.seq).order_by(audit_checkpoints.c.seq)
                ).scalars()
            ]
        published = read_checkpoints(witness, h.service.public_key)
        assert [cp.seq for cp in published] == stored and len(stored) >= 3
        assert all(cp.policy_revision == 1 for cp in published)
        assert (
            runner.invoke(app, ["audit", "verify", "--db", db_url, "--checkpoint", str(witness)]).exit_code
            == 0
        )
        _cut_to(h, 8)
        h.service.close()
        service = BrokerService(h.service.config, clock=h.clock, keystore=FileKeyStore(tmp_path / "root.key"))
        h.service = service
        service.start()
        with pytest.raises(LedgerBehindWitnessError):
            h.attest()
        assert service.metrics.integrity_failures.labels("broker.ledger_behind_witness")._value.get() == 1
    finally:
        h.service.close()


@pytest.fixture
def http_sink() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Sink(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/checkpoints", received
    server.shutdown()


def test_http_witness_receives_signed_checkpoints(
    tmp_path: Path, http_sink: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = http_sink
    h = make_harness(f"sqlite:///{tmp_path / 'b.db'}", tmp_path, witnesses=(url, "http://127.0.0.1:9/down"))
    try:
        _populate(h, rounds=2)
        assert received and all(doc["public_key"] == h.service.public_key.hex() for doc in received)
        assert h.service.metrics.witness_failures.labels("http")._value.get() == len(received)
        from enclavia.broker.audit import Checkpoint

        for doc in received:
            Checkpoint.from_json({k: v for k, v in doc.items() if k != "public_key"}).verify(
                h.service.public_key
            )
    finally:
        h.service.close()
