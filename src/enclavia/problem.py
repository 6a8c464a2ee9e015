"""RFC 9457 problem details from the error tree. Bodies carry only fixed text and stable codes."""

from __future__ import annotations

import json

from enclavia.errors import EnclaviaError

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://enclavia.dev/problems/"


def problem(err: EnclaviaError | type[EnclaviaError], correlation_id: str | None = None) -> dict[str, object]:
    cls = err if isinstance(err, type) else type(err)
    body: dict[str, object] = {
        "type": TYPE_BASE + cls.code,
        "title": cls.title,
        "status": cls.status,
        "code": cls.code,
    }
    if correlation_id:
        body["correlation_id"] = correlation_id
    return body


def problem_bytes(err: EnclaviaError | type[EnclaviaError], correlation_id: str | None = None) -> bytes:
    return json.dumps(problem(err, correlation_id), separators=(",", ":")).encode()
