"""Split mode through a real `enclavia serve`: the enclave tokenizes, a real OpenAI-compatible model server on
loopback (FastAPI + uvicorn, started here) does the "heavy" compute on tokens only, the enclave re-identifies.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml
from fastapi import FastAPI, Request
from starlette.responses import JSONResponse

from enclavia.client.sdk import Client
from enclavia.crypto.bhttp import Request as InnerRequest
from enclavia.crypto.bhttp import decode_response, encode_request
from enclavia.crypto.ohttp import encapsulate_request
from enclavia.policy.document import parse_policy
from tests.support import Served, free_port, start_served

pytestmark = pytest.mark.slow

TOKENS = {
    name: "tok-" + secrets.token_hex(16) for name in ("doctor", "analyst", "no_egress", "no_reidentify")
}
PATIENT = "Marguerite Okonkwo-Lindqvist"
SSN = "219-44-7613"
MRN = "00482913"
EMAIL = "m.okonkwo@example.org"
RAW = (PATIENT, "Okonkwo", "Lindqvist", SSN, MRN, EMAIL)


class ModelServer:
    """A tiny OpenAI-compatible chat server standing in for the team's GPU box: records every body it
    receives and answers with the placeholders it was given."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> JSONResponse:
            raw = await request.body()
            self.bodies.append(raw)
            body = json.loads(raw)
            tokens = re.findall(r"<[A-Z_]+_\d+>", body["messages"][-1]["content"])
            content = (
                "Plan for " + (" and ".join(tokens) or "the patient") + ": cardiology follow-up in 2 weeks."
            )
            return JSONResponse(
                {
                    "id": "cmpl-stub",
                    "object": "chat.completion",
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": content},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 42, "completion_tokens": 12, "total_tokens": 54},
                }
            )

        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False)
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.server.started

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def model_server() -> Iterator[ModelServer]:
    s = ModelServer()
    yield s
    s.close()


@pytest.fixture(scope="module")
def split_served(tmp_path_factory: pytest.TempPathFactory, model_server: ModelServer) -> Iterator[Served]:
    home = Path(tmp_path_factory.mktemp("enclavia-split"))
    doc = yaml.safe_load(
        (Path(__file__).parents[2] / "src/enclavia/protect/default-classification.yaml").read_text()
    )
    sha = {k: hashlib.sha256(v.encode()).hexdigest() for k, v in TOKENS.items()}
    cleared = ["PHI", "PCI", "PII", "CONFIDENTIAL"]
    doc["requesters"] = [
        {"id": rid, "tenant": "hosp-a", "clearance": clearance, "actions": actions, "token_sha256": sha[key]}
        for rid, key, clearance, actions in (
            ("dr-a", "doctor", cleared, ["egress", "reidentify"]),
            ("analyst-a", "analyst", [], ["egress"]),
            ("nurse-a", "no_reidentify", cleared, ["egress"]),
            ("clerk-a", "no_egress", cleared, ["query"]),
        )
    ]
    doc["egress"] = [
        {"name": "gpu-box", "url": f"http://127.0.0.1:{model_server.port}/v1", "model": "heavy-llm"}
    ]
    path = home / "classification.yaml"
    path.write_text(yaml.safe_dump(doc))
    served = start_served(home, classification=path)
    yield served
    served.stop()


def _call(served: Served, body: Any, token: str) -> tuple[int, Any]:
    client = Client(served.url, parse_policy(served.policy_text))
    try:
        config = client.attest().key_config
    finally:
        client.close()
    headers = (("content-type", "application/json"), ("authorization", f"Bearer {token}"))
    inner = encode_request(
        InnerRequest(
            "POST", "https", "enclave", "/v1/split/chat/completions", headers, json.dumps(body).encode()
        )
    )
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


def _question(conversation: str = "c1") -> dict[str, Any]:
    return {
        "model": "gpu-box",
        "conversation": conversation,
        "max_tokens": 64,
        "temperature": 0.2,
        # The name comes from the patient record: declared, it is replaced even where the NER misses it.
        "identifiers": [{"type": "PERSON", "value": PATIENT}],
        "messages": [
            {"role": "system", "content": "You are a clinical assistant."},
            {
                "role": "user",
                "content": f"Patient {PATIENT} (SSN {SSN}, MRN {MRN}, email {EMAIL}) has new atrial "
                "fibrillation. What follow-up is needed?",
            },
        ],
    }


def test_model_server_receives_only_tokens_and_the_reply_is_reidentified(
    split_served: Served, model_server: ModelServer
) -> None:
    before = len(model_server.bodies)
    status, out = _call(split_served, _question(), TOKENS["doctor"])
    assert status == 200, out
    sent = model_server.bodies[before:]
    assert len(sent) == 1
    for raw in RAW:
        assert raw.encode() not in sent[0]
    body = json.loads(sent[0])
    assert body["model"] == "heavy-llm" and body["max_tokens"] == 64 and body["temperature"] == 0.2
    user = body["messages"][-1]["content"]
    assert re.search(r"<(PERSON|ORGANIZATION)_\d+>", user)  # the name went out as a typed placeholder
    assert "atrial" in user and "fibrillation" in user  # the clinical question itself is not classified
    # OpenAI shape, answered inside the enclave with the identifiers put back for this requester
    assert out["object"] == "chat.completion" and out["model"] == "gpu-box"
    answer = out["choices"][0]["message"]["content"]
    assert PATIENT in answer and "cardiology follow-up" in answer
    assert out["usage"]["total_tokens"] == 54
    assert out["enclavia"]["mode"] == "split" and out["enclavia"]["tokens_sent"] >= 3


def test_same_conversation_keeps_placeholders_and_history_is_protected(
    split_served: Served, model_server: ModelServer
) -> None:
    first = _question("c2")
    _call(split_served, first, TOKENS["doctor"])
    body1 = json.loads(model_server.bodies[-1])
    tokens1 = set(re.findall(r"<[A-Z_]+_\d+>", body1["messages"][-1]["content"]))
    follow = dict(first)
    follow["messages"] = [
        *first["messages"],
        {"role": "assistant", "content": f"{PATIENT} needs anticoagulation review."},
        {"role": "user", "content": f"And when should {PATIENT} come back?"},
    ]
    status, out = _call(split_served, follow, TOKENS["doctor"])
    assert status == 200
    raw = model_server.bodies[-1]
    for needle in RAW:
        assert needle.encode() not in raw
    tokens2 = set(re.findall(r"<[A-Z_]+_\d+>", json.loads(raw)["messages"][-1]["content"]))
    assert tokens2 and tokens2 <= tokens1  # the same person is the same placeholder in the conversation
    assert PATIENT in out["choices"][0]["message"]["content"]


def test_detected_identifiers_are_tokenized_without_declaration(
    split_served: Served, model_server: ModelServer
) -> None:
    body = {
        "model": "gpu-box",
        "conversation": "c5",
        "messages": [{"role": "user", "content": f"{PATIENT} needs anticoagulation review. SSN {SSN}."}],
    }
    status, out = _call(split_served, body, TOKENS["doctor"])
    assert status == 200
    for raw in (PATIENT, SSN):
        assert raw.encode() not in model_server.bodies[-1]
    assert PATIENT in out["choices"][0]["message"]["content"]


def test_requester_without_reidentify_gets_tokens_not_values(
    split_served: Served, model_server: ModelServer
) -> None:
    """Issue 15: cleared for the classes but not granted `reidentify`: the provider's echo stays tokens."""
    status, out = _call(split_served, _question("c10"), TOKENS["no_reidentify"])
    assert status == 200
    answer = out["choices"][0]["message"]["content"]
    for raw in RAW:
        assert raw not in answer
    assert "<PERSON_" in answer  # the echoed placeholders came back as placeholders
    time.sleep(0.2)
    events = [json.loads(x) for x in split_served.logs().splitlines() if x.startswith("{")]
    assert any(e["event"] == "enclave.split" and e.get("reidentify_refused", 0) > 0 for e in events)


def test_requester_without_clearance_gets_no_identifiers(split_served: Served) -> None:
    status, out = _call(split_served, _question("c3"), TOKENS["analyst"])
    assert status == 200
    answer = out["choices"][0]["message"]["content"]
    for raw in RAW:
        assert raw not in answer


def test_refusals(split_served: Served, model_server: ModelServer) -> None:
    before = len(model_server.bodies)
    unlisted = {**_question(), "model": "elsewhere"}
    status, out = _call(split_served, unlisted, TOKENS["doctor"])
    assert status == 403 and out["code"] == "egress.denied"
    status, out = _call(split_served, _question(), TOKENS["no_egress"])
    assert status == 403 and out["code"] == "request.forbidden"
    status, out = _call(split_served, _question(), "tok-unknown")
    assert status == 401
    status, out = _call(split_served, {**_question(), "stream": True}, TOKENS["doctor"])
    assert status == 400
    status, out = _call(split_served, {**_question(), "temperature": 9}, TOKENS["doctor"])
    assert status == 400 and PATIENT not in json.dumps(out)
    assert len(model_server.bodies) == before  # nothing refused reached the model server


@pytest.mark.parametrize(
    "identifier",
    [
        {
            "type": ["PERSON"],
            "value": PATIENT,
        },  # the case: a bare TypeError became enclave.unavailable
        {"type": {"x": 1}, "value": PATIENT},
        {"type": "PERSON", "value": [PATIENT]},
        {"type": None, "value": PATIENT},
    ],
)
def test_wrong_identifier_type_is_a_typed_400_not_unavailable(
    split_served: Served, model_server: ModelServer, identifier: dict[str, Any]
) -> None:
    before = len(model_server.bodies)
    status, out = _call(split_served, {**_question("c9"), "identifiers": [identifier]}, TOKENS["doctor"])
    assert status == 400 and out["code"] == "request.invalid"
    assert PATIENT not in json.dumps(out)
    assert len(model_server.bodies) == before
    # the enclave kept serving (no restart, no re-attestation needed) and nothing went to a log as text
    status, _ = _call(split_served, _question("c9"), TOKENS["doctor"])
    assert status == 200
    logs = split_served.logs()
    assert "Traceback" not in logs and "TypeError" not in logs and PATIENT not in logs


def test_host_logs_hold_no_identifiers(split_served: Served) -> None:
    _call(split_served, _question("c4"), TOKENS["doctor"])
    time.sleep(0.2)
    logs = split_served.logs()
    for raw in RAW:
        assert raw not in logs
    events = [json.loads(x) for x in logs.splitlines() if x.startswith("{")]
    split = [e for e in events if e["event"] == "enclave.split"]
    assert split and {e["provider"] for e in split} <= {"gpu-box", "unlisted"}
    assert any(e["event"] == "host.egress" and e["outcome"] == "ok" for e in events)
