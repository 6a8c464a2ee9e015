"""The baseline: the same model behind a plain FastAPI JSON endpoint (no enclave, no encryption)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Request
from starlette.responses import Response

from enclavia.inference.linear import LinearClassifier


def make_app(model_dir: Path) -> FastAPI:
    models = {m.name: m for m in (LinearClassifier(p.read_bytes()) for p in sorted(model_dir.glob("*.json")))}
    app = FastAPI()

    @app.post("/v1/predict/{model_id}")
    async def predict(model_id: str, request: Request) -> Response:
        body = json.loads(await request.body())
        pred = models[model_id].predict(body["features"])
        out = {
            "model": model_id,
            "class": pred.label,
            "probability": pred.probability,
            "probabilities": dict(pred.probabilities),
        }
        return Response(json.dumps(out).encode(), media_type="application/json")

    if "--embeddings" in sys.argv:
        from enclavia.inference.embeddings import EmbeddingModel

        embedder = EmbeddingModel()

        @app.post("/v1/embeddings")
        async def embeddings(request: Request) -> Response:
            body = json.loads(await request.body())
            texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
            vectors = embedder.embed(texts)
            out = {
                "object": "list",
                "model": embedder.name,
                "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
            }
            return Response(json.dumps(out).encode(), media_type="application/json")

    return app


if __name__ == "__main__":
    port = int(sys.argv[1])
    uvicorn.run(
        make_app(Path(sys.argv[2])), host="127.0.0.1", port=port, log_level="warning", access_log=False
    )
