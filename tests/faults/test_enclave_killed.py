"""The enclave process is killed while a request is inside it (a real `enclavia serve`: host and enclave
processes). The host answers that request 503 enclave.unavailable and restarts the enclave; the client
re-attests once and retries once, and the answer it finally gets is the same as before the crash.
Nothing the host stores (the simulated platform key, state files) changes.

tests/integration/test_restart.py kills the enclave between requests; here the kill lands mid-request.
"""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sklearn.datasets import load_breast_cancer

from enclavia.client.sdk import Client
from enclavia.policy.document import parse_policy
from tests.support import Served, start_served

pytestmark = pytest.mark.slow

FEATURES = {
    str(n): float(v)
    for n, v in zip(load_breast_cancer().feature_names, load_breast_cancer().data[7], strict=True)
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    s = start_served(Path(tmp_path_factory.mktemp("faults-serve")))
    yield s
    s.stop()


def _stored(home: Path) -> dict[str, str]:
    """Every file the host keeps, by content digest (logs and sockets excepted)."""
    out = {}
    for p in sorted(home.rglob("*")):
        if p.is_file() and not p.is_socket() and p.suffix not in {".log", ".sock"}:
            out[str(p.relative_to(home))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def test_enclave_killed_mid_request(served: Served) -> None:
    calls: list[str] = []
    answers: list[tuple[str, int]] = []

    def count(request: httpx.Request) -> None:
        calls.append(request.url.path)

    def status(response: httpx.Response) -> None:
        answers.append((response.request.url.path, response.status_code))

    http = httpx.Client(timeout=30, event_hooks={"request": [count], "response": [status]})
    with Client(served.url, parse_policy(served.policy_text), http=http, reattest_wait=30) as client:
        before = client.predict("clinical-risk", FEATURES)
        first_key = client.enclave.key_config
        stored = _stored(served.home)
        calls.clear()
        answers.clear()

        pid = served.enclave_pid()
        os.kill(pid, signal.SIGSTOP)  # the request will reach the enclave's socket and wait there
        result: dict[str, object] = {}

        def request() -> None:
            try:
                result["out"] = client.predict("clinical-risk", FEATURES)
            except Exception as err:
                result["err"] = err

        worker = threading.Thread(target=request)
        worker.start()
        deadline = time.monotonic() + 10
        while "/v1/gateway" not in calls and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)  # the host has forwarded the frame and is waiting on the stopped enclave
        assert worker.is_alive(), "the request finished while the enclave was stopped"
        os.kill(pid, signal.SIGKILL)
        worker.join(60)

        assert "err" not in result, result
        assert result["out"] == before
        # One failed attempt, one re-attestation, one retry: no loop, no silent double send. While the
        # replacement enclave boots, the client polls /v1/attestation and gets 503s: attempts, not answers.
        assert answers[0] == ("/v1/gateway", 503) and answers[-1] == ("/v1/gateway", 200), answers
        middle = answers[1:-1]
        assert [a for a in middle if a[1] == 200] == [("/v1/attestation", 200)], answers
        assert all(a == ("/v1/attestation", 503) for a in middle[:-1]), answers
        assert calls.count("/v1/gateway") == 2
        assert served.enclave_pid() != pid
        assert client.enclave.key_config != first_key
    assert _stored(served.home) == stored
    assert "enclave.unavailable" in served.logs() or "host.enclave_exited" in served.logs()
