"""Issue 15, deliver 3: anything unexpected inside a route becomes one typed error at the enclave's top-level
handler; its text (which can hold request data) is neither answered nor logged."""

from __future__ import annotations

import json
from typing import Any

from enclavia.crypto.bhttp import Request
from enclavia.enclave.routes import InnerApp
from enclavia.inference.linear import LinearClassifier
from tests.support import ensure_model

CANARY = "CANARY-BUG-TEXT-4b1e"


def test_unexpected_exception_is_a_typed_500_logged_by_code_only() -> None:
    model = LinearClassifier((ensure_model() / "clinical-risk.json").read_bytes())

    class Buggy(LinearClassifier):
        def __init__(self) -> None:
            self.__dict__.update(model.__dict__)

        def predict(self, features: object) -> object:  # type: ignore[override]
            raise TypeError(f"unhashable type: {CANARY}")

    events: list[tuple[str, dict[str, Any]]] = []
    app = InnerApp(models={"clinical-risk": Buggy()}, log=lambda e, **kw: events.append((e, kw)))
    body = json.dumps({"features": dict.fromkeys(model.feature_names, 1.0)}).encode()
    req = Request(
        "POST", "https", "enclave", "/v1/predict/clinical-risk", (("content-type", "application/json"),), body
    )
    resp = app.handle(req)
    assert resp.status == 500
    doc = json.loads(resp.content)
    assert doc["code"] == "enclave.internal" and doc["status"] == 500
    assert CANARY not in resp.content.decode() and "Traceback" not in resp.content.decode()
    assert events == [(events[0][0], events[0][1])] and events[0][0] == "enclave.request"
    assert events[0][1]["error_code"] == "enclave.internal"
    assert CANARY not in repr(events) and "Traceback" not in repr(events)
    app.models = {"clinical-risk": model}  # type: ignore[misc]
    assert app.handle(req).status == 200  # the app keeps serving
