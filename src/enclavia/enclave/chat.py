"""``POST /v1/chat/completions`` inside the enclave: OpenAI request and response shapes, streamed or not.

Messages become a plain ``Role: text`` transcript (``enclavia.inference.chat.build_prompt``). With
``"stream": true`` the content is Server-Sent Events, one ``chat.completion.chunk`` per decoded piece of text,
then ``data: [DONE]``; each event leaves the enclave in its own encrypted chunk. Errors before generation
starts are problem+json like every inner route; a failure during generation becomes an SSE ``error`` event
(status and headers were already sent). Nothing about the prompt or the output is logged.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from enclavia.enclave.streaming import StreamedResponse, Write
from enclavia.errors import BadRequestError, EnclaviaError, NotFoundError
from enclavia.inference.chat import ROLES, ChatModel, GenerationParams, build_prompt

JSON = "application/json"
SSE = "text/event-stream"
MAX_MESSAGES = 256
MAX_PROMPT_CHARS = 32_000
MAX_TOKENS_CAP = 2048
DEFAULT_MAX_TOKENS = 256
MAX_STOP = 4
# Fields an OpenAI client may send. Others are refused (a typo must not silently change behaviour).
_KNOWN = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "stream",
        "stream_options",
        "stop",
        "seed",
        "n",
        "user",
        "presence_penalty",
        "frequency_penalty",
        "logprobs",
        "metadata",
        "store",
    }
)


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: tuple[tuple[str, str], ...]
    params: GenerationParams
    stream: bool
    include_usage: bool


def _number(body: dict[str, Any], name: str, default: float, lo: float, hi: float) -> float:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise BadRequestError(f"{name} out of range")
    return float(value)


def _content(raw: object) -> str:
    if isinstance(raw, str):
        return raw
    # The array form: [{"type": "text", "text": "..."}]; other part types are not supported.
    if isinstance(raw, list) and all(
        isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in raw
    ):
        return "".join(p["text"] for p in raw)
    raise BadRequestError("message content must be a string or text parts")


def parse_chat_request(body: object) -> ChatRequest:
    if not isinstance(body, dict) or set(body) - _KNOWN:
        raise BadRequestError("body must be an OpenAI chat completion request")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequestError("model is required")
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list) or not 0 < len(raw_messages) <= MAX_MESSAGES:
        raise BadRequestError(f"messages must be a list of 1 to {MAX_MESSAGES} messages")
    messages: list[tuple[str, str]] = []
    for m in raw_messages:
        if not isinstance(m, dict) or m.get("role") not in (*ROLES, "developer"):
            raise BadRequestError("each message needs a role of system, user or assistant")
        role = "system" if m["role"] == "developer" else str(m["role"])
        messages.append((role, _content(m.get("content"))))
    if sum(len(c) for _, c in messages) > MAX_PROMPT_CHARS:
        raise BadRequestError("prompt too long")
    if body.get("n", 1) != 1:
        raise BadRequestError("only n = 1 is supported")
    if body.get("logprobs"):
        raise BadRequestError("logprobs are not supported")
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    limit = DEFAULT_MAX_TOKENS if limit is None else limit
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_TOKENS_CAP:
        raise BadRequestError(f"max_tokens must be 1 to {MAX_TOKENS_CAP}")
    stop = body.get("stop")
    stops = () if stop is None else (stop,) if isinstance(stop, str) else stop
    if (
        not isinstance(stops, list | tuple)
        or len(stops) > MAX_STOP
        or not all(isinstance(s, str) and 0 < len(s) <= 64 for s in stops)
    ):
        raise BadRequestError("stop must be a string or up to 4 strings")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32):
        raise BadRequestError("seed out of range")
    stream = body.get("stream", False)
    options = body.get("stream_options") or {}
    if not isinstance(stream, bool) or not isinstance(options, dict) or set(options) - {"include_usage"}:
        raise BadRequestError("stream must be a boolean")
    params = GenerationParams(
        max_tokens=limit,
        temperature=_number(body, "temperature", 0.7, 0.0, 2.0),
        top_p=_number(body, "top_p", 0.95, 0.0, 1.0),
        stop=tuple(stops),
        seed=seed,
    )
    return ChatRequest(model, tuple(messages), params, stream, bool(options.get("include_usage")))


def _sse(obj: object) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def open_chat(model: ChatModel | None, body: object) -> StreamedResponse:
    """Validate the request (errors raise here, before anything is sent) and return the response to run."""
    if model is None:
        raise NotFoundError("no chat model in this enclave")
    req = parse_chat_request(body)
    if req.model != model.name:
        raise NotFoundError("unknown model")
    prompt = build_prompt(req.messages)
    cid = "chatcmpl-" + secrets.token_hex(12)
    created = int(time.time())
    base = {"id": cid, "created": created, "model": model.name, "system_fingerprint": "enclavia"}

    if not req.stream:

        def run_once(write: Write) -> None:
            done = model.generate(prompt, req.params)
            write(
                json.dumps(
                    {
                        **base,
                        "object": "chat.completion",
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": done.text},
                                "finish_reason": done.finish_reason,
                                "logprobs": None,
                            }
                        ],
                        "usage": _usage(done.prompt_tokens, done.completion_tokens),
                    },
                    separators=(",", ":"),
                ).encode()
            )

        return StreamedResponse(200, (("content-type", JSON),), run_once, incremental=False)

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return _sse({**base, "object": "chat.completion.chunk", "choices": [choice]})

    def run_stream(write: Write) -> None:
        if not write(chunk({"role": "assistant", "content": ""})):
            return
        try:
            done = model.generate(prompt, req.params, on_text=lambda t: write(chunk({"content": t})))
        except EnclaviaError as err:
            write(_sse({"error": {"message": err.title, "type": "server_error", "code": err.code}}))
            write(b"data: [DONE]\n\n")
            return
        if done.finish_reason == "cancelled":
            return
        write(chunk({}, done.finish_reason))
        if req.include_usage:
            usage = _usage(done.prompt_tokens, done.completion_tokens)
            write(_sse({**base, "object": "chat.completion.chunk", "choices": [], "usage": usage}))
        write(b"data: [DONE]\n\n")

    return StreamedResponse(200, (("content-type", SSE), ("cache-control", "no-store")), run_stream)


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def instrumented(
    streamed: StreamedResponse, on_done: Callable[[int, float, str | None], None]
) -> StreamedResponse:
    """Wrap ``run`` to report (bytes out, seconds, error code) once the stream ends."""

    def run(write: Write) -> None:
        start = time.perf_counter()
        sent = 0
        code: str | None = None

        def counted(piece: bytes) -> bool:
            nonlocal sent
            sent += len(piece)
            return write(piece)

        try:
            streamed.run(counted)
        except EnclaviaError as err:
            code = err.code
            raise
        finally:
            on_done(sent, time.perf_counter() - start, code)

    return StreamedResponse(streamed.status, streamed.headers, run, streamed.incremental)
