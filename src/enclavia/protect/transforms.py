"""Transforms over detected spans: redact, mask, tokenize (AES-SIV), field-level encryption (AES-256-GCM).

Tokenization: each (tenant, requester, conversation) scope has its own AES-SIV key derived from the enclave's
tokenization secret. A value becomes ``<TYPE_n>``; ``n`` is the order in which the scope first met that
(type, value), so the same value gets the same token throughout a conversation. The scope's vault keeps, per
token, only the SIV ciphertext of the value (never the plaintext); re-identification decrypts it with the
scope's key, inside the enclave, and only for the same scope. Another requester or conversation derives a
different key and has an empty vault, so its tokens never resolve.
"""

from __future__ import annotations

import base64
import hmac
import json
import re
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from enclavia.crypto import aead
from enclavia.crypto.siv import derive_key, siv_open, siv_seal
from enclavia.errors import DecryptionError
from enclavia.protect.detect import Span

__all__ = [
    "FieldCipher",
    "TokenScope",
    "Tokenizer",
    "apply",
    "mask",
    "redact",
]

TOKEN_RE: Final = re.compile(r"<([A-Z][A-Z0-9_]*?)_(\d{1,6})>")
_KEEP_LAST4: Final = frozenset({"CREDIT_CARD", "IBAN_CODE", "US_SSN", "PHONE_NUMBER", "NPI", "MRN"})
MAX_SCOPES: Final = 4096


def _replace(text: str, spans: Iterable[Span], fn: Callable[[Span, str], str]) -> str:
    out: list[str] = []
    pos = 0
    for s in sorted(spans):
        if s.start < pos:
            continue  # overlapping spans: the earlier one already covered this text
        out.append(text[pos : s.start])
        out.append(fn(s, text[s.start : s.end]))
        pos = s.end
    out.append(text[pos:])
    return "".join(out)


def redact(text: str, spans: Iterable[Span]) -> str:
    """Replace each span by ``[TYPE]``."""
    return _replace(text, spans, lambda s, _: f"[{s.type}]")


def _mask_value(etype: str, value: str) -> str:
    alnum = [i for i, c in enumerate(value) if c.isalnum()]
    keep = set(alnum[-4:]) if etype in _KEEP_LAST4 and len(alnum) > 8 else set()
    return "".join(c if (not c.isalnum() or i in keep) else "*" for i, c in enumerate(value))


def mask(text: str, spans: Iterable[Span]) -> str:
    """Replace letters and digits by ``*``, keeping separators (and the last four of card-like numbers)."""
    return _replace(text, spans, lambda s, v: _mask_value(s.type, v))


@dataclass
class TokenScope:
    """One conversation's vault: token -> SIV ciphertext of (type, value). No plaintext is kept."""

    key: bytes
    by_cipher: dict[bytes, str] = field(default_factory=dict)
    by_token: dict[str, bytes] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)

    def token_for(self, etype: str, value: str) -> str:
        ct = siv_seal(self.key, value.encode(), [etype.encode()])
        token = self.by_cipher.get(ct)
        if token is None:
            n = self.counters.get(etype, 0) + 1
            self.counters[etype] = n
            token = f"<{etype}_{n}>"
            self.by_cipher[ct] = token
            self.by_token[token] = ct
        return token

    def value_for(self, token: str) -> str | None:
        ct = self.by_token.get(token)
        if ct is None:
            return None
        m = TOKEN_RE.fullmatch(token)
        if m is None:
            return None
        try:
            return siv_open(self.key, ct, [m.group(1).encode()]).decode()
        except DecryptionError:
            return None


class Tokenizer:
    """Scopes keyed by (tenant, requester, conversation); bounded, least recently used dropped first."""

    def __init__(self, secret: bytes, max_scopes: int = MAX_SCOPES) -> None:
        if len(secret) < 32:
            raise ValueError("tokenization secret must be at least 32 bytes")
        self._secret = secret
        self._scopes: OrderedDict[tuple[str, str, str], TokenScope] = OrderedDict()
        self._max = max_scopes
        self._lock = threading.Lock()

    def scope(self, tenant: str, requester: str, conversation: str) -> TokenScope:
        key = (tenant, requester, conversation)
        with self._lock:
            found = self._scopes.get(key)
            if found is None:
                label = b"enclavia-tokenize-v1" + b"".join(
                    struct.pack(">H", len(p.encode())) + p.encode() for p in key
                )
                found = TokenScope(derive_key(self._secret, label, 64))
                self._scopes[key] = found
                if len(self._scopes) > self._max:
                    self._scopes.popitem(last=False)
            self._scopes.move_to_end(key)
            return found

    @staticmethod
    def tokenize(scope: TokenScope, text: str, spans: Iterable[Span]) -> str:
        return _replace(text, spans, lambda s, v: scope.token_for(s.type, v))

    @staticmethod
    def reidentify(scope: TokenScope, text: str, allowed: Callable[[str], bool] = lambda _: False) -> str:
        """Replace tokens this scope issued by their values, for entity types ``allowed`` grants (the
        requester's decision, Classification.may_reidentify; none by default); any other token stays."""

        def sub(m: re.Match[str]) -> str:
            if not allowed(m.group(1)):
                return m.group(0)
            value = scope.value_for(m.group(0))
            return m.group(0) if value is None else value

        return TOKEN_RE.sub(sub, text)


def apply(
    action: str, text: str, spans: list[Span], scope: TokenScope | None = None
) -> str:  # pragma: no branch
    """Apply one manifest action (redact, mask, tokenize, none) to ``spans`` of ``text``."""
    if not spans or action == "none":
        return text
    if action == "redact":
        return redact(text, spans)
    if action == "mask":
        return mask(text, spans)
    if action == "tokenize":
        if scope is None:
            return redact(text, spans)  # no conversation scope: fail closed
        return Tokenizer.tokenize(scope, text, spans)
    raise ValueError("unknown transform")


def apply_each(text: str, actions: list[tuple[Span, str]], scope: TokenScope | None = None) -> str:
    """One pass over ``text`` applying a per-span action (redact, mask, tokenize, none)."""
    by_pos = {(sp.start, sp.end, sp.type): a for sp, a in actions}

    def one(sp: Span, value: str) -> str:
        action = by_pos[(sp.start, sp.end, sp.type)]
        if action == "none":
            return value
        if action == "mask":
            return _mask_value(sp.type, value)
        if action == "tokenize" and scope is not None:
            return scope.token_for(sp.type, value)
        return f"[{sp.type}]"  # redact, and tokenize without a scope (fail closed)

    return _replace(text, [sp for sp, _ in actions], one)


# -- field-level encryption ------------------------------------------------------------------------


def _field_aad(key_id: str, path: str) -> bytes:
    k, p = key_id.encode(), path.encode()
    return b"enclavia-field-v1" + struct.pack(">H", len(k)) + k + struct.pack(">H", len(p)) + p


@dataclass(frozen=True)
class FieldCipher:
    """AES-256-GCM per field; the key id and the field path are associated data (a value moved to another
    field, or presented under another key id, does not decrypt)."""

    key_id: str
    key: bytes

    def encrypt(self, path: str, value: Any) -> dict[str, str]:
        plaintext = json.dumps(value, separators=(",", ":"), allow_nan=False).encode()
        blob = aead.seal(self.key, plaintext, _field_aad(self.key_id, path))
        return {"enc": "A256GCM", "kid": self.key_id, "ct": base64.b64encode(blob).decode()}

    def decrypt(self, path: str, sealed: Mapping[str, Any]) -> Any:
        if sealed.get("enc") != "A256GCM" or not hmac.compare_digest(str(sealed.get("kid", "")), self.key_id):
            raise DecryptionError()
        try:
            blob = base64.b64decode(str(sealed.get("ct", "")), validate=True)
        except ValueError:
            raise DecryptionError() from None
        return json.loads(aead.open_(self.key, blob, _field_aad(self.key_id, path)))
