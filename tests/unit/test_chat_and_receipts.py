"""Chat request parsing and prompts (no model needed), receipts, and the enclave's chunked response path
with a stand-in model."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from enclavia.attestation.receipt import decode_receipt, encode_receipt, issue_receipt, verify_receipt
from enclavia.crypto.bhttp import Request, encode_request
from enclavia.crypto.bhttp_stream import Body, Head, ResponseStreamDecoder, Tail
from enclavia.crypto.chunked_ohttp import encapsulate_chunked_request
from enclavia.crypto.signing import SigningKey
from enclavia.enclave.chat import open_chat, parse_chat_request
from enclavia.enclave.routes import InnerApp
from enclavia.errors import (
    BadRequestError,
    ChunkIntegrityError,
    NotFoundError,
    ReceiptInvalidError,
    SignatureInvalidError,
)
from enclavia.inference.chat import Completion, GenerationParams, build_prompt

MEASUREMENT = bytes(range(48))


def _chat(**extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": "hi"}], **extra}


def test_prompt_is_a_plain_transcript() -> None:
    prompt = build_prompt(
        [("system", " Be brief. "), ("user", "Hello"), ("assistant", "Hi"), ("user", "Bye")]
    )
    assert prompt == "System: Be brief.\nUser: Hello\nAssistant: Hi\nUser: Bye\nAssistant:"
    body = GenerationParams(max_tokens=4, stop=("END",), seed=3).request(prompt, stream=True)
    assert body["stop"][-1] == "END" and "\nUser:" in body["stop"] and body["cache_prompt"] is False


def test_openai_request_shapes_accepted_and_refused() -> None:
    req = parse_chat_request(
        _chat(
            messages=[
                {
                    "role": "developer",
                    "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                }
            ],
            max_completion_tokens=5,
            stop="x",
            stream=True,
            stream_options={"include_usage": True},
            temperature=0,
        )
    )
    assert (
        req.messages == (("system", "ab"),)
        and req.params.max_tokens == 5
        and req.stream
        and req.include_usage
    )
    assert req.params.temperature == 0.0 and req.params.stop == ("x",)
    for bad in (
        {"messages": []},
        {"messages": [{"role": "tool", "content": "x"}]},
        {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
        {"max_tokens": 0},
        {"max_tokens": True},
        {"temperature": float("inf")},
        {"n": 2},
        {"stop": ["a"] * 5},
        {"unknown_field": 1},
        {"stream": "yes"},
        {"model": ""},
    ):
        with pytest.raises(BadRequestError):
            parse_chat_request({**_chat(), **bad})
    with pytest.raises(NotFoundError):
        open_chat(None, _chat())


class FakeModel:
    """Stands in for ChatModel: same interface, deterministic pieces."""

    name = "fake-gguf"
    digest = "ab" * 32

    def __init__(self, pieces: list[str]) -> None:
        self.pieces = pieces

    def describe(self) -> dict[str, Any]:
        return {"id": self.name, "object": "model"}

    def generate(self, prompt: str, params: GenerationParams, on_text: Any = None) -> Completion:
        assert prompt.endswith("Assistant:")
        out = Completion(finish_reason="length", prompt_tokens=3, completion_tokens=len(self.pieces))
        for p in self.pieces:
            if on_text is not None and not on_text(p):
                out.finish_reason = "cancelled"
                break
        out.text = "".join(self.pieces)
        return out


def _enclave(tmp_path: Path, pieces: list[str]) -> Any:
    from enclavia.attestation.manifest import ImageManifest
    from enclavia.enclave.core import Enclave
    from enclavia.tee.simulated import SimulatedAttester, init_platform_key, load_platform_key

    init_platform_key(tmp_path)
    manifest = ImageManifest("0", {}, (), {"fake-gguf": "ab" * 32}, {})
    attester = SimulatedAttester(platform_key=load_platform_key(tmp_path), measurement=manifest.digest())
    return Enclave(attester, manifest, InnerApp(models={}, chat=FakeModel(pieces)), key_id=5)


def _run_stream(enclave: Any, body: dict[str, Any], receipt: bool = True) -> tuple[list[Any], bytes, bytes]:
    headers = [("content-type", "application/json")] + ([("enclavia-receipt", "1")] if receipt else [])
    content = json.dumps(body).encode()
    inner = encode_request(
        Request("POST", "https", "enclave", "/v1/chat/completions", tuple(headers), content)
    )
    message, opener = encapsulate_chunked_request(enclave.gateway_key.config, inner)
    pieces: list[bytes] = []
    enclave.open_stream(message)(lambda p: pieces.append(p) or True)
    events: list[Any] = []
    dec = ResponseStreamDecoder()
    for p in pieces:
        for pt in opener.feed(p):
            events += dec.feed(pt)
    events += dec.feed(opener.finish())
    dec.finish()
    return events, content, b"".join(e.data for e in events if isinstance(e, Body))


def test_enclave_streams_one_chunk_per_piece_with_receipt_trailer(tmp_path: Path) -> None:
    enclave = _enclave(tmp_path, ["Hel", "lo", "!"])
    events, request_content, content = _run_stream(enclave, {**_chat(model="fake-gguf"), "stream": True})
    assert isinstance(events[0], Head) and events[0].status == 200
    assert ("content-type", "text/event-stream") in events[0].headers
    bodies = [e for e in events if isinstance(e, Body)]
    assert len(bodies) == 1 + 3 + 1 + 1  # role, three pieces, finish, [DONE]
    data = [json.loads(b.data[6:]) for b in bodies[:-1]]
    assert "".join(d["choices"][0]["delta"].get("content", "") for d in data) == "Hello!"
    assert data[-1]["choices"][0]["finish_reason"] == "length" and bodies[-1].data == b"data: [DONE]\n\n"
    tail = events[-1]
    assert isinstance(tail, Tail)
    receipt = decode_receipt(dict(tail.trailers)["enclavia-receipt"])
    verify_receipt(
        receipt,
        enclave.signing_key.public_bytes,
        request_content=request_content,
        response_content=content,
        measurement=enclave.manifest_digest,
    )
    assert receipt.model == "fake-gguf" and receipt.model_sha256 == "ab" * 32


def test_enclave_non_streamed_chat_over_chunked_ohttp(tmp_path: Path) -> None:
    enclave = _enclave(tmp_path, ["a", "b"])
    events, _, content = _run_stream(enclave, _chat(model="fake-gguf"), receipt=False)
    doc = json.loads(content)
    assert doc["object"] == "chat.completion" and doc["choices"][0]["message"]["content"] == "ab"
    assert doc["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    events, _, content = _run_stream(enclave, _chat(model="nope"))
    assert events[0].status == 404 and b"request.not_found" in content


def test_stream_stops_when_the_reader_goes_away(tmp_path: Path) -> None:
    enclave = _enclave(tmp_path, ["x"] * 50)
    inner = encode_request(
        Request(
            "POST",
            "https",
            "enclave",
            "/v1/chat/completions",
            (("content-type", "application/json"),),
            json.dumps({**_chat(model="fake-gguf"), "stream": True}).encode(),
        )
    )
    message, _ = encapsulate_chunked_request(enclave.gateway_key.config, inner)
    sent: list[bytes] = []

    def emit(piece: bytes) -> bool:
        sent.append(piece)
        return len(sent) < 5

    enclave.open_stream(message)(emit)
    assert len(sent) == 5  # nonce, head, role chunk, two tokens: then it stopped, with no final chunk


# --- receipts ------------------------------------------------------------------------------------


def test_receipt_sign_verify_and_tamper() -> None:
    key = SigningKey.generate()
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    r = issue_receipt(
        key,
        request_content=b"req",
        response_content=b"resp",
        route="/v1/chat/completions?x=1",
        status=200,
        measurement=MEASUREMENT,
        model="gemma3-270m-q4-k-m",
        model_sha256="cd" * 32,
        policy_revision=7,
        now=when,
    )
    assert r.route == "/v1/chat/completions" and r.issued_at == "2026-01-02T03:04:05Z"
    wire = encode_receipt(r)
    parsed = decode_receipt(wire)
    assert parsed == r == decode_receipt(json.dumps(r.to_json()))
    verify_receipt(
        parsed, key.public_bytes, request_content=b"req", response_content=b"resp", measurement=MEASUREMENT
    )
    with pytest.raises(ReceiptInvalidError):
        verify_receipt(parsed, key.public_bytes, response_content=b"other")
    with pytest.raises(ReceiptInvalidError):
        verify_receipt(parsed, key.public_bytes, measurement=bytes(48))
    with pytest.raises(SignatureInvalidError):
        verify_receipt(parsed, SigningKey.generate().public_bytes)
    for field, value in (
        ("status", 201),
        ("model", "x"),
        ("policy_revision", 8),
        ("response_sha256", "0" * 64),
    ):
        forged = decode_receipt(json.dumps({**r.to_json(), field: value}))
        with pytest.raises(SignatureInvalidError):
            verify_receipt(forged, key.public_bytes)
    for bad in (
        "",
        "not base64!",
        json.dumps({**r.to_json(), "extra": 1}),
        json.dumps({**r.to_json(), "signature": ""}),
    ):
        with pytest.raises(ReceiptInvalidError):
            decode_receipt(bad)
    assert isinstance(ChunkIntegrityError(), Exception)
