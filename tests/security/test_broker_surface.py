"""The broker's unauthenticated surface is bounded (issue 14): 1,000 anonymous challenges and 200 failed admin
logins from one source add at most 4 ledger records per aggregate window (docs/broker.md: "Unauthenticated
surface"), are rate-limited per source and counted in metrics; ``/metrics`` can require a bearer token."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from enclavia.broker.audit import verify_ledger
from enclavia.broker.service import create_app
from enclavia.errors import AdminUnauthorizedError, BrokerRateLimitedError
from tests.broker_support import ADMIN_TOKEN, Harness, db_url, make_harness, pg_schemas

__all__ = ["db_url", "pg_schemas"]

METRICS_TOKEN = "metrics-" + "m" * 24


@pytest.fixture
def h(db_url: str, tmp_path: Path) -> Iterator[Harness]:
    # Refill slowed to nothing, so the counts do not depend on how fast the machine is.
    harness = make_harness(
        db_url, tmp_path, metrics_token=METRICS_TOKEN, challenge_rate=0.001, admin_fail_rate=0.001
    )
    yield harness
    harness.service.close()


def _decisions(h: Harness, action: str, code: str) -> float:
    outcome = "ok" if code == "ok" else "denied"
    return h.service.metrics.decisions.labels(action, outcome, code)._value.get()


def test_flood_of_challenges_and_failed_logins_adds_a_bounded_number_of_records(h: Harness) -> None:
    before = len(h.records())
    statuses: dict[int, int] = {}
    with TestClient(create_app(h.service)) as c:
        for _ in range(1000):
            r = c.post("/kbs/v1/challenge")
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
        for i in range(200):
            r = c.get("/kbs/v1/admin/secrets", headers={"authorization": f"Bearer guess-{i}"})
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
        assert len(h.records()) == before  # nothing per request
    # Per source: a burst of 50 challenges, then 429; 10 failed logins, then refused before comparing.
    assert statuses == {200: 50, 429: 950 + 190, 401: 10}
    h.service.flush_aggregates(force=True)  # the window's end; the broker stopping has done it already
    added = h.records()[before:]
    assert len(added) <= 4
    assert {(r.action, r.outcome, r.code): r.count for r in added} == {
        ("challenge", "ok", "ok"): 50,
        ("challenge", "denied", "broker.rate_limited"): 950,
        ("admin.auth", "denied", "broker.admin_unauthorized"): 10,
        ("admin.auth", "denied", "broker.rate_limited"): 190,
    }
    assert _decisions(h, "challenge", "ok") == 50
    assert _decisions(h, "challenge", "broker.rate_limited") == 950
    assert _decisions(h, "admin.auth", "broker.admin_unauthorized") == 10
    with h.service.store.transaction() as conn:
        report = verify_ledger(conn, h.service.public_key)
    assert report.last_checkpoint_seq == added[-1].seq  # each aggregate window ends with a signed checkpoint


def test_guessing_source_is_refused_before_compare_and_others_are_not(h: Harness) -> None:
    """After its burst of failures a source is refused even with the right token (its attempts are no
    longer compared: no oracle for guessing); other sources are unaffected."""
    codes = []
    for i in range(30):
        with pytest.raises((AdminUnauthorizedError, BrokerRateLimitedError)) as err:
            h.service.check_admin(f"Bearer guess-{i}", "203.0.113.7")
        codes.append(err.value.code)
    assert codes == ["broker.admin_unauthorized"] * 10 + ["broker.rate_limited"] * 20
    with pytest.raises(BrokerRateLimitedError):
        h.service.check_admin(f"Bearer {ADMIN_TOKEN}", "203.0.113.7")
    h.service.check_admin(f"Bearer {ADMIN_TOKEN}", "198.51.100.2")


def test_metrics_require_the_bearer_token_when_configured(h: Harness) -> None:
    with TestClient(create_app(h.service)) as c:
        for headers in ({}, {"authorization": "Bearer wrong"}):
            r = c.get("/metrics", headers=headers)
            assert r.status_code == 401 and b"enclavia_broker" not in r.content
        r = c.get("/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN}"})
        assert r.status_code == 200 and b"enclavia_broker_decisions" in r.content
