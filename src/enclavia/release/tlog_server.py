"""HTTP API of the transparency log (``enclavia log serve``).

=======================================================  ===============================================
``GET  /tlog/v1/sth``                                    signed tree head
``GET  /tlog/v1/proof/inclusion?leaf_hash=&tree_size=``  ``{leaf_index, tree_size, inclusion_path}``
``GET  /tlog/v1/proof/consistency?first=&second=``       ``{consistency_path}``
``GET  /tlog/v1/entries?start=&end=``                    ``{entries: [{index, leaf_input}]}`` (inclusive)
``GET  /tlog/v1/lookup?manifest_digest=``                entries whose release names this digest
``POST /tlog/v1/entries``  (``Authorization: Bearer``)   append a signed release: ``{index, leaf_hash, sth}``
=======================================================  ===============================================

Hashes are base64 (``leaf_hash`` may also be given as hex). Errors are problem+json with stable codes.
"""

from __future__ import annotations

import base64
import binascii
import hmac

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from enclavia.errors import (
    AdminUnauthorizedError,
    ConsistencyProofError,
    EnclaviaError,
    InclusionProofError,
    LogAppendError,
)
from enclavia.problem import PROBLEM_MEDIA_TYPE, problem_bytes
from enclavia.release.tlog import MAX_LEAF_BYTES, TransparencyLog


def _problem(err: EnclaviaError) -> Response:
    return Response(problem_bytes(err), status_code=type(err).status, media_type=PROBLEM_MEDIA_TYPE)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _hash_param(value: str, err: type[EnclaviaError]) -> bytes:
    text = value.strip()
    try:
        raw = (
            bytes.fromhex(text)
            if len(text) == 64
            else base64.b64decode(text.replace(" ", "+"), validate=True)
        )
    except (ValueError, binascii.Error):
        raise err("hash must be hex or base64") from None
    if len(raw) != 32:
        raise err("hash must be 32 bytes")
    return raw


def _int_param(value: str | None, err: type[EnclaviaError]) -> int:
    if value is None or not value.isdigit() or len(value) > 19:
        raise err("parameter must be a non-negative integer")
    return int(value)


def create_log_app(log: TransparencyLog, admin_token: str | None) -> FastAPI:
    app = FastAPI(title="enclavia transparency log", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(EnclaviaError)
    async def _on_error(_: Request, exc: EnclaviaError) -> Response:
        return _problem(exc)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/tlog/v1/sth")
    def sth() -> JSONResponse:
        return JSONResponse(log.get_sth().to_json())

    @app.get("/tlog/v1/proof/inclusion")
    def inclusion(request: Request) -> JSONResponse:
        q = request.query_params
        h = _hash_param(q.get("leaf_hash", ""), InclusionProofError)
        size = _int_param(q.get("tree_size"), InclusionProofError)
        return JSONResponse(log.get_inclusion_proof(h, size).to_json())

    @app.get("/tlog/v1/proof/consistency")
    def consistency(request: Request) -> JSONResponse:
        q = request.query_params
        first = _int_param(q.get("first"), ConsistencyProofError)
        second = _int_param(q.get("second"), ConsistencyProofError)
        path = log.get_consistency_proof(first, second)
        return JSONResponse({"consistency_path": [_b64(p) for p in path]})

    @app.get("/tlog/v1/entries")
    def entries(request: Request) -> JSONResponse:
        q = request.query_params
        start = _int_param(q.get("start"), InclusionProofError)
        end = _int_param(q.get("end"), InclusionProofError)
        if end < start:
            raise InclusionProofError("end before start")
        return JSONResponse({"entries": [e.to_json() for e in log.get_entries(start, end)]})

    @app.get("/tlog/v1/lookup")
    def lookup(request: Request) -> JSONResponse:
        value = request.query_params.get("manifest_digest", "")
        try:
            digest = bytes.fromhex(value)
        except ValueError:
            digest = b""
        if len(digest) != 48:
            raise InclusionProofError("manifest_digest must be 48-byte hex")
        return JSONResponse({"entries": [e.to_json() for e in log.lookup(digest)]})

    @app.post("/tlog/v1/entries")
    async def append(request: Request) -> JSONResponse:
        supplied = request.headers.get("authorization", "")
        expected = f"Bearer {admin_token}" if admin_token else ""
        if not admin_token or not hmac.compare_digest(supplied.encode(), expected.encode()):
            raise AdminUnauthorizedError()
        body = await request.body()
        if len(body) > MAX_LEAF_BYTES:
            raise LogAppendError("entry too large")
        result = log.append(body)
        return JSONResponse(
            {
                "index": result.index,
                "leaf_hash": _b64(result.leaf_hash),
                "duplicate": result.duplicate,
                "sth": result.tree_head.to_json(),
            },
            status_code=200 if result.duplicate else 201,
        )

    return app
