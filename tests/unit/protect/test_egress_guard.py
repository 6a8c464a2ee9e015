"""Egress guard with an in-process transport: what would leave is inspected byte for byte."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from enclavia.errors import EgressDeniedError, EgressFailedError, ForbiddenError
from enclavia.protect.classification import Requester, default_classification, parse_classification
from enclavia.protect.detect import Detector
from enclavia.protect.egress import EgressGuard
from enclavia.protect.transforms import Tokenizer


def _classification(pci_egress: str = "redact"):  # type: ignore[no-untyped-def]
    import yaml

    doc = default_classification().measured()
    doc["classes"]["PCI"]["egress"] = pci_egress
    doc["egress"] = [{"name": "p", "url": "http://127.0.0.1:1/v1", "kind": "openai", "model": "m"}]
    return parse_classification(yaml.safe_dump(doc))


REQ = Requester("dr", "t", frozenset({"PHI", "PII", "PCI", "CONFIDENTIAL", "PUBLIC"}),
                frozenset({"egress", "reidentify"}), hashlib.sha256(b"x").hexdigest())  # fmt: skip


def test_prompt_full_of_pii_leaves_tokenized(detector: Detector) -> None:
    sent: list[bytes] = []

    def transport(url: str, body: bytes) -> bytes:
        sent.append(body)
        content = json.loads(body)["messages"][0]["content"]
        return json.dumps({"choices": [{"message": {"content": "Echo: " + content}}]}).encode()

    guard = EgressGuard(_classification(), detector, Tokenizer(os.urandom(32)), transport)
    prompt = ("Patient John Smith, MRN: 00123456, SSN 219-44-7613, email john.smith@example.com, "
              "card 4111 1111 1111 1111, seen 2/8/2021. Later Smith called again.")  # fmt: skip
    out = guard.chat("p", [{"role": "user", "content": prompt}], REQ, "c1")
    body = sent[0]
    for raw in (
        b"John Smith",
        b"00123456",
        b"219-44-7613",
        b"john.smith@example.com",
        b"4111 1111 1111 1111",
    ):
        assert raw not in body
    assert b"[CREDIT_CARD]" in body  # PCI is redacted, not tokenized
    assert "John Smith" in out["content"] and "00123456" in out["content"]  # re-identified for the requester


def test_allow_list_and_actions(detector: Detector) -> None:
    guard = EgressGuard(_classification("deny"), detector, Tokenizer(os.urandom(32)), lambda u, b: b"{}")
    with pytest.raises(EgressDeniedError):
        guard.chat("not-listed", [{"role": "user", "content": "hi"}], REQ, "c")
    with pytest.raises(ForbiddenError):  # a PCI value may not leave at all under "deny"
        guard.chat("p", [{"role": "user", "content": "card 4111 1111 1111 1111"}], REQ, "c")
    with pytest.raises(ForbiddenError):
        guard.chat(
            "p",
            [{"role": "user", "content": "hi"}],
            Requester("x", "t", frozenset(), frozenset(), "0" * 64),
            "c",
        )
    with pytest.raises(EgressFailedError):  # provider reply not OpenAI-shaped
        guard.chat("p", [{"role": "user", "content": "hello there"}], REQ, "c")
