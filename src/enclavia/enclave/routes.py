"""Inner routes: the application the client talks to through OHTTP. Runs only inside the enclave."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from enclavia.crypto.bhttp import Request, Response
from enclavia.enclave.streaming import StreamedResponse
from enclavia.errors import (
    BadRequestError,
    EnclaviaError,
    InternalError,
    MemoryExhaustedError,
    NotFoundError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)
from enclavia.inference.embeddings import MODEL_ID, EmbeddingModel, parse_inputs
from enclavia.inference.linear import LinearClassifier
from enclavia.observability.anomaly import UsageMonitor, current_tenant
from enclavia.observability.metrics import EnclaveMetrics
from enclavia.observability.trace import set_span_attributes
from enclavia.problem import PROBLEM_MEDIA_TYPE, problem_bytes

JSON = "application/json"
MAX_INNER_BODY = 1 << 20


class MethodNotAllowedError(BadRequestError):
    code = "request.method_not_allowed"
    status = 405
    title = "Method not allowed"


@dataclass
class InnerApp:
    models: Mapping[str, LinearClassifier]
    embedder: EmbeddingModel | None = None
    data: Any = None  # enclavia.enclave.data.DataApi when a classification manifest is configured
    chat: Any = None  # enclavia.inference.chat.ChatModel when a GGUF chat model is configured
    metrics: EnclaveMetrics = field(default_factory=EnclaveMetrics)
    log: Callable[..., Any] | None = None
    usage: UsageMonitor | None = None  # per-tenant rate/volume anomalies (requests that name a tenant)

    def handle(self, req: Request) -> Response:
        start = time.perf_counter()
        route, model = _route_label(req.path)
        tenant_token = current_tenant.set(None)
        try:
            resp = self._dispatch(req)
            outcome, code = "ok", None
        except EnclaviaError as err:
            resp = _problem_response(err)
            outcome, code = "error", err.code
        except MemoryError:
            # An allocation failed under the enclave's memory limit (enclavia.enclave.memory): this request
            # fails with a stable code; the process and other requests carry on.
            resp = _problem_response(MemoryExhaustedError())
            outcome, code = "error", MemoryExhaustedError.code
        except Exception:  # noqa: BLE001 - last resort: a bug must not cross the socket untyped
            # Its text can hold request data: only the stable code is answered, logged and counted.
            resp = _problem_response(InternalError())
            outcome, code = "error", InternalError.code
        tenant = current_tenant.get()
        current_tenant.reset(tenant_token)
        if self.usage is not None and tenant is not None:
            self.usage.observe(tenant, len(req.content))
        set_span_attributes(enclavia__route=route, http__status_code=resp.status)
        elapsed = time.perf_counter() - start
        self.metrics.requests.labels(route, outcome).inc()
        self.metrics.latency.labels(route, outcome).observe(elapsed)
        if self.log is not None:
            self.log(
                "enclave.request",
                route=route,
                model=model,
                status=resp.status,
                outcome=outcome,
                error_code=code,
                bytes_in=len(req.content),
                bytes_out=len(resp.content),
                duration_ms=round(elapsed * 1000, 3),
            )
        return resp

    def handle_streaming(self, req: Request) -> Response | StreamedResponse:
        """Like ``handle``, but a chat completion comes back unstarted, to be streamed chunk by chunk."""
        if req.path.split("?", 1)[0] != "/v1/chat/completions" or req.method.upper() != "POST":
            return self.handle(req)
        from enclavia.enclave.chat import instrumented, open_chat

        try:
            streamed = open_chat(self.chat, _json_body(req))
        except EnclaviaError as err:
            return self._logged(req, _problem_response(err), err.code)
        except Exception:  # noqa: BLE001 - as in handle(): typed, code only
            return self._logged(req, _problem_response(InternalError()), InternalError.code)

        def done(sent: int, elapsed: float, code: str | None) -> None:
            outcome = "ok" if code is None else "error"
            self.metrics.requests.labels("chat", outcome).inc()
            if self.log is not None:
                self.log(
                    "enclave.request",
                    route="chat",
                    status=streamed.status,
                    outcome=outcome,
                    error_code=code,
                    bytes_in=len(req.content),
                    bytes_out=sent,
                    duration_ms=round(elapsed * 1000, 3),
                )

        return instrumented(streamed, done)

    def _logged(self, req: Request, resp: Response, code: str) -> Response:
        self.metrics.requests.labels("chat", "error").inc()
        if self.log is not None:
            self.log(
                "enclave.request",
                route="chat",
                status=resp.status,
                outcome="error",
                error_code=code,
                bytes_in=len(req.content),
                bytes_out=len(resp.content),
                duration_ms=0.0,
            )
        return resp

    def model_for(self, path: str) -> tuple[str | None, str | None]:
        """(model id, artifact SHA-256) that answers ``path``, for receipts; (None, None) if no model."""
        path = path.split("?", 1)[0]
        if path == "/v1/chat/completions" and self.chat is not None:
            return self.chat.name, self.chat.digest
        if path == "/v1/embeddings" and self.embedder is not None:
            return self.embedder.name, self.embedder.digest
        model = (
            self.models.get(path.removeprefix("/v1/predict/")) if path.startswith("/v1/predict/") else None
        )
        return (model.name, model.digest) if model is not None else (None, None)

    def _dispatch(self, req: Request) -> Response:
        path = req.path.split("?", 1)[0]
        if path == "/v1/chat/completions":
            _require_method(req, "POST")
            from enclavia.enclave.chat import open_chat

            return open_chat(self.chat, _json_body(req)).collect()
        if path == "/v1/models":
            _require_method(req, "GET")
            listed = [m.describe() for m in self.models.values()]
            if self.embedder is not None:
                listed.append(self.embedder.describe())
            if self.chat is not None:
                listed.append(self.chat.describe())
            return _json_response({"object": "list", "data": listed})
        if path == "/v1/split/chat/completions":
            _require_method(req, "POST")
            from enclavia.enclave.split import split_chat

            headers = {k.lower(): v for k, v in req.headers}
            return _json_response(split_chat(self.data, headers, _json_body(req), self.log))
        if path in {"/v1/documents", "/v1/rag/query"}:
            _require_method(req, "POST")
            if self.data is None:
                raise NotFoundError("no data protection configured in this enclave")
            headers = {k.lower(): v for k, v in req.headers}
            handler = self.data.documents if path == "/v1/documents" else self.data.rag_query
            return _json_response(handler(headers, _json_body(req)))
        if path == "/v1/embeddings":
            _require_method(req, "POST")
            return self._embeddings(req)
        if path.startswith("/v1/predict/"):
            _require_method(req, "POST")
            return self._predict(path.removeprefix("/v1/predict/"), req)
        raise NotFoundError()

    def _predict(self, model_id: str, req: Request) -> Response:
        model = self.models.get(model_id)
        if model is None:
            raise NotFoundError("unknown model")
        body = _json_body(req)
        if not isinstance(body, dict) or set(body) - {"features"} or "features" not in body:
            raise BadRequestError('body must be {"features": {name: number}}')
        pred = model.predict(body["features"])
        return _json_response(
            {
                "model": model_id,
                "model_sha256": model.digest,
                "class": pred.label,
                "probability": pred.probability,
                "probabilities": dict(pred.probabilities),
            }
        )

    def _embeddings(self, req: Request) -> Response:
        if self.embedder is None:
            raise NotFoundError("no embedding model in this enclave")
        body = _json_body(req)
        texts = parse_inputs(body)
        if body.get("model", MODEL_ID) != MODEL_ID:
            raise NotFoundError("unknown model")
        vectors = self.embedder.embed(texts)
        tokens = self.embedder.count_tokens(texts)
        return _json_response(
            {
                "object": "list",
                "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
                "model": MODEL_ID,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )


def _route_label(path: str) -> tuple[str, str | None]:
    """Fixed route vocabulary for logs and metric labels; the model id only if it is a known shape."""
    path = path.split("?", 1)[0]
    if path == "/v1/models":
        return "models", None
    if path.startswith("/v1/predict/"):
        return "predict", None
    if path == "/v1/embeddings":
        return "embeddings", None
    if path == "/v1/documents":
        return "documents", None
    if path == "/v1/rag/query":
        return "rag_query", None
    if path == "/v1/split/chat/completions":
        return "split_chat", None
    if path == "/v1/chat/completions":
        return "chat", None
    return "other", None


def _require_method(req: Request, method: str) -> None:
    if req.method.upper() != method:
        raise MethodNotAllowedError()


def _header(req: Request, name: str) -> str | None:
    for k, v in req.headers:
        if k.lower() == name:
            return v
    return None


def _json_body(req: Request) -> Any:
    ctype = (_header(req, "content-type") or "").split(";", 1)[0].strip().lower()
    if ctype != JSON:
        raise UnsupportedMediaTypeError()
    if len(req.content) > MAX_INNER_BODY:
        raise PayloadTooLargeError()
    try:
        return json.loads(req.content, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BadRequestError("body is not valid JSON") from None


def _reject_constant(_: str) -> Any:
    # NaN / Infinity literals are not JSON; refuse them at parse time.
    raise ValueError("non-finite constant")


def _json_response(obj: Any, status: int = 200) -> Response:
    body = json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()
    return Response(status=status, headers=(("content-type", JSON),), content=body)


def _problem_response(err: EnclaviaError) -> Response:
    return Response(
        status=err.status, headers=(("content-type", PROBLEM_MEDIA_TYPE),), content=problem_bytes(err)
    )
