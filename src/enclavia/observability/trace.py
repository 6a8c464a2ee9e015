"""W3C trace context (traceparent) as the correlation id."""

from __future__ import annotations

import re
import secrets

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def new_traceparent() -> str:
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def parse_traceparent(value: str | None) -> str | None:
    """The traceparent if well-formed (and not all-zero ids), else None. Never echo malformed input."""
    if not value or len(value) != 55:
        return None
    m = _TRACEPARENT.match(value)
    if not m or m.group(1) == "0" * 32 or m.group(2) == "0" * 16:
        return None
    return value


def trace_id(traceparent: str) -> str:
    return traceparent[3:35]
