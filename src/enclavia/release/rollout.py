"""Staged rollout of a release as policy revisions, applied through the broker's admin API (compare-and-set).

::

    idle ──start──▶ overlap ──promote──▶ promoted ──retire──▶ retired
                      │  old: not_after = deadline   │            old removed (denied from this revision on)
                      │  new: added, secondary       │ new first (primary)
                      └──────────── rollback (any step): the policy before the last step, as a new revision

* **start** adds the new release's reference values for one TEE (name ``release-<version>``) after the
  current primary, gives the old entry ``not_after: <deadline>`` (both are allowed until then, never
  after), and adds the new name to every secret rule that allows the old one: key release follows.
* **promote** makes the new entry the primary (first); the old one stays until the deadline or retire.
* **retire** removes the old entry and its name from every secret rule.
* **rollback** re-applies the policy source that was in force before the last step (revisions only go
  forward, so it is a new revision with the old content).

Every step is one ``PUT /kbs/v1/admin/policy`` with ``expected_revision`` = the revision it was computed
from: if anyone changed the policy in between, the broker answers 409 and nothing is applied. The broker
records every revision in its hash-chained audit ledger; this module also emits ``release.rollout``.
The rollout state (phase, names, and the policy source before each step) is kept in a JSON file.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import httpx
import yaml

from enclavia.attestation.claims import Tee
from enclavia.attestation.release import SignedRelease, format_time
from enclavia.errors import (
    EnclaviaError,
    PolicyLoadError,
    ReleaseRecordInvalidError,
    RolloutStateError,
    TransportError,
    error_for_code,
)
from enclavia.policy.document import parse_policy


class Phase(StrEnum):
    OVERLAP = "overlap"
    PROMOTED = "promoted"
    RETIRED = "retired"
    ROLLED_BACK = "rolled_back"


def reference_name(version: str) -> str:
    return f"release-{version}"


# -- pure policy transformations -----------------------------------------------------------------


def _load(source: str) -> dict[str, Any]:
    parse_policy(source)  # refuse to build on an invalid policy
    doc = yaml.safe_load(source)
    if not isinstance(doc, dict):
        raise PolicyLoadError("policy must be a mapping")
    return copy.deepcopy(doc)


def _dump(doc: dict[str, Any]) -> str:
    text = yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)
    parse_policy(text)  # the result must load: a step never produces a policy the broker would refuse
    return text


def _entries(doc: dict[str, Any], tee: Tee) -> list[dict[str, Any]]:
    refs = doc.setdefault("reference_values", {})
    entries = refs.get(str(tee))
    if not isinstance(entries, list) or not entries:
        raise RolloutStateError("policy has no reference values for this TEE")
    return entries


def _index(entries: list[dict[str, Any]], name: str) -> int:
    for i, e in enumerate(entries):
        if e.get("name") == name:
            return i
    raise RolloutStateError("reference entry not in the policy")


def _bump(doc: dict[str, Any], revision: int) -> None:
    doc["revision"] = revision + 1


def primary_name(source: str, tee: Tee) -> str:
    entries = _entries(_load(source), tee)
    return str(entries[0].get("name", f"{tee}-0"))


def start_policy(
    source: str, *, tee: Tee, old: str, new: str, values: dict[str, Any], deadline: datetime
) -> str:
    doc = _load(source)
    entries = _entries(doc, tee)
    i = _index(entries, old)
    if any(e.get("name") == new for e in entries):
        raise RolloutStateError("the new release is already in the policy")
    entries[i] = {**entries[i], "not_after": format_time(deadline)}
    entries.insert(i + 1, {"name": new, **values})
    for rule in doc.get("secrets") or []:
        allow = rule.get("allow")
        if isinstance(allow, list) and old in allow and new not in allow:
            allow.append(new)
    _bump(doc, int(doc["revision"]))
    return _dump(doc)


def promote_policy(source: str, *, tee: Tee, old: str, new: str) -> str:
    doc = _load(source)
    entries = _entries(doc, tee)
    _index(entries, old)
    entry = entries.pop(_index(entries, new))
    entries.insert(0, entry)
    _bump(doc, int(doc["revision"]))
    return _dump(doc)


def retire_policy(source: str, *, tee: Tee, old: str, new: str) -> str:
    doc = _load(source)
    entries = _entries(doc, tee)
    _index(entries, new)
    entries.pop(_index(entries, old))
    for rule in doc.get("secrets") or []:
        allow = rule.get("allow")
        if isinstance(allow, list) and old in allow:
            allow.remove(old)
            if not allow:
                raise RolloutStateError("a secret rule would allow nothing after retire")
    _bump(doc, int(doc["revision"]))
    return _dump(doc)


def with_revision(source: str, revision: int) -> str:
    doc = _load(source)
    doc["revision"] = revision
    return _dump(doc)


# -- broker admin API ----------------------------------------------------------------------------


class PolicyAdmin(Protocol):
    def get_policy(self) -> tuple[int, str]: ...

    def put_policy(self, source: str, expected_revision: int) -> int: ...


class HttpBrokerAdmin:
    """``GET``/``PUT /kbs/v1/admin/policy`` with the admin bearer token."""

    def __init__(
        self, url: str, token: str, *, http: httpx.Client | None = None, timeout: float = 30.0
    ) -> None:
        self.url = url.rstrip("/")
        self._headers = {"authorization": f"Bearer {token}"}
        self._http = http or httpx.Client(timeout=timeout)

    def _call(self, method: str, body: Any = None) -> Any:
        try:
            resp = self._http.request(
                method, self.url + "/kbs/v1/admin/policy", json=body, headers=self._headers
            )
        except httpx.HTTPError:
            raise TransportError() from None
        try:
            doc = resp.json()
        except ValueError:
            doc = {}
        if resp.status_code != 200:
            code = str(doc.get("code", "")) if isinstance(doc, dict) else ""
            raise error_for_code(code)()
        return doc

    def get_policy(self) -> tuple[int, str]:
        doc = self._call("GET")
        return int(doc["revision"]), str(doc["source"])

    def put_policy(self, source: str, expected_revision: int) -> int:
        doc = self._call("PUT", {"policy": source, "expected_revision": expected_revision})
        return int(doc["revision"])


# -- rollout state and steps -----------------------------------------------------------------------


@dataclass
class Step:
    step: str
    revision: int  # the revision this step produced
    before_revision: int
    before_source: str  # the policy it replaced (for rollback)
    at: str
    undone: bool = False  # a later rollback restored before_source


@dataclass
class RolloutState:
    tee: str
    old: str
    new: str
    version: str
    manifest_digest: str
    deadline: str
    phase: str
    steps: list[Step] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> RolloutState:
        try:
            steps = [Step(**s) for s in doc.pop("steps", [])]
            return cls(**doc, steps=steps)
        except TypeError:
            raise RolloutStateError("rollout state file has the wrong shape") from None

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> RolloutState:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise RolloutStateError("rollout state file unreadable") from None
        if not isinstance(doc, dict):
            raise RolloutStateError("rollout state file has the wrong shape")
        return cls.from_json(doc)


_ALLOWED_FROM: dict[str, set[str]] = {
    "promote": {Phase.OVERLAP},
    "retire": {Phase.PROMOTED},
    "rollback": {Phase.OVERLAP, Phase.PROMOTED, Phase.RETIRED},
}


class Rollout:
    """Runs the steps against a broker. ``audit`` receives one event per attempted step."""

    def __init__(
        self,
        admin: PolicyAdmin,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        audit: Callable[..., None] | None = None,
    ) -> None:
        self.admin = admin
        self.clock = clock
        self.audit = audit or _log_event

    def _apply(self, state: RolloutState, step: str, make: Callable[[str], str]) -> RolloutState:
        revision, source = self.admin.get_policy()
        try:
            new_source = make(source)
            applied = self.admin.put_policy(new_source, expected_revision=revision)
        except EnclaviaError as err:
            self.audit(step=step, outcome="denied", error_code=err.code, revision=revision, state=state)
            raise
        state.steps.append(
            Step(
                step=step,
                revision=applied,
                before_revision=revision,
                before_source=source,
                at=_now(self.clock),
            )
        )
        self.audit(step=step, outcome="ok", error_code=None, revision=applied, state=state)
        return state

    def start(
        self, release: SignedRelease, *, tee: Tee, deadline: datetime, old: str | None = None
    ) -> RolloutState:
        values = release.record.measurements.get(str(tee))
        if values is None:
            raise ReleaseRecordInvalidError("the release publishes no measurement for this TEE")
        if deadline <= self.clock():
            raise ValueError("the overlap deadline must be in the future")
        _, source = self.admin.get_policy()
        state = RolloutState(
            tee=str(tee),
            old=old or primary_name(source, tee),
            new=reference_name(release.record.version),
            version=release.record.version,
            manifest_digest=release.record.manifest_digest.hex(),
            deadline=format_time(deadline),
            phase=Phase.OVERLAP,
        )
        self._apply(
            state,
            "start",
            lambda s: start_policy(
                s, tee=tee, old=state.old, new=state.new, values=dict(values), deadline=deadline
            ),
        )
        return state

    def _check(self, state: RolloutState, step: str) -> None:
        if state.phase not in _ALLOWED_FROM[step]:
            raise RolloutStateError(f"{step} is not allowed in phase {state.phase}")

    def promote(self, state: RolloutState) -> RolloutState:
        self._check(state, "promote")
        self._apply(
            state, "promote", lambda s: promote_policy(s, tee=Tee(state.tee), old=state.old, new=state.new)
        )
        state.phase = Phase.PROMOTED
        return state

    def retire(self, state: RolloutState) -> RolloutState:
        self._check(state, "retire")
        self._apply(
            state, "retire", lambda s: retire_policy(s, tee=Tee(state.tee), old=state.old, new=state.new)
        )
        state.phase = Phase.RETIRED
        return state

    def rollback(self, state: RolloutState) -> RolloutState:
        """Restore the policy in force before the last forward step still in effect, as a new revision."""
        self._check(state, "rollback")
        active = [s for s in state.steps if s.step in _PHASE_AFTER and not s.undone]
        if not active:
            raise RolloutStateError("nothing left to roll back")
        target = active[-1]
        self._apply(state, "rollback", lambda s: with_revision(target.before_source, _revision_of(s) + 1))
        target.undone = True
        state.phase = _PHASE_AFTER[active[-2].step] if len(active) > 1 else Phase.ROLLED_BACK
        return state


_PHASE_AFTER = {"start": Phase.OVERLAP, "promote": Phase.PROMOTED, "retire": Phase.RETIRED}


def _revision_of(source: str) -> int:
    return parse_policy(source).revision


def _now(clock: Callable[[], datetime]) -> str:
    return format_time(clock())


def source_digest(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()


def _log_event(
    *, step: str, outcome: str, error_code: str | None, revision: int, state: RolloutState
) -> None:
    from enclavia.observability import logging as elog

    elog.get_logger().info(
        "release.rollout",
        step=step,
        outcome=outcome,
        error_code=error_code,
        policy_revision=revision,
        tee=state.tee,
        release=state.version,
        manifest_digest=state.manifest_digest,
    )
