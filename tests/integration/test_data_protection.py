"""Documents, RAG and egress through a real `enclavia serve` (host + enclave processes, OHTTP).

- canaries never appear in plaintext in host storage, host logs or host process memory;
- tenant isolation: tenant A never gets tenant B's chunks, even when it names B's document ids;
- a real HTTP server on loopback, standing in for an external model provider, receives no raw PII.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from enclavia.client.sdk import Client
from enclavia.crypto.bhttp import Request, decode_response, encode_request
from enclavia.crypto.ohttp import encapsulate_request
from enclavia.policy.document import parse_policy
from tests.support import Served, free_port, process_memory_contains, start_served

pytestmark = pytest.mark.slow

TOKENS = {name: "tok-" + secrets.token_hex(16) for name in ("a", "a_limited", "b")}
CANARY_A = "canary-" + secrets.token_hex(16)
CANARY_B = "canary-" + secrets.token_hex(16)
PATIENT = "Marguerite Okonkwo-Lindqvist"
SSN = "219-44-7613"
MRN = "00482913"


class Provider:
    """Loopback stand-in for an OpenAI-compatible provider: records bodies, echoes the tokens it got."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                provider.bodies.append(body)
                prompt = json.loads(body)["messages"][-1]["content"]
                tokens = re.findall(r"<[A-Z_]+_\d+>", prompt)
                reply = {
                    "choices": [{"message": {"role": "assistant", "content": "About " + " ".join(tokens)}}]
                }
                out = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *_: Any) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    p = Provider()
    yield p
    p.close()


@pytest.fixture(scope="module")
def data_served(tmp_path_factory: pytest.TempPathFactory, provider: Provider) -> Iterator[Served]:
    home = Path(tmp_path_factory.mktemp("enclavia-data"))
    doc = yaml.safe_load(
        (Path(__file__).parents[2] / "src/enclavia/protect/default-classification.yaml").read_text()
    )
    sha = {k: hashlib.sha256(v.encode()).hexdigest() for k, v in TOKENS.items()}
    all_classes = ["PHI", "PCI", "PII", "CONFIDENTIAL"]
    doc["requesters"] = [
        {"id": "dr-a", "tenant": "hosp-a", "clearance": all_classes, "actions": ["ingest", "query", "egress", "reidentify"],  # noqa: E501
         "token_sha256": sha["a"]},
        {"id": "analyst-a", "tenant": "hosp-a", "clearance": [], "actions": ["query"], "token_sha256": sha["a_limited"]},  # noqa: E501
        {"id": "dr-b", "tenant": "hosp-b", "clearance": all_classes, "actions": ["ingest", "query"],
         "token_sha256": sha["b"]},
    ]  # fmt: skip
    doc["egress"] = [{"name": "loopback", "url": f"http://127.0.0.1:{provider.port}/v1", "model": "stub"}]
    path = home / "classification.yaml"
    path.write_text(yaml.safe_dump(doc))
    served = start_served(home, embeddings=True, classification=path)
    yield served
    served.stop()


def _call(served: Served, path: str, body: Any, token: str) -> tuple[int, Any]:
    client = Client(served.url, parse_policy(served.policy_text))
    try:
        config = client.attest().key_config
    finally:
        client.close()
    headers = (("content-type", "application/json"), ("authorization", f"Bearer {token}"))
    inner = encode_request(Request("POST", "https", "enclave", path, headers, json.dumps(body).encode()))
    message, ctx = encapsulate_request(config, inner)
    resp = httpx.post(
        served.url + "/v1/gateway",
        content=message,
        headers={"content-type": "message/ohttp-req"},
        timeout=120,
    )
    assert resp.status_code == 200, resp.text
    out = decode_response(ctx.decapsulate_response(resp.content))
    return out.status, json.loads(out.content)


def _ingest(served: Served) -> None:
    a_text = (
        f"Discharge summary for {PATIENT}, MRN {MRN}, SSN {SSN}. Cardiology follow-up for atrial fibrillation; "  # noqa: E501
        f"anticoagulation started. Internal reference {CANARY_A}."
    )
    b_text = f"Oncology note: chemotherapy cycle 3 tolerated well. Reference {CANARY_B}."
    status, out = _call(served, "/v1/documents", {"documents": [{"id": "a-1", "title": "discharge", "text": a_text}]},  # noqa: E501
                        TOKENS["a"])  # fmt: skip
    assert status == 200 and out["chunks"] >= 1
    status, out = _call(served, "/v1/documents", {"documents": [{"id": "b-1", "title": "oncology", "text": b_text}]},  # noqa: E501
                        TOKENS["b"])  # fmt: skip
    assert status == 200


@pytest.fixture(scope="module")
def ingested(data_served: Served) -> Served:
    _ingest(data_served)
    return data_served


def test_requester_must_authenticate(data_served: Served) -> None:
    status, out = _call(data_served, "/v1/rag/query", {"query": "x"}, "not-a-token")
    assert status == 401 and out["code"] == "request.unauthenticated"
    status, out = _call(data_served, "/v1/documents", {"documents": []}, TOKENS["a_limited"])
    assert status == 403 and out["code"] == "request.forbidden"


def test_tenant_isolation(ingested: Served) -> None:
    status, out = _call(ingested, "/v1/rag/query", {"query": "chemotherapy oncology", "k": 5}, TOKENS["a"])
    assert status == 200
    assert out["context"] and all(c["document_id"] == "a-1" for c in out["context"])
    assert CANARY_B not in json.dumps(out)
    # Naming tenant B's document id from tenant A finds nothing.
    status, out = _call(
        ingested, "/v1/rag/query", {"query": "chemotherapy", "document_ids": ["b-1"]}, TOKENS["a"]
    )
    assert status == 200 and out["context"] == []
    status, out = _call(ingested, "/v1/rag/query", {"query": "atrial fibrillation"}, TOKENS["b"])
    assert all(c["document_id"] == "b-1" for c in out["context"]) and CANARY_A not in json.dumps(out)


def test_clearance_redacts_context(ingested: Served) -> None:
    status, full = _call(ingested, "/v1/rag/query", {"query": "discharge summary"}, TOKENS["a"])
    assert status == 200 and PATIENT in full["context"][0]["text"]
    status, limited = _call(ingested, "/v1/rag/query", {"query": "discharge summary"}, TOKENS["a_limited"])
    text = limited["context"][0]["text"]
    assert status == 200 and PATIENT not in text and SSN not in text and MRN not in text
    assert "anticoagulation" in text  # clinical content without identifiers still reaches the analyst


def test_canaries_never_in_host_storage_logs_or_memory(ingested: Served) -> None:
    _call(ingested, "/v1/rag/query", {"query": "discharge"}, TOKENS["a"])
    time.sleep(0.3)
    blobs = [p for p in (ingested.home / "blobs").rglob("*") if p.is_file()]
    assert blobs, "the host stored the documents"
    for p in blobs:
        data = p.read_bytes()
        for needle in (CANARY_A, CANARY_B, PATIENT, SSN, "anticoagulation"):
            assert needle.encode() not in data
    logs = ingested.logs()
    assert "enclave.request" in logs
    for needle in (CANARY_A, CANARY_B, PATIENT, SSN):
        assert needle not in logs
    pid = ingested.proc.pid
    assert process_memory_contains(pid, b"enclavia_host_requests")
    for needle in (CANARY_A, CANARY_B, PATIENT):
        assert not process_memory_contains(pid, needle.encode())


# Runs after the canary test on purpose: text that is not classified (the canary is not PII) does leave
# for an allow-listed provider, through the host's egress relay (see docs/data-protection.md).
def test_provider_on_loopback_receives_no_raw_pii(ingested: Served, provider: Provider) -> None:
    before = len(provider.bodies)
    question = f"What follow-up does {PATIENT} (SSN {SSN}, MRN {MRN}) need?"
    status, out = _call(ingested, "/v1/rag/query", {"query": question, "provider": "loopback", "conversation": "c1"},  # noqa: E501
                        TOKENS["a"])  # fmt: skip
    assert status == 200, out
    sent = b"".join(provider.bodies[before:])
    assert sent, "the provider was called"
    for raw in (PATIENT, "Okonkwo", SSN, MRN):
        assert raw.encode() not in sent
    assert re.search(rb"<(PERSON|ORGANIZATION)_\d+>", sent)  # the name went out as a typed token
    assert PATIENT in out["answer"]  # re-identified inside the enclave for the same requester
    status, out = _call(ingested, "/v1/rag/query", {"query": "x", "provider": "elsewhere"}, TOKENS["a"])
    assert status == 403 and out["code"] == "egress.denied"
