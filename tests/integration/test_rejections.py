"""Each failure has its own typed error; nothing is sent before attestation verifies."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime

import httpx
import pytest

from enclavia.attestation.bundle import parse_bundle
from enclavia.client.sdk import Client
from enclavia.client.verify import verify_bundle
from enclavia.crypto.bhttp import Request, encode_request
from enclavia.crypto.ohttp import GatewayKey, KeyConfig, encapsulate_request
from enclavia.errors import (
    DecryptionError,
    DevProfileRequiredError,
    MeasurementNotAllowedError,
    NonceMismatchError,
    ReplayedNonceError,
    ReportDataMismatchError,
    UnknownKeyIdError,
    UntrustedRootError,
    error_for_code,
)
from enclavia.policy.document import Policy, parse_policy
from tests.support import Served

pytestmark = pytest.mark.slow


def _bundle(served: Served, nonce: bytes) -> bytes:
    resp = httpx.get(f"{served.url}/v1/attestation?nonce={nonce.hex()}")
    assert resp.status_code == 200
    return resp.content


def _inner() -> bytes:
    return encode_request(Request("GET", "https", "enclave", "/v1/models"))


def _post(served: Served, message: bytes) -> httpx.Response:
    return httpx.post(
        f"{served.url}/v1/gateway", content=message, headers={"content-type": "message/ohttp-req"}
    )


def _code(resp: httpx.Response) -> str:
    assert resp.headers["content-type"].startswith("application/problem+json")
    return str(resp.json()["code"])


def test_flipped_bit_in_request_ciphertext(served: Served, dev_policy: Policy) -> None:
    with Client(served.url, dev_policy) as client:
        config = client.attest().key_config
    message, _ = encapsulate_request(config, _inner())
    flipped = message[:-1] + bytes([message[-1] ^ 0x01])
    resp = _post(served, flipped)
    assert resp.status_code == 400
    assert error_for_code(_code(resp)) is DecryptionError


def test_flipped_bit_in_response_ciphertext(served: Served, dev_policy: Policy) -> None:
    with Client(served.url, dev_policy) as client:
        config = client.attest().key_config
    message, ctx = encapsulate_request(config, _inner())
    resp = _post(served, message)
    assert resp.status_code == 200
    body = resp.content
    with pytest.raises(DecryptionError):
        ctx.decapsulate_response(body[:-5] + bytes([body[-5] ^ 0x80]) + body[-4:])
    # The unmodified response still opens: the failure above is the flip, not the context.
    assert ctx.decapsulate_response(body)


def test_unknown_key_id(served: Served, dev_policy: Policy) -> None:
    with Client(served.url, dev_policy) as client:
        real = client.attest().key_config
    other = GatewayKey.generate((real.key_id + 1) % 256).config
    message, _ = encapsulate_request(other, _inner())
    resp = _post(served, message)
    assert resp.status_code == 422
    assert error_for_code(_code(resp)) is UnknownKeyIdError


def test_replayed_nonce_is_refused_by_the_enclave(served: Served) -> None:
    nonce = secrets.token_bytes(32)
    _bundle(served, nonce)
    resp = httpx.get(f"{served.url}/v1/attestation?nonce={nonce.hex()}")
    assert resp.status_code == 403
    assert error_for_code(_code(resp)) is ReplayedNonceError


def test_replayed_bundle_is_refused_by_the_client(served: Served, dev_policy: Policy) -> None:
    old_nonce, new_nonce = secrets.token_bytes(32), secrets.token_bytes(32)
    old = _bundle(served, old_nonce)
    now = datetime.now(UTC)
    with pytest.raises(ReplayedNonceError):
        verify_bundle(old, expected_nonce=new_nonce, policy=dev_policy, now=now, used_nonces={old_nonce})
    with pytest.raises(NonceMismatchError):
        verify_bundle(old, expected_nonce=new_nonce, policy=dev_policy, now=now)


def test_measurement_not_named_by_the_policy(served: Served) -> None:
    text = "\n".join(
        "      measurement: '" + "cd" * 48 + "'" if line.strip().startswith("measurement:") else line
        for line in served.policy_text.splitlines()
    )
    with Client(served.url, parse_policy(text)) as client, pytest.raises(MeasurementNotAllowedError):
        client.attest()


def test_report_data_binding_another_key_config(served: Served, dev_policy: Policy) -> None:
    nonce = secrets.token_bytes(32)
    doc = json.loads(_bundle(served, nonce))
    attacker = GatewayKey.generate(7).config.encode()
    import base64

    doc["key_config"] = base64.b64encode(attacker).decode()
    with pytest.raises(ReportDataMismatchError):
        verify_bundle(
            json.dumps(doc).encode(), expected_nonce=nonce, policy=dev_policy, now=datetime.now(UTC)
        )


def test_simulated_bundle_under_a_production_policy(served: Served) -> None:
    production = parse_policy("policy_id: prod\nrevision: 4\nprofile: production\n")
    with Client(served.url, production) as client, pytest.raises(DevProfileRequiredError):
        client.attest()


def test_unpinned_platform_key(served: Served, dev_policy: Policy) -> None:
    text = served.policy_text.replace(served.platform_key.hex(), "22" * 32)
    with Client(served.url, parse_policy(text)) as client, pytest.raises(UntrustedRootError):
        client.attest()


def test_bundle_is_exactly_what_was_attested(served: Served) -> None:
    nonce = secrets.token_bytes(32)
    bundle = parse_bundle(_bundle(served, nonce))
    assert bundle.nonce == nonce
    assert KeyConfig.decode(bundle.key_config).public_key
