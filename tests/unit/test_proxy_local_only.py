"""The local proxy's guard (issue 15, deliver 5): only local software can drive `enclavia proxy`.

Each refusal is checked on a guarded app that records whether the request reached it, so a refusal that
still forwarded would fail the test. The same checks run against the real proxy process in
tests/integration/test_chat_proxy.py."""

from __future__ import annotations

import io
import json

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from enclavia.client.proxy import LocalOnly

JSON = {"content-type": "application/json"}


class Reached:
    def __init__(self) -> None:
        self.count = 0

    def app(self) -> Starlette:
        async def handler(_: Request) -> Response:
            self.count += 1
            return JSONResponse({"ok": True})

        return Starlette(routes=[Route("/v1/chat/completions", handler, methods=["GET", "POST"])])


def _client(reached: Reached, base: str = "http://127.0.0.1:8080", **kw: object) -> TestClient:
    guard = LocalOnly(
        reached.app(),
        token=kw.get("token"),  # type: ignore[arg-type]
        allowed_origins=kw.get("origins", frozenset()),  # type: ignore[arg-type]
    )
    return TestClient(guard, base_url=base)


@pytest.mark.parametrize("base", ["http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:8080"])
def test_loopback_json_request_passes(base: str) -> None:
    reached = Reached()
    resp = _client(reached, base).post("/v1/chat/completions", content=b"{}", headers=JSON)
    assert resp.status_code == 200 and reached.count == 1


@pytest.mark.parametrize(
    "host", ["attacker.example", "attacker.example:8080", "127.0.0.1.attacker.example", "0.0.0.0:8080", ""]
)
def test_foreign_host_is_refused(host: str) -> None:
    reached = Reached()
    resp = _client(reached).post("/v1/chat/completions", content=b"{}", headers={**JSON, "host": host})
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "proxy.not_local"
    assert reached.count == 0


def test_dns_rebinding_shape_is_refused() -> None:
    """The issue's request: text/plain POST, Host attacker.example, a foreign Origin."""
    reached = Reached()
    resp = _client(reached).post(
        "/v1/chat/completions",
        content=b'{"model":"m","messages":[]}',
        headers={
            "content-type": "text/plain",
            "host": "attacker.example",
            "origin": "http://attacker.example",
        },
    )
    assert resp.status_code == 403 and reached.count == 0
    assert not any(h.lower().startswith("access-control-") for h in resp.headers)


@pytest.mark.parametrize("origin", ["http://attacker.example", "null", "http://localhost:3000"])
def test_cross_origin_browser_request_is_refused(origin: str) -> None:
    reached = Reached()
    resp = _client(reached).post("/v1/chat/completions", content=b"{}", headers={**JSON, "origin": origin})
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "proxy.not_local"
    assert reached.count == 0 and "access-control-allow-origin" not in resp.headers


def test_explicitly_allowed_origin_passes_without_cors_headers() -> None:
    reached = Reached()
    client = _client(reached, origins=frozenset({"http://localhost:3000"}))
    resp = client.post(
        "/v1/chat/completions", content=b"{}", headers={**JSON, "origin": "http://localhost:3000"}
    )
    assert resp.status_code == 200 and reached.count == 1
    assert "access-control-allow-origin" not in resp.headers


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
def test_post_without_json_content_type_is_refused(content_type: str | None) -> None:
    reached = Reached()
    headers = {} if content_type is None else {"content-type": content_type}
    resp = _client(reached).post("/v1/chat/completions", content=b"{}", headers=headers)
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "request.invalid"
    assert reached.count == 0


def test_json_with_charset_passes() -> None:
    reached = Reached()
    resp = _client(reached).post(
        "/v1/chat/completions", content=b"{}", headers={"content-type": "Application/JSON; charset=utf-8"}
    )
    assert resp.status_code == 200 and reached.count == 1


@pytest.mark.parametrize("auth", [None, "Bearer wrong", "Basic c2VjcmV0", "Bearer", "bearer secret-x"])
def test_missing_or_wrong_token_is_refused(auth: str | None) -> None:
    reached = Reached()
    headers = dict(JSON) if auth is None else {**JSON, "authorization": auth}
    resp = _client(reached, token="secret").post("/v1/chat/completions", content=b"{}", headers=headers)
    assert resp.status_code == 401 and resp.json()["error"]["code"] == "request.unauthenticated"
    assert reached.count == 0


def test_right_token_passes_and_get_needs_no_content_type() -> None:
    reached = Reached()
    client = _client(reached, token="secret")
    assert client.get("/v1/chat/completions", headers={"authorization": "Bearer secret"}).status_code == 200
    resp = client.post(
        "/v1/chat/completions", content=b"{}", headers={**JSON, "authorization": "bearer secret"}
    )
    assert resp.status_code == 200 and reached.count == 2


def test_refusal_is_logged_by_reason_and_code_only() -> None:
    from enclavia.observability import logging as elog

    stream = io.StringIO()
    elog.configure("proxy", stream=stream)
    canary = "CANARY-PROXY-HOST-7f3a"
    try:
        _client(Reached()).post(
            "/v1/chat/completions", content=canary.encode(), headers={"host": canary + ".example"}
        )
    finally:
        elog.configure("test")
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    refused = [e for e in events if e["event"] == "proxy.refused"]
    assert refused and refused[0]["reason"] == "host" and refused[0]["error_code"] == "proxy.not_local"
    assert canary not in stream.getvalue()
