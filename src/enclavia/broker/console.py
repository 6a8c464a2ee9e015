"""Operator console: a read-only page served by the broker's admin API.

    GET /kbs/v1/admin/console               the page (static: no data in it, so no token needed to load it)
    GET /kbs/v1/admin/console/console.js    renders the live state
    GET /kbs/v1/admin/console/console.css
    GET /kbs/v1/admin/console/dataflow.svg  the data-flow picture (admin token), when the broker was given a
                                            deployment config (``ENCLAVIA_DEPLOYMENT``)

The script takes the admin token from the URL fragment (``#token=…``, which browsers never send to a server;
it is removed from the address bar at once) or from a password field, keeps it in ``sessionStorage`` and sends
it as a bearer token to ``GET /kbs/v1/admin/ops/summary`` (enclaves attested, measurements, policy revisions,
recent denials, alerts, ledger state). Everything is drawn with ``textContent``: no markup from data. The page
only reads; the content security policy allows scripts, styles, images and requests from this origin only.
"""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING, Final

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from enclavia.broker.surface import source_of
from enclavia.errors import EnclaviaError, NotFoundError
from enclavia.problem import PROBLEM_MEDIA_TYPE, problem_bytes

if TYPE_CHECKING:
    from enclavia.broker.service import BrokerService

CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS: Final = {
    "content-security-policy": CSP,
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


def _asset(name: str) -> str:
    return resources.files("enclavia.broker.console_assets").joinpath(name).read_text(encoding="utf-8")


def install_console(app: FastAPI, service: BrokerService, *, svg: str | None = None) -> None:
    """Add the console routes (GET only) to the broker's app."""
    page, script, style = _asset("index.html"), _asset("console.js"), _asset("console.css")

    @app.get("/kbs/v1/admin/console")
    async def console_page() -> Response:
        return Response(page, media_type="text/html; charset=utf-8", headers=HEADERS)

    @app.get("/kbs/v1/admin/console/console.js")
    async def console_script() -> Response:
        return Response(script, media_type="text/javascript; charset=utf-8", headers=HEADERS)

    @app.get("/kbs/v1/admin/console/console.css")
    async def console_style() -> Response:
        return Response(style, media_type="text/css; charset=utf-8", headers=HEADERS)

    @app.get("/kbs/v1/admin/console/dataflow.svg")
    async def console_dataflow(request: Request) -> Response:
        try:
            await run_in_threadpool(
                service.check_admin, request.headers.get("authorization"), source_of(request)
            )
            if svg is None:
                raise NotFoundError("no deployment config")
        except EnclaviaError as err:
            return Response(problem_bytes(err), status_code=err.status, media_type=PROBLEM_MEDIA_TYPE)
        return Response(svg, media_type="image/svg+xml", headers=HEADERS)
