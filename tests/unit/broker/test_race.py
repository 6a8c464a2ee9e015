"""A policy update racing concurrent key requests: nothing is released after the removing revision commits."""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass

from enclavia.errors import EnclaviaError, TokenStaleError
from tests.broker_support import Harness, policy_text

WORKERS = 8


@dataclass
class Attempt:
    started: float
    finished: float
    ok: bool
    code: str
    revision: int | None


def test_no_release_after_the_removing_revision_commits(harness: Harness) -> None:
    h = harness
    h.service.put_secret("models/m1", b"k" * 32, rotate=False)
    stop = threading.Event()
    attempts: list[Attempt] = []
    lock = threading.Lock()

    def worker() -> None:
        token = "Bearer " + h.attest()["token"]
        while not stop.is_set():
            started = time.monotonic()
            try:
                out = h.service.release("models/m1", token)
                attempt = Attempt(started, time.monotonic(), True, "ok", out["policy_revision"])
            except TokenStaleError as err:
                attempt = Attempt(started, time.monotonic(), False, err.code, None)
                with contextlib.suppress(EnclaviaError):
                    token = "Bearer " + h.attest()["token"]  # re-attest under the new revision
            except EnclaviaError as err:
                attempt = Attempt(started, time.monotonic(), False, err.code, None)
            with lock:
                attempts.append(attempt)

    threads = [threading.Thread(target=worker) for _ in range(WORKERS)]
    for t in threads:
        t.start()
    time.sleep(0.4)
    removing = policy_text(h.platform, h.enclave.manifest_digest, revision=2, secrets_yaml="")
    h.service.put_policy(removing, 1)
    committed = time.monotonic()
    time.sleep(0.4)
    stop.set()
    for t in threads:
        t.join(30)

    # Client view: no success for a request that started after the update returned.
    late_successes = [a for a in attempts if a.ok and a.started > committed]
    assert late_successes == []
    assert any(a.ok for a in attempts), "no release happened before the update: the race was not exercised"
    assert any(not a.ok and a.started > committed for a in attempts)
    assert all(a.revision == 1 for a in attempts if a.ok)

    # Ledger view (seq order is commit order): after the policy.update record, every release is denied.
    records = h.records()
    update_seq = next(
        r.seq for r in records if r.action == "policy.update" and r.outcome == "ok" and r.seq > 1
    )
    after = [r for r in records if r.action == "release" and r.seq > update_seq]
    before = [r for r in records if r.action == "release" and r.seq < update_seq]
    assert after and all(r.outcome == "denied" for r in after)
    assert {r.code for r in after} <= {"broker.token_stale", "broker.release_denied"}
    assert any(r.outcome == "ok" for r in before)
    assert all(r.policy_revision == 1 for r in records if r.action == "release" and r.outcome == "ok")
