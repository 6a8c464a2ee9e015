"""Egress guard: nothing classified leaves the enclave for an external model provider in the clear.

For a call to an OpenAI-compatible provider on the measured egress allow-list:

1. every message is scanned by the detector; each span is handled by its class's ``egress`` action
   (``tokenize`` -> ``<TYPE_n>`` under the conversation's scope, ``redact`` -> ``[TYPE]``, ``deny`` -> the
   call is refused, ``allow`` -> kept);
2. the outgoing body is scanned again for every original value seen so far in this session (a value the
   detector found once is replaced wherever else it occurs, even where the detector missed it); if one were
   still present the call is refused rather than sent;
3. the reply is re-identified inside the enclave (tokens of this scope only) and scanned once more: values of
   classes the requester is not cleared for are transformed by the class's ``without_clearance`` action.

The transport is a callable (url, body) -> reply body; in the enclave it is an EGRESS frame to the host, which
performs the HTTP request (the enclave has no network namespace of its own).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from enclavia.errors import EgressFailedError, ForbiddenError
from enclavia.protect.classification import Classification, Requester
from enclavia.protect.detect import Detector, Span, resolve_overlaps
from enclavia.protect.transforms import Tokenizer, TokenScope, apply_each

__all__ = ["EgressGuard", "SessionValues", "Transport"]

Transport = Callable[[str, bytes], bytes]
MAX_MESSAGES = 64
SAMPLING_PARAMS = frozenset({"max_tokens", "temperature", "top_p", "seed"})
MAX_REPLY_CHARS = 200_000


@dataclass
class SessionValues:
    """Original sensitive values seen in one conversation, with their type (in enclave memory only)."""

    values: dict[str, str] = field(default_factory=dict)

    def add(self, text: str, spans: Iterable[Span]) -> None:
        for s in spans:
            value = text[s.start : s.end]
            if len(value.strip()) >= 3:
                self.values.setdefault(value, s.type)

    def find(self, text: str) -> list[Span]:
        spans: list[Span] = []
        for value, etype in self.values.items():
            for m in re.finditer(re.escape(value), text):
                spans.append(Span(m.start(), m.end(), etype, 1.0))
        return resolve_overlaps(spans)


class EgressGuard:
    def __init__(
        self, classification: Classification, detector: Detector, tokenizer: Tokenizer, transport: Transport
    ) -> None:
        self.classification = classification
        self.detector = detector
        self.tokenizer = tokenizer
        self.transport = transport
        self._sessions: dict[tuple[str, str, str], SessionValues] = {}

    def session(self, requester: Requester, conversation: str) -> SessionValues:
        key = (requester.tenant, requester.id, conversation)
        if key not in self._sessions:
            if len(self._sessions) > 4096:
                self._sessions.pop(next(iter(self._sessions)))
            self._sessions[key] = SessionValues()
        return self._sessions[key]

    # -- outbound ------------------------------------------------------------------------------------

    def protect_outbound(self, text: str, scope: TokenScope, session: SessionValues) -> str:
        spans = self.detector.detect(text)
        session.add(text, spans)
        # Values met earlier in the session are caught here even where the detector misses them now.
        spans = resolve_overlaps([*spans, *session.find(text)])
        actions: list[tuple[Span, str]] = []
        for s in spans:
            action = self.classification.classes[self.classification.class_of(s.type)].egress
            if action == "deny":
                raise ForbiddenError("a value of a class that may not leave was found")
            actions.append((s, "none" if action == "allow" else action))
        return apply_each(text, actions, scope)

    def _assert_clean(self, body: str, session: SessionValues) -> None:
        for value in session.values:
            if value in body:
                raise ForbiddenError("a classified value would have left the enclave")

    # -- the call ------------------------------------------------------------------------------------

    def chat(
        self,
        target_name: str,
        messages: list[dict[str, Any]],
        requester: Requester,
        conversation: str,
        params: Mapping[str, int | float] | None = None,
    ) -> dict[str, Any]:
        """OpenAI chat completion through the guard; returns {"content", "tokens_out", "model", "usage",
        "finish_reason"}. ``params``: sampling numbers sent as they are (max_tokens, temperature, top_p,
        seed); the caller validates them. ``usage`` holds the provider's token counts when it sent them."""
        if "egress" not in requester.actions:
            raise ForbiddenError()
        target = self.classification.egress_target(target_name)  # EgressDeniedError if not allow-listed
        if not isinstance(messages, list) or not 0 < len(messages) <= MAX_MESSAGES:
            raise ValueError("messages must be a non-empty list")
        scope = self.tokenizer.scope(requester.tenant, requester.id, conversation)
        session = self.session(requester, conversation)
        sent: list[dict[str, str]] = []
        for m in messages:
            role, content = m.get("role"), m.get("content")
            if role not in {"system", "user", "assistant"} or not isinstance(content, str):
                raise ValueError("each message needs a role and string content")
            sent.append({"role": role, "content": self.protect_outbound(content, scope, session)})
        extra = {k: v for k, v in (params or {}).items() if k in SAMPLING_PARAMS}
        body = json.dumps({"model": target.model, "messages": sent, **extra}, ensure_ascii=False)
        self._assert_clean(body, session)
        raw = self.transport(target.url + "/chat/completions", body.encode())
        try:
            reply = json.loads(raw)
            content = reply["choices"][0]["message"]["content"]
            if not isinstance(content, str) or len(content) > MAX_REPLY_CHARS:
                raise TypeError
            finish = reply["choices"][0].get("finish_reason")
            raw_usage = reply.get("usage") if isinstance(reply.get("usage"), dict) else {}
        except (ValueError, KeyError, IndexError, TypeError):
            raise EgressFailedError() from None
        refused = 0

        def allowed(etype: str) -> bool:
            nonlocal refused
            ok = self.classification.may_reidentify(requester, etype)
            refused += not ok
            return ok

        answer = Tokenizer.reidentify(scope, content, allowed)
        answer = self.scrub_for(requester, answer, scope, session)
        return {
            "content": answer,
            "model": target.model,
            "tokens_out": sum(c["content"].count("<") for c in sent),
            "finish_reason": finish if finish in {"stop", "length"} else "stop",
            "reidentify_refused": refused,  # tokens left as tokens by the decision (counted, logged)
            "usage": {
                k: v
                for k, v in raw_usage.items()
                if k in {"prompt_tokens", "completion_tokens", "total_tokens"}
                and isinstance(v, int)
                and not isinstance(v, bool)
                and 0 <= v < 1 << 31
            },
        }

    def scrub_for(self, requester: Requester, text: str, scope: TokenScope, session: SessionValues) -> str:
        """Last scan before text leaves to the requester: classes it is not cleared for are transformed."""
        spans = resolve_overlaps([*self.detector.detect(text), *session.find(text)])
        actions: list[tuple[Span, str]] = []
        for s in spans:
            cls = self.classification.class_of(s.type)
            if cls not in requester.clearance:
                actions.append((s, self.classification.classes[cls].without_clearance))
        return apply_each(text, actions, scope)
