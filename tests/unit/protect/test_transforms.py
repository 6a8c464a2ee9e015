from __future__ import annotations

import os

import pytest

from enclavia.crypto import aead
from enclavia.crypto.envelope import rewrap, unwrap_dek, wrap_dek
from enclavia.errors import DecryptionError
from enclavia.protect.detect import Span
from enclavia.protect.transforms import FieldCipher, Tokenizer, apply_each, mask, redact

TEXT = "Jane Roe paid with 4111 1111 1111 1111 and Jane Roe called."
SPANS = [Span(0, 8, "PERSON", 0.9), Span(19, 38, "CREDIT_CARD", 0.9), Span(43, 51, "PERSON", 0.9)]


def test_redact_and_mask() -> None:
    assert redact(TEXT, SPANS) == "[PERSON] paid with [CREDIT_CARD] and [PERSON] called."
    masked = mask(TEXT, SPANS)
    assert "**** **** **** 1111" in masked and "Jane" not in masked and masked.startswith("**** ***")
    assert redact(TEXT, []) == TEXT


def test_tokens_consistent_within_a_conversation_and_reidentified_only_there() -> None:
    tok = Tokenizer(os.urandom(32))
    scope = tok.scope("t1", "dr-a", "conv-1")
    out = Tokenizer.tokenize(scope, TEXT, SPANS)
    assert out == "<PERSON_1> paid with <CREDIT_CARD_1> and <PERSON_1> called."
    assert Tokenizer.reidentify(scope, out, lambda _: True) == TEXT
    # Another conversation, requester or tenant: different key, empty vault, tokens stay tokens.
    for other in (
        tok.scope("t1", "dr-a", "conv-2"),
        tok.scope("t1", "dr-b", "conv-1"),
        tok.scope("t2", "dr-a", "conv-1"),
    ):
        assert Tokenizer.reidentify(other, out, lambda _: True) == out
    # Numbering follows first appearance; a new value gets the next number.
    assert scope.token_for("PERSON", "John Doe") == "<PERSON_2>"
    assert scope.token_for("PERSON", "Jane Roe") == "<PERSON_1>"


def test_vault_holds_no_plaintext() -> None:
    scope = Tokenizer(os.urandom(32)).scope("t", "r", "c")
    scope.token_for("PERSON", "Jane Roe")
    assert all(b"Jane" not in ct for ct in scope.by_token.values())


def test_forged_token_not_reidentified() -> None:
    scope = Tokenizer(os.urandom(32)).scope("t", "r", "c")
    assert Tokenizer.reidentify(scope, "<PERSON_7> and <X_1>") == "<PERSON_7> and <X_1>"


def test_apply_each_mixed_actions() -> None:
    scope = Tokenizer(os.urandom(32)).scope("t", "r", "c")
    out = apply_each(TEXT, [(SPANS[0], "tokenize"), (SPANS[1], "mask"), (SPANS[2], "redact")], scope)
    assert out == "<PERSON_1> paid with **** **** **** 1111 and [PERSON] called."
    assert apply_each(TEXT, [(SPANS[0], "tokenize")], None).startswith("[PERSON]")  # no scope: fail closed


def test_field_encryption_binds_key_id_and_path() -> None:
    key = aead.generate_key()
    f = FieldCipher("k1", key)
    sealed = f.encrypt("patient.ssn", "219-44-7613")
    assert "219" not in sealed["ct"]
    assert f.decrypt("patient.ssn", sealed) == "219-44-7613"
    with pytest.raises(DecryptionError):
        f.decrypt("patient.name", sealed)  # moved to another field
    with pytest.raises(DecryptionError):
        FieldCipher("k2", key).decrypt("patient.ssn", {**sealed, "kid": "k2"})  # other key id
    with pytest.raises(DecryptionError):
        f.decrypt("patient.ssn", {**sealed, "ct": sealed["ct"][:-4] + "AAAA"})


def test_envelope_wrap_and_rewrap() -> None:
    old, new, dek = aead.generate_key(), aead.generate_key(), aead.generate_key()
    w = wrap_dek(old, "kek-1", "doc-1", dek)
    assert unwrap_dek(old, "kek-1", "doc-1", w) == dek
    with pytest.raises(DecryptionError):
        unwrap_dek(old, "kek-1", "doc-2", w)  # bound to its slot
    w2 = rewrap(old, "kek-1", new, "kek-2", "doc-1", w)
    assert unwrap_dek(new, "kek-2", "doc-1", w2) == dek
    with pytest.raises(DecryptionError):
        unwrap_dek(old, "kek-1", "doc-1", w2)
