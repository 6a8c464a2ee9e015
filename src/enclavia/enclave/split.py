"""Split mode: the enclave keeps the keys and the identifiers; heavy compute runs outside on tokenized text.

``POST /v1/split/chat/completions`` (inner route, OpenAI chat shape; an OpenAI client uses base URL
``.../v1/split``). ``model`` names an OpenAI-compatible model server on the measured egress allow-list of the
classification manifest (for example the team's GPU box). Inside the enclave, for each message:

1. the requester is authenticated (bearer token inside the encrypted request) and must hold ``egress``;
2. identifiers the client declares (``identifiers: [{"type": "PERSON", "value": ...}]``, e.g. the patient's
   name from the record) join the conversation's known values first: the detector misses some names
   (docs/data-protection.md), a declared value is replaced wherever it occurs;
3. the detector finds identifiers; each is handled by its class's ``egress`` action (tokenize to
   ``<TYPE_n>`` under this requester's conversation key, redact, or refuse the call), and every value seen
   earlier in the conversation is replaced wherever it recurs (enclavia.protect.egress.EgressGuard);
4. the outgoing body is checked byte for byte for every original value: if one remained, nothing is sent;
5. the provider's reply is re-identified inside the enclave (tokens of this conversation only), scanned
   again, and transformed for what the requester is not cleared for, then encrypted to the requester.

What the outside compute (and the host relay in between) sees is documented in docs/split-mode.md.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

from enclavia.errors import BadRequestError, EnclaviaError, NotFoundError

ROUTE = "/v1/split/chat/completions"
MAX_TOKENS = 8192
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-")
_FIELDS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "temperature",
        "top_p",
        "seed",
        "conversation",
        "stream",
        "identifiers",
    }
)
MAX_IDENTIFIERS = 64


def _ident(value: Any, what: str) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= 128 or not set(value) <= _ID_CHARS:
        raise BadRequestError(f"{what} must be 1 to 128 characters of [A-Za-z0-9._:-]")
    return value


def _number(body: Mapping[str, Any], key: str, lo: float, hi: float, integer: bool) -> int | float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        raise BadRequestError(f"{key} must be a number")
    if not lo <= value <= hi:
        raise BadRequestError(f"{key} out of range")
    return value


def parse_identifiers(raw: Any) -> list[tuple[str, str]]:
    """Declared identifiers: [{"type": an entity type, "value": 3 to 256 characters}] -> [(type, value)]."""
    from enclavia.protect.entities import ENTITY_TYPES

    if raw is None:
        return []
    if not isinstance(raw, list) or len(raw) > MAX_IDENTIFIERS:
        raise BadRequestError(f"identifiers must be a list of at most {MAX_IDENTIFIERS}")
    out = []
    for item in raw:
        if (
            not isinstance(item, dict)
            or set(item) != {"type", "value"}
            or not isinstance(item["type"], str)  # a list here is unhashable: check the type first
            or item["type"] not in ENTITY_TYPES
            or not isinstance(item["value"], str)
            or not 3 <= len(item["value"].strip()) <= 256
        ):
            raise BadRequestError("each identifier is {type: an entity type, value: 3 to 256 characters}")
        out.append((str(item["type"]), item["value"].strip()))
    return out


def parse_request(body: Any) -> tuple[str, list[dict[str, str]], dict[str, int | float], str]:
    """(provider name, messages, sampling params, conversation). Errors never echo the content."""
    if not isinstance(body, dict) or set(body) - _FIELDS:
        raise BadRequestError("unknown field in split chat request")
    if body.get("stream"):
        raise BadRequestError("split mode does not stream: the reply is re-identified as a whole")
    provider = _ident(body.get("model"), "model")
    raw = body.get("messages")
    if not isinstance(raw, list) or not 0 < len(raw) <= 64:
        raise BadRequestError("messages must be a list of 1 to 64 messages")
    messages: list[dict[str, str]] = []
    for m in raw:
        if (
            not isinstance(m, dict)
            or set(m) - {"role", "content"}
            or m.get("role") not in {"system", "user", "assistant"}
            or not isinstance(m.get("content"), str)
            or len(m["content"]) > 100_000
        ):
            raise BadRequestError("each message is {role: system|user|assistant, content: string}")
        messages.append({"role": m["role"], "content": m["content"]})
    params: dict[str, int | float] = {}
    for key, lo, hi, integer in (
        ("max_tokens", 1, MAX_TOKENS, True),
        ("temperature", 0.0, 2.0, False),
        ("top_p", 0.0, 1.0, False),
        ("seed", 0, 2**31 - 1, True),
    ):
        value = _number(body, key, lo, hi, integer)
        if value is not None:
            params[key] = value
    conversation = _ident(body.get("conversation", "default"), "conversation")
    return provider, messages, params, conversation


def split_chat(
    data: Any, headers: Mapping[str, str], body: Any, log: Callable[..., Any] | None = None
) -> dict[str, Any]:
    """``data``: the enclave's DataApi (classification, detector, tokenizer, egress guard)."""
    if data is None or data.egress is None:
        raise NotFoundError("split mode needs a classification manifest with egress targets")
    requester = data.requester(headers, "egress")
    provider, messages, params, conversation = parse_request(body)
    declared = parse_identifiers(body.get("identifiers"))
    if declared:
        from enclavia.protect.detect import Span

        session = data.egress.session(requester, conversation)
        for etype, value in declared:
            session.add(value, [Span(0, len(value), etype, 1.0)])
    # Only allow-listed (measured) provider names reach the log; anything else is "unlisted".
    label = provider if provider in {t.name for t in data.classification.egress} else "unlisted"
    start = time.perf_counter()
    try:
        reply = data.egress.chat(provider, messages, requester, conversation, params)
    except EnclaviaError as err:
        if log is not None:
            log("enclave.split", provider=label, outcome="error", error_code=err.code)
        raise
    except ValueError:
        raise BadRequestError("messages invalid") from None
    if log is not None:
        log(
            "enclave.split",
            provider=label,
            outcome="ok",
            tokens_out=reply["tokens_out"],
            reidentify_refused=reply.get("reidentify_refused", 0),
            duration_ms=round((time.perf_counter() - start) * 1000, 3),
        )
    usage = dict(reply.get("usage") or {})
    return {
        "id": "chatcmpl-" + secrets.token_hex(12),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": provider,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply["content"]},
                "finish_reason": reply.get("finish_reason", "stop"),
            }
        ],
        **({"usage": usage} if usage else {}),
        "enclavia": {"mode": "split", "provider": provider, "tokens_sent": reply["tokens_out"]},
    }
