"""Canary: plaintext never reaches host logs, enclave logs, metrics, error bodies or host memory.
Bad input gets problem+json and the service keeps serving."""

from __future__ import annotations

import json
import os
import secrets
import time

import httpx
import pytest
from sklearn.datasets import load_breast_cancer

from enclavia.client.sdk import Client
from enclavia.crypto.bhttp import Request, decode_response, encode_request
from enclavia.crypto.ohttp import encapsulate_request
from enclavia.errors import BadRequestError, EnclaviaError, NotFoundError
from enclavia.policy.document import Policy
from tests.support import Served, process_memory_contains

pytestmark = pytest.mark.slow


def _features() -> dict[str, float]:
    data = load_breast_cancer()
    return {str(n): float(v) for n, v in zip(data.feature_names, data.data[7], strict=True)}


def test_canary_never_leaves_the_enclave(served: Served, dev_policy: Policy) -> None:
    canary = "canary-" + secrets.token_hex(16)
    bodies: list[bytes] = []
    with Client(served.url, dev_policy) as client:
        client.predict("clinical-risk", _features())
        # In a feature name, in an extra field, in the model id of the path: each is rejected inside.
        bad = {**_features()}
        bad.pop(next(iter(bad)))
        bad[canary] = 1.0
        for call in (
            lambda: client.predict("clinical-risk", bad),
            lambda: client.request(
                "POST", "/v1/predict/clinical-risk", {"features": _features(), canary: canary}
            ),
            lambda: client.request("POST", f"/v1/predict/{canary}", {"features": _features()}),
        ):
            try:
                call()
            except EnclaviaError as err:
                assert canary not in str(err)
        # A valid request whose value is the canary's digits, and a raw encapsulated one we keep.
        config = client.enclave.key_config
        inner = encode_request(
            Request(
                "POST",
                "https",
                "enclave",
                "/v1/predict/clinical-risk",
                (("content-type", "application/json"),),
                json.dumps({"canary": canary}).encode(),
            )
        )
        message, ctx = encapsulate_request(config, inner)
        resp = httpx.post(
            served.url + "/v1/gateway", content=message, headers={"content-type": "message/ohttp-req"}
        )
        bodies.append(resp.content)
        inner_resp = decode_response(ctx.decapsulate_response(resp.content))
        assert inner_resp.status == 400
        assert canary.encode() not in inner_resp.content  # not even inside the encrypted error
    # Outer error bodies: a second canary that we do send in the clear to the host, to show error bodies
    # never echo input. (It is expected in host memory, so it is not the one scanned for below.)
    echo = "canary-" + secrets.token_hex(16)
    bodies.append(
        httpx.post(
            served.url + "/v1/gateway", content=echo.encode(), headers={"content-type": "message/ohttp-req"}
        ).content
    )
    bodies.append(httpx.post(served.url + "/v1/gateway", content=echo.encode()).content)
    metrics = httpx.get(served.url + "/metrics").text
    assert "enclavia_host_requests" in metrics and "enclavia_enclave_requests" in metrics
    time.sleep(0.3)
    logs = served.logs()
    assert "enclave.request" in logs and "host.request" in logs  # logs were written
    assert canary not in logs
    assert canary not in metrics
    for body in bodies:
        assert canary.encode() not in body and echo.encode() not in body
    # The host process's memory: the scanner finds a string we know is there, and not the canary.
    host_pid = served.proc.pid
    assert process_memory_contains(host_pid, b"enclavia_host_requests")
    assert not process_memory_contains(host_pid, canary.encode())
    # The enclave marked itself not dumpable (prctl) before loading keys; the log says so.
    assert '"dumpable": false' in logs
    assert served.enclave_pid() != host_pid


def _problem(resp: httpx.Response, status: int, code: str) -> None:
    assert resp.status_code == status
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert resp.json()["code"] == code


def test_bad_outer_input_gets_problem_json(served: Served, dev_policy: Policy) -> None:
    gw = served.url + "/v1/gateway"
    ohttp = {"content-type": "message/ohttp-req"}
    _problem(httpx.post(gw, content=b"\x00\x01\x02", headers=ohttp), 400, "crypto.malformed")
    noise = httpx.post(gw, content=b"\xfe" + os.urandom(300), headers=ohttp)
    assert noise.status_code in {400, 422} and noise.json()["code"] in {
        "crypto.malformed",
        "crypto.unknown_key_id",
    }
    _problem(httpx.post(gw, content=b"", headers=ohttp), 400, "crypto.malformed")
    _problem(httpx.post(gw, content=b"x" * (3 << 20), headers=ohttp), 413, "request.too_large")
    _problem(
        httpx.post(gw, content=b"{}", headers={"content-type": "application/json"}),
        415,
        "request.unsupported_media_type",
    )
    _problem(httpx.get(served.url + "/v1/attestation?nonce=xyz"), 400, "request.invalid")
    _problem(httpx.get(served.url + "/v1/attestation"), 400, "request.invalid")
    _problem(httpx.get(served.url + "/nope"), 404, "request.not_found")
    with Client(served.url, dev_policy) as client:
        config = client.attest().key_config
        message, _ = encapsulate_request(
            config, encode_request(Request("GET", "https", "enclave", "/v1/models"))
        )
        _problem(httpx.post(gw, content=message[: len(message) // 2], headers=ohttp), 400, "crypto.malformed")
        _problem(httpx.post(gw, content=message[:-1], headers=ohttp), 400, "crypto.decrypt_failed")
        assert client.predict("clinical-risk", _features())["class"]  # still serving


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (lambda f: {k: v for k, v in list(f.items())[:-1]}, BadRequestError),  # count
        (
            lambda f: {**{k: v for k, v in list(f.items())[:-1]}, "mean nonsense": 1.0},
            BadRequestError,
        ),  # name
        (lambda f: {**f, next(iter(f)): "12.0"}, BadRequestError),  # string
        (lambda f: {**f, next(iter(f)): True}, BadRequestError),  # bool
    ],
)
def test_bad_features_are_rejected_inside(
    served: Served, dev_policy: Policy, mutate: object, error: type
) -> None:
    with Client(served.url, dev_policy) as client:
        with pytest.raises(error):
            client.predict("clinical-risk", mutate(_features()))  # type: ignore[operator]
        assert client.predict("clinical-risk", _features())["class"]


def test_nan_and_wrong_inner_content_type(served: Served, dev_policy: Policy) -> None:
    with Client(served.url, dev_policy) as client:
        config = client.attest().key_config
        for headers, content, status in (
            ((("content-type", "application/json"),), b'{"features": {"mean radius": NaN}}', 400),
            ((("content-type", "application/json"),), b'{"features": {"mean radius": 1e400}}', 400),
            ((("content-type", "application/json"),), b'{"features": [1.0, 2.0]}', 400),
            ((("content-type", "text/plain"),), b"{}", 415),
            ((("content-type", "application/json"),), b"{not json", 400),
        ):
            req = Request("POST", "https", "enclave", "/v1/predict/clinical-risk", headers, content)
            message, ctx = encapsulate_request(config, encode_request(req))
            resp = httpx.post(
                served.url + "/v1/gateway", content=message, headers={"content-type": "message/ohttp-req"}
            )
            inner = decode_response(ctx.decapsulate_response(resp.content))
            assert inner.status == status
            assert dict(inner.headers)["content-type"] == "application/problem+json"
        with pytest.raises(NotFoundError):
            client.predict("no-such-model", _features())
