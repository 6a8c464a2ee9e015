"""Pure policy steps of a rollout, and the reference ``not_after`` deadline they rely on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from enclavia.attestation.claims import Claims, Tee
from enclavia.errors import MeasurementNotAllowedError, PolicyLoadError, RolloutStateError
from enclavia.policy.document import appraise, parse_policy
from enclavia.release.rollout import promote_policy, retire_policy, start_policy, with_revision

OLD, NEW = "11" * 48, "22" * 48
KEY = "33" * 32
BASE = f"""policy_id: p
revision: 7
profile: dev
trust: {{simulated_platform_keys: ['{KEY}']}}
reference_values:
  simulated:
    - name: v1
      measurement: '{OLD}'
    - name: spare
      measurement: '{"44" * 48}'
secrets:
  - path: models/*
    allow: [v1]
  - path: other/key
    allow: [v1, spare]
"""
T = datetime(2026, 12, 1, tzinfo=UTC)


def _claims(m: str) -> Claims:
    return Claims(tee=Tee.SIMULATED, measurement=bytes.fromhex(m), report_data=b"", debug=False)


def test_not_after_ends_an_entry() -> None:
    policy = parse_policy(
        BASE.replace(
            f"measurement: '{OLD}'", f"measurement: '{OLD}'\n      not_after: '2026-12-01T00:00:00Z'"
        )
    )
    assert policy.not_after == {"v1": T}
    assert appraise(_claims(OLD), policy, now=T).reference_name == "v1"
    with pytest.raises(MeasurementNotAllowedError):
        appraise(_claims(OLD), policy, now=T + timedelta(seconds=1))
    for bad in ("'tomorrow'", "'2026-12-01T00:00:00'", "12"):
        with pytest.raises(PolicyLoadError):
            parse_policy(
                BASE.replace(f"measurement: '{OLD}'", f"measurement: '{OLD}'\n      not_after: {bad}")
            )


def test_start_promote_retire() -> None:
    started = start_policy(
        BASE, tee=Tee.SIMULATED, old="v1", new="release-2", values={"measurement": NEW}, deadline=T
    )
    p = parse_policy(started)
    assert p.revision == 8
    assert [r.name for r in p.references] == ["v1", "release-2", "spare"]
    assert p.not_after == {"v1": T}
    assert [s["allow"] for s in p.secrets] == [["v1", "release-2"], ["v1", "spare", "release-2"]]
    for m in (OLD, NEW):
        appraise(_claims(m), p, now=T - timedelta(hours=1))
    with pytest.raises(RolloutStateError):
        start_policy(
            started, tee=Tee.SIMULATED, old="v1", new="release-2", values={"measurement": NEW}, deadline=T
        )
    promoted = parse_policy(promote_policy(started, tee=Tee.SIMULATED, old="v1", new="release-2"))
    assert promoted.revision == 9 and promoted.references[0].name == "release-2"
    retired = parse_policy(retire_policy(promoted.source, tee=Tee.SIMULATED, old="v1", new="release-2"))
    assert retired.revision == 10 and [r.name for r in retired.references] == ["release-2", "spare"]
    assert all("v1" not in s["allow"] for s in retired.secrets)
    with pytest.raises(MeasurementNotAllowedError):
        appraise(_claims(OLD), retired, now=T - timedelta(hours=1))
    assert parse_policy(with_revision(BASE, 11)).revision == 11


def test_steps_refuse_what_they_cannot_do() -> None:
    with pytest.raises(RolloutStateError):
        start_policy(BASE, tee=Tee.SIMULATED, old="nope", new="r2", values={"measurement": NEW}, deadline=T)
    with pytest.raises(RolloutStateError):
        start_policy(BASE, tee=Tee.NITRO, old="v1", new="r2", values={"measurement": NEW}, deadline=T)
    with pytest.raises(PolicyLoadError):  # values that do not make a valid reference entry
        start_policy(BASE, tee=Tee.SIMULATED, old="v1", new="r2", values={"measurement": "zz"}, deadline=T)
    with pytest.raises(RolloutStateError):
        retire_policy(BASE, tee=Tee.SIMULATED, old="v1", new="r2")
