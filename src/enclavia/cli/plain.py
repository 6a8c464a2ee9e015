"""The plain baseline for `enclavia fit`: the enclave's inner routes in one ordinary process, over plain HTTP.

    python -m enclavia.cli.plain --port P --model-dir D [--embeddings] [--chat-model FILE]

Same model code, same inner routes (enclavia.enclave.routes.InnerApp), same thread settings as the enclave;
no OHTTP encapsulation, no host relay, no enclave process boundary. The ratio of the two latencies is what
confidentiality costs. Development and measurement only: never serve sensitive data this way.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fastapi import FastAPI, Request
from starlette.responses import Response

from enclavia.enclave.memory import pin_thread_pools


def make_app(model_dir: Path, embeddings: bool, chat_model: Path | None) -> FastAPI:
    from enclavia.crypto.bhttp import Request as InnerRequest
    from enclavia.enclave.boot import load_models
    from enclavia.enclave.routes import InnerApp

    embedder = None
    if embeddings:
        from enclavia.inference.embeddings import EmbeddingModel

        embedder = EmbeddingModel()
    chat = None
    if chat_model is not None:
        from enclavia.inference.chat import ChatModel

        chat = ChatModel(chat_model)
    inner = InnerApp(models=load_models(model_dir), embedder=embedder, chat=chat)
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    @app.api_route("/v1/{rest:path}", methods=["GET", "POST"])
    async def route(rest: str, request: Request) -> Response:
        # Handled on the event loop, one request at a time, as the enclave server does.
        body = await request.body()
        headers = tuple((k, v) for k, v in request.headers.items() if k in {"content-type", "authorization"})
        out = inner.handle(InnerRequest(request.method, "http", "plain", "/v1/" + rest, headers, body))
        ctype = dict(out.headers).get("content-type", "application/json")
        return Response(out.content, status_code=out.status, media_type=ctype)

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="enclavia-plain")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--embeddings", action="store_true")
    parser.add_argument("--chat-model", default=None)
    args = parser.parse_args(argv)
    pin_thread_pools()  # as in the enclave: one BLAS/OpenMP thread
    import uvicorn

    app = make_app(Path(args.model_dir), args.embeddings, Path(args.chat_model) if args.chat_model else None)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
