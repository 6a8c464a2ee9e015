"""The enclave dies: the host answers 503 with a problem code, restarts it, clients re-attest."""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest
from sklearn.datasets import load_breast_cancer

from enclavia.client.sdk import Client
from enclavia.policy.document import Policy
from tests.support import Served

pytestmark = pytest.mark.slow


def _features() -> dict[str, float]:
    data = load_breast_cancer()
    return {str(n): float(v) for n, v in zip(data.feature_names, data.data[1], strict=True)}


def test_enclave_killed_then_restarted_and_client_reattests(served: Served, dev_policy: Policy) -> None:
    with Client(served.url, dev_policy) as client:
        before = client.attest()
        assert client.predict("clinical-risk", _features())["class"]
        old_pid = served.enclave_pid()
        os.kill(old_pid, signal.SIGKILL)
        # While it is down, the host answers 503 enclave.unavailable (or is already back).
        saw_503 = False
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            resp = httpx.get(served.url + "/healthz")
            if resp.status_code == 503:
                saw_503 = True
            try:
                if resp.status_code == 200 and served.enclave_pid() != old_pid:
                    break
            except LookupError:
                pass
            time.sleep(0.02)
        assert served.enclave_pid() != old_pid
        # The old key config is gone with the old process; the client re-attests once and retries once.
        out = client.predict("clinical-risk", _features())
        assert out["class"]
        after = client.enclave
        assert after.key_config.key_id != before.key_config.key_id
        assert after.bundle.nonce != before.bundle.nonce
    metrics = httpx.get(served.url + "/metrics").text
    assert "enclavia_enclave_restarts_total 1.0" in metrics
    assert saw_503 or "host.enclave_exited" in served.logs()


def test_gateway_answers_503_problem_while_enclave_is_down(served: Served, dev_policy: Policy) -> None:
    with Client(served.url, dev_policy) as client:
        client.attest()
        pid = served.enclave_pid()
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
        resp = httpx.post(
            served.url + "/v1/gateway", content=b"\x00" * 64, headers={"content-type": "message/ohttp-req"}
        )
        # A replacement takes about a second to import and boot; until then: 503, with a problem code.
        assert resp.status_code == 503
        assert resp.json()["code"] == "enclave.unavailable"
        # Either way, the service recovers without operator action.
        served.wait_healthy()
        assert client.predict("clinical-risk", _features())["class"]
