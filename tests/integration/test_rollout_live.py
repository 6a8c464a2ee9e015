"""Staged rollout end to end with running enclaves (issue 5): a real broker (`enclavia broker serve`, SQLite)
and two real `enclavia serve --broker` deployments, old build A and new build B, each with a sealed model
(`enclavia model seal`). B ships a retrained model, so its image manifest (and measurement) differs from A's.
The release of B is built, measured and signed with the `enclavia release` CLI, and the policy revisions are
written by `enclavia release rollout start|promote|retire|rollback`:

    rev 1  A only                    A serves; B 503 enclave.secrets_unavailable
    rev 2  start (overlap)           B's relay gets its key: both serve
    rev 3  promote                   both serve
    rev 4  retire A                  A's restarted enclave is refused its key (503); B serves throughout
    rev 5  rollback (= rev 3)        A's enclave gets its key again
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

import enclavia
from enclavia.broker.store import Store, audit_records
from enclavia.client.sdk import Client
from enclavia.errors import EnclaviaError
from enclavia.inference.linear import LinearClassifier
from enclavia.inference.training import write_artifact
from enclavia.policy.document import parse_policy
from tests.broker_support import run_cli, start_broker
from tests.ops_support import features, policy_text, served_measurement, start_host
from tests.support import Served, ensure_model

pytestmark = pytest.mark.slow

MODEL = "clinical-risk"
SECRETS_UNAVAILABLE = "enclave.secrets_unavailable"
DENIED = '"error_code": "policy.measurement_not_allowed"'  # the host relay's log line when the broker refuses


def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise TimeoutError(what)


def _predict(url: str, policy: str) -> dict[str, Any] | str:
    """One prediction through a fresh client (it attests first): the output, or the problem's code."""
    try:
        with Client(url, parse_policy(policy), reattest_wait=5.0) as client:
            status, out = client.request("POST", f"/v1/predict/{MODEL}", {"features": features(3)})
    except EnclaviaError as err:  # the enclave is restarting
        return err.code
    if status == 200:
        return out  # type: ignore[no-any-return]
    return str(out.get("code")) if isinstance(out, dict) else str(status)


def _serves(url: str, policy: str, digest: str) -> bool:
    out = _predict(url, policy)
    return isinstance(out, dict) and out["model_sha256"] == digest


def _ok(res: Any) -> str:
    assert res.returncode == 0, res.stdout + res.stderr
    return str(res.stdout)


class Watch:
    """Predictions against one deployment in a loop (its own client): every answer must be a prediction."""

    def __init__(self, url: str, policy: str, digest: str) -> None:
        self.url, self.policy, self.digest = url, policy, digest
        self.ok = 0
        self.failures: list[object] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with Client(self.url, parse_policy(self.policy)) as client:
            while not self._stop.is_set():
                try:
                    status, out = client.request("POST", f"/v1/predict/{MODEL}", {"features": features(5)})
                except EnclaviaError as err:
                    self.failures.append(err.code)
                else:
                    if status == 200 and out["model_sha256"] == self.digest:
                        self.ok += 1
                    else:
                        self.failures.append((status, out))
                self._stop.wait(0.2)

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def _restart_enclave(served: Served) -> None:
    """SIGKILL the enclave process; the host starts a new one (new key: it must attest again)."""
    old = served.enclave_pid()
    os.kill(old, signal.SIGKILL)

    def restarted() -> bool:
        try:
            return served.enclave_pid() != old
        except LookupError:
            return False

    _wait_for(restarted, 30, "the host did not restart its enclave")
    served.wait_healthy()


def _frozen_code(tmp_path: Path) -> Path:
    """A copy of the enclavia package for the hosts (and their enclaves) to import, and for `release build
    --source`: an edit to a measured file in the working tree during the run cannot change a measurement
    mid-test (a restarted enclave measures its code again). Builds are immutable images in production."""
    package = tmp_path / "code" / "enclavia"
    shutil.copytree(
        Path(enclavia.__file__).resolve().parent, package, ignore=shutil.ignore_patterns("__pycache__")
    )
    return package


def _policy_updates(db_url: str) -> list[tuple[int, str]]:
    return [(r.policy_revision, r.outcome) for r in _ledger(db_url) if r.action == "policy.update"]


def _ledger(db_url: str) -> list[Any]:
    store = Store(db_url)
    try:
        with store.transaction() as conn:
            return list(conn.execute(select(audit_records).order_by(audit_records.c.seq)))
    finally:
        store.dispose()


def test_rollout_old_and_new_enclaves_overlap_retire_and_rollback(tmp_path: Path) -> None:
    home = tmp_path / "admin"
    home.mkdir()
    db_url = f"sqlite:///{tmp_path / 'broker.db'}"
    broker = start_broker(home, db_url, None)
    hosts: list[Served] = []
    try:
        # Build A: the bundled model; build B: the same model retrained (another seed). Both sealed.
        model_a, model_b = tmp_path / "a" / "models", tmp_path / "b" / "models"
        model_a.mkdir(parents=True)
        shutil.copy(ensure_model() / f"{MODEL}.json", model_a / f"{MODEL}.json")
        write_artifact(model_b / f"{MODEL}.json", seed=1)
        digest_a = LinearClassifier((model_a / f"{MODEL}.json").read_bytes()).digest
        digest_b = LinearClassifier((model_b / f"{MODEL}.json").read_bytes()).digest
        assert digest_a != digest_b
        for model_dir in (model_a, model_b):  # the second seal registers version 2 of models/clinical-risk
            _ok(run_cli(home, "model", "seal", str(model_dir / f"{MODEL}.json"), "--broker", broker.url))

        # Two hosts on one simulated platform (the same platform key, as two machines of one TEE vendor).
        code = _frozen_code(tmp_path)
        env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(code.parent), os.environ.get("PYTHONPATH")]))}
        host_a = start_host(tmp_path / "a", model_a, broker.url, env=env, secrets=False)
        hosts.append(host_a)
        shutil.copytree(tmp_path / "a" / "sim", tmp_path / "b" / "sim")
        host_b = start_host(tmp_path / "b", model_b, broker.url, env=env, secrets=False)
        hosts.append(host_b)
        meas_a, meas_b = served_measurement(host_a.url), served_measurement(host_b.url)
        assert meas_a != meas_b

        # The clients' own policies (each pins the build it talks to).
        client_a = policy_text(meas_a, tmp_path / "a" / "sim")
        client_b = policy_text(meas_b, tmp_path / "a" / "sim")

        # -- revision 1: only build A may have keys.
        (home / "rev1.yaml").write_text(client_a)
        _ok(run_cli(home, "policy", "apply", str(home / "rev1.yaml"), "--broker", broker.url))
        _wait_for(lambda: _serves(host_a.url, client_a, digest_a), 30, "A never served under revision 1")
        assert _predict(host_b.url, client_b) == SECRETS_UNAVAILABLE
        _wait_for(lambda: DENIED in host_b.logs(), 15, "B's relay was never refused")
        assert _predict(host_b.url, client_b) == SECRETS_UNAVAILABLE

        # -- release B with the release CLI: build (same manifest as B's enclave computes), measure, sign.
        build = home / "build.json"
        _ok(
            run_cli(
                home,
                "release",
                "build",
                "--model-dir",
                str(model_b),
                "--source",
                str(code),
                "--out",
                str(build),
            )
        )
        assert json.loads(build.read_text())["manifest_digest"] == meas_b
        _ok(run_cli(home, "release", "measure", "--build", str(build), "--tee", "simulated"))
        _ok(run_cli(home, "release", "keygen", "--out", str(home / "release.key")))
        release = home / "release.json"
        _ok(
            run_cli(
                home,
                "release",
                "sign",
                "--build",
                str(build),
                "--version",
                "2.0.0",
                "--commit",
                "b" * 40,
                "--key",
                str(home / "release.key"),
                "--out",
                str(release),
            )
        )
        state = home / "rollout.json"

        def step(*args: str) -> str:
            return _ok(
                run_cli(home, "release", "rollout", *args, "--state", str(state), broker_url=broker.url)
            )

        # -- revision 2: start, overlap for an hour. B's relay (retrying) gets its key; A keeps serving.
        out = step(
            "start",
            "--release",
            str(release),
            "--release-key",
            str(home / "release.key.pub"),
            "--overlap-hours",
            "1",
        )
        assert "release-2.0.0 beside local-build" in out and "policy revision 2" in out
        _wait_for(lambda: _serves(host_b.url, client_b, digest_b), 30, "B never served during the overlap")
        assert _serves(host_a.url, client_a, digest_a)

        with Watch(host_b.url, client_b, digest_b) as watch_b:
            # -- revision 3: promote B.
            assert "phase promoted, policy revision 3" in step("promote")
            assert _serves(host_a.url, client_a, digest_a) and _serves(host_b.url, client_b, digest_b)

            # -- revision 4: retire A. A's enclave still holds its key until it restarts; the restarted
            # enclave must attest again and is refused from this revision on.
            assert "phase retired, policy revision 4" in step("retire")
            assert _serves(host_b.url, client_b, digest_b)
            refusals = host_a.logs().count(DENIED)
            _restart_enclave(host_a)
            _wait_for(
                lambda: host_a.logs().count(DENIED) >= refusals + 2,
                30,
                "A's restarted enclave was never refused",
            )
            assert _predict(host_a.url, client_a) == SECRETS_UNAVAILABLE
            assert _serves(host_b.url, client_b, digest_b)
            assert _predict(host_a.url, client_a) == SECRETS_UNAVAILABLE

            # -- revision 5: rollback to the promoted state; A's enclave (still retrying) gets its key again.
            assert "phase promoted, policy revision 5" in step("rollback")
            _wait_for(lambda: _serves(host_a.url, client_a, digest_a), 30, "A never served after rollback")
            assert _serves(host_b.url, client_b, digest_b)
        assert watch_b.failures == [] and watch_b.ok >= 5, (watch_b.ok, watch_b.failures[:5])

        status = json.loads(step("status"))
        assert status["phase"] == "promoted" and status["old"] == "local-build"
        assert [(s["step"], s["revision"], s["undone"]) for s in status["steps"]] == [
            ("start", 2, False),
            ("promote", 3, False),
            ("retire", 4, True),
            ("rollback", 5, False),
        ]
        shown = _ok(run_cli(home, "policy", "show", "--broker", broker.url))
        assert "# revision 5" in shown and meas_a in shown and meas_b in shown

        # The ledger: every revision, each once; A's re-attestation refused under revision 4 (B was allowed
        # then), releases under revision 5 after the rollback; the hash chain verifies.
        assert _policy_updates(db_url) == [(r, "ok") for r in range(1, 6)]
        records = _ledger(db_url)
        assert any(r.action == "attest" and r.outcome == "denied" and r.policy_revision == 4 for r in records)
        assert not any(
            r.action == "release" and r.outcome == "ok" and r.policy_revision == 4 for r in records
        )
        assert any(r.action == "release" and r.outcome == "ok" and r.policy_revision == 5 for r in records)
        verified = _ok(run_cli(home, "audit", "verify", "--db", db_url))
        assert verified.startswith("OK"), verified
    finally:
        for host in hosts:
            host.stop()
        broker.stop()
