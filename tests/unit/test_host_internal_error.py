"""Issue 15, deliver 3: the host's top-level handler turns anything unexpected into a typed problem and logs
its code only; no traceback text reaches the host log (uvicorn would print one for an escaped exception)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from enclavia.host.app import TypedErrors
from enclavia.observability import logging as elog

CANARY = "CANARY-HOST-BUG-91c2"


def _app() -> Starlette:
    async def boom(_: Request) -> Response:
        raise TypeError(f"unhashable type: {CANARY}")

    async def late(_: Request) -> Response:
        def body() -> Iterator[bytes]:
            yield b"first"
            raise RuntimeError(CANARY)

        return StreamingResponse(body())

    # placed as create_app places it: inside Starlette's error middleware, which would re-raise to uvicorn
    return Starlette(
        routes=[Route("/boom", boom), Route("/late", late)], middleware=[Middleware(TypedErrors)]
    )


def test_unexpected_exception_is_typed_and_logged_by_code_only() -> None:
    stream = io.StringIO()
    elog.configure("host", stream=stream)
    try:
        # raise_server_exceptions: an exception that escaped our layer would fail the test here
        client = TestClient(_app(), raise_server_exceptions=True)
        resp = client.get("/boom")
        with client.stream("GET", "/late") as late:
            assert late.read() == b"first"  # already started: the stream is closed, never a second answer
    finally:
        elog.configure("test")
    assert resp.status_code == 500 and resp.headers["content-type"].startswith("application/problem+json")
    assert resp.json()["code"] == "enclave.internal"
    text = stream.getvalue() + resp.text
    assert CANARY not in text and "Traceback" not in text and "TypeError" not in text
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(e["event"], e["error_code"], e["started"]) for e in events] == [
        ("host.internal_error", "enclave.internal", False),
        ("host.internal_error", "enclave.internal", True),
    ]
