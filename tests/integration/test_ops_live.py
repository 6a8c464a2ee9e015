"""Operations on a live deployment: a real broker on SQLite and a real `enclavia serve` whose enclave fetches
a sealed model's key from it. Traces go from client through host and enclave, and from the host's key-broker
relay through the enclave to the broker, with one correlation id each and no content."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from enclavia.observability.trace import configure_tracing
from tests.ops_support import Deployment, features, read_spans, start_deployment

CANARY = "canary-7d0c5e1f9a2b4c6d8e0f1a2b3c4d5e6f"


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    d = start_deployment(Path(tmp_path_factory.mktemp("ops")))
    yield d
    d.stop()


def _client(d: Deployment) -> Any:
    from enclavia.client.sdk import Client
    from enclavia.policy.document import parse_policy

    return Client(d.host.url, parse_policy(d.policy_text))


def test_spans_link_client_host_enclave_and_broker_without_content(deployment: Deployment) -> None:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from enclavia.errors import EnclaviaError

    exporter = InMemorySpanExporter()
    configure_tracing("client", exporter)
    try:
        with _client(deployment) as client:
            out = client.predict("clinical-risk", features())
            assert out["class"] in {"benign", "malignant"}
            with pytest.raises(EnclaviaError):  # the canary as a model id and as a feature name
                client.predict(CANARY, {CANARY: 1.0})
            with pytest.raises(EnclaviaError):
                client.predict("clinical-risk", {CANARY: 1.0})
    finally:
        configure_tracing("client", None)  # back to off
    client_spans = [json.loads(s.to_json()) for s in exporter.get_finished_spans()]
    server_spans = read_spans(deployment.trace_dir)
    everything = json.dumps(client_spans) + json.dumps(server_spans)
    assert CANARY not in everything and "mean radius" not in everything

    requests = [s for s in client_spans if s["name"] == "enclavia.client.request"]
    assert len(requests) == 3
    for req in requests:
        trace_id = req["context"]["trace_id"][2:]
        assert req["attributes"]["enclavia.route"] == "predict"
        relay = [s for s in server_spans if s["trace_id"] == trace_id and s["name"] == "enclavia.host.relay"]
        gateway = [
            s for s in server_spans if s["trace_id"] == trace_id and s["name"] == "enclavia.enclave.gateway"
        ]
        assert relay and gateway, "host and enclave spans carry the client's trace id"
        assert gateway[-1]["parent_span_id"] == relay[-1]["span_id"]
        assert gateway[-1]["attributes"]["enclavia.route"] == "predict"
    statuses = sorted(
        s["attributes"].get("http.status_code")
        for s in server_spans
        if s["name"] == "enclavia.enclave.gateway"
    )
    assert 200 in statuses and 404 in statuses and 400 in statuses

    # Key release: host relay -> enclave (bundle bound to the broker's challenge) -> broker, one trace.
    kbs = [s for s in server_spans if s["name"] == "enclavia.host.kbs_release"]
    assert kbs
    same = [s for s in server_spans if s["trace_id"] == kbs[0]["trace_id"]]
    names = {s["name"] for s in same}
    assert {
        "enclavia.broker.challenge",
        "enclavia.enclave.broker_attest",
        "enclavia.broker.attest",
        "enclavia.broker.release",
        "enclavia.enclave.install_secret",
    } <= names, names
    services = {s["service"] for s in same}
    assert services == {"enclavia-host", "enclavia-enclave", "enclavia-broker"}
    for s in same:
        if s is not kbs[0]:
            assert s["parent_span_id"] == kbs[0]["span_id"]
        assert set(s["attributes"]) <= {
            "enclavia.route", "enclavia.outcome", "enclavia.frame", "enclavia.stage", "http.status_code",
            "enclavia.bytes_in", "enclavia.bytes_out",
        }  # fmt: skip
    # The secret path never appears (only the fixed route name "release").
    assert "models/" not in json.dumps(same)
