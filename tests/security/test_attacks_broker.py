"""Attacks on the key broker: token forgeries beyond those in tests/unit/broker/test_protocol.py, clock skew
on the broker's side, key configurations no secret may be sealed to, encoded path traversal, and
concurrent policy updates. Each denial must be the named error, and audited.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from enclavia.attestation.manifest import ImageManifest
from enclavia.broker import tokens
from enclavia.broker.audit import canonical, verify_ledger
from enclavia.broker.service import create_app
from enclavia.crypto.hpke import DEFAULT_SUITE
from enclavia.crypto.ohttp import KeyConfig
from enclavia.crypto.signing import SigningKey
from enclavia.enclave.core import Enclave
from enclavia.enclave.routes import InnerApp
from enclavia.errors import (
    EvidenceTooOldError,
    PolicyRevisionConflictError,
    TokenInvalidError,
)
from enclavia.tee.simulated import SimulatedAttester
from tests.broker_support import (
    ADMIN_TOKEN,
    ALLOW_MODELS,
    Harness,
    db_url,
    make_harness,
    pg_schemas,
    policy_text,
)
from tests.security.attack_support import ORDER_8_POINT, ZERO_POINT

__all__ = ["db_url", "pg_schemas"]

SECRET = b"\x42" * 32


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    harness = make_harness(f"sqlite:///{tmp_path / 'broker.db'}", tmp_path)
    harness.service.put_secret("models/m1", SECRET, rotate=False)
    yield harness
    harness.service.close()


@pytest.fixture
def harness(db_url: str, tmp_path: Path) -> Iterator[Harness]:
    harness = make_harness(db_url, tmp_path)
    yield harness
    harness.service.close()


def _forge(header: dict[str, Any], payload: dict[str, Any], sign: Callable[[bytes], bytes]) -> str:
    head = tokens.b64url(canonical(header))
    body = tokens.b64url(canonical(payload))
    return f"{head}.{body}.{tokens.b64url(sign(f'{head}.{body}'.encode()))}"


def _denied(h: Harness, action: str) -> list[str]:
    return [r.code for r in h.records() if r.action == action and r.outcome == "denied"]


def _release_refused(h: Harness, token: str, error: type[Exception] = TokenInvalidError) -> None:
    before = len(_denied(h, "release"))
    with pytest.raises(error):
        h.service.release("models/m1", "Bearer " + token)
    assert len(_denied(h, "release")) == before + 1  # every refusal is in the ledger


# --- tokens ---------------------------------------------------------------------------------------


def test_embedded_jwk_header_is_not_a_trust_anchor(h: Harness) -> None:
    """The attacker signs with its own key and ships that key in the header ("jwk"), with its own kid or
    with the broker's.

    Source: CVE-2018-0114 (node-jose trusted a public key embedded in the JWS header).
    """
    claims = tokens.unverified_claims(h.attest()["token"])
    attacker = SigningKey.generate()
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": tokens.b64url(attacker.public_bytes)}
    for kid in (tokens.key_id(attacker.public_bytes), tokens.key_id(h.service.public_key)):
        _release_refused(h, _forge({"alg": "EdDSA", "kid": kid, "jwk": jwk}, claims, attacker.sign))
        _release_refused(h, _forge({"alg": "EdDSA", "kid": kid}, claims, attacker.sign))


def test_null_and_truncated_signatures(h: Harness) -> None:
    """Empty signature, 64 zero bytes, and a signature of the wrong length.

    Source: CVE-2020-28042 (a JWT library accepted tokens with an empty signature); Ed25519 (RFC 8032
    section 5.1.7) signatures are exactly 64 bytes.
    """
    head, body, sig = h.attest()["token"].split(".")
    for forged in ("", tokens.b64url(bytes(64)), sig[:-4], sig + "AAAA"):
        _release_refused(h, f"{head}.{body}.{forged}")


def test_token_from_another_broker_with_the_same_audience(h: Harness, tmp_path: Path) -> None:
    """A second broker (another tenant's, or a test deployment) issues a perfectly valid token for the same
    audience and the same enclave; it must not open this broker's secrets.

    Source: RFC 8725 section 3.8 (validate issuer: a token's key must be the expected issuer's key).
    """
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    other = make_harness(f"sqlite:///{other_dir / 'b.db'}", other_dir)
    try:
        trusting = policy_text(h.platform, h.enclave.manifest_digest, revision=2, secrets_yaml=ALLOW_MODELS)
        other.service.put_policy(trusting, 1)
        token = other.attest(h.enclave)["token"]
        assert tokens.unverified_claims(token)["aud"] == h.service.config.audience
        _release_refused(h, token)
    finally:
        other.service.close()


@pytest.mark.parametrize("typ", ["at+jwt", "JWS", "jwt", "secevent+jwt"])
def test_explicit_typing(h: Harness, typ: str) -> None:
    """A token of another type signed by the same key (another kind of JWT the broker might one day issue).

    Source: RFC 8725 section 3.11 (use explicit typing) and 3.12 (mutually exclusive validation rules).
    """
    claims = tokens.unverified_claims(h.attest()["token"])
    key = h.service._ready().signing_key
    kid = tokens.key_id(key.public_bytes)
    _release_refused(h, _forge({"alg": "EdDSA", "kid": kid, "typ": typ}, claims, key.sign))


def test_non_ascii_bearer_token_is_a_typed_audited_denial(h: Harness) -> None:
    """A bearer token with bytes outside ASCII (HTTP headers arrive as latin-1).

    Source: RFC 6750 section 2.1 (b64token syntax); RFC 8725 section 3.7. Found by tests/fuzz: the
    signing-input encode raised UnicodeEncodeError past the broker's audit, and the HTTP layer answered an
    unaudited 500. Fixed in enclavia.broker.tokens (step 1 refuses non-ASCII).
    """
    head, body, sig = h.attest()["token"].split(".")
    _release_refused(h, f"{head}.\u00e9{body[1:]}.{sig}")
    with TestClient(create_app(h.service)) as c:
        r = c.get(
            "/kbs/v1/secrets/models/m1",
            headers={"authorization": f"Bearer {head}.\xe9{body[1:]}.{sig}".encode("latin-1")},
        )
    assert r.status_code == 401 and r.json()["code"] == "broker.token_invalid"
    assert _denied(h, "release")[-1] == "broker.token_invalid"


# --- clock skew on the broker's side --------------------------------------------------------------


def test_broker_clock_stepped_back_makes_fresh_tokens_from_the_future(h: Harness) -> None:
    """NTP steps the broker's clock back 30 s after it issued a token: its iat is now in the future,
    beyond the 5 s of skew tokens tolerate; 3 s back is tolerated.

    Source: RFC 7519 section 4.1.4 and 4.1.6 (exp and iat; implementers MAY allow a small leeway).
    """
    token = h.attest()["token"]
    h.clock.offset = -3
    assert h.open(h.service.release("models/m1", "Bearer " + token)) == SECRET
    h.clock.offset = -30
    _release_refused(h, token)


def test_enclave_clock_ahead_is_refused_at_attest(h: Harness) -> None:
    """The enclave platform's clock runs 10 minutes fast; its evidence is "from the future" to the broker.

    Source: RFC 9334 section 10.1 (explicit timekeeping with unsynchronised clocks).
    """
    m: ImageManifest = h.enclave.manifest
    attester = SimulatedAttester(
        platform_key=h.platform, measurement=m.digest(), clock=lambda: time.time() + 600
    )
    fast = Enclave(attester, m, InnerApp(models={}))
    with pytest.raises(EvidenceTooOldError):
        h.attest(fast)
    assert _denied(h, "attest") == ["attestation.evidence_too_old"]


# --- key configurations no secret may be sealed to ------------------------------------------------


@pytest.mark.parametrize("point", [ZERO_POINT, ORDER_8_POINT], ids=["zero", "order-8"])
def test_low_order_key_config_never_gets_a_sealed_secret(h: Harness, point: bytes) -> None:
    """An enclave (buggy, or built to leak) attests a key configuration whose X25519 public key has small
    order: anything sealed to it would be readable by everyone (the shared secret is predictable).

    Source: Wycheproof x25519_test.json (ZeroSharedSecret cases); RFC 9180 section 7.1.4 (DH results of
    all zeros must be refused); RFC 7748 section 6.1.
    """
    low = KeyConfig(5, DEFAULT_SUITE.kem_id, point, ((DEFAULT_SUITE.kdf_id, DEFAULT_SUITE.aead_id),))
    enclave = Enclave(
        SimulatedAttester(platform_key=h.platform, measurement=h.enclave.manifest_digest),
        h.enclave.manifest,
        InnerApp(models={}),
    )
    enclave.key_config = low.encode()
    token = h.attest(enclave)["token"]
    _release_refused(h, token)
    assert not [r for r in h.records() if r.action == "release" and r.outcome == "ok"]


# --- secret-path traversal, encoded -----------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/kbs/v1/secrets/models/%252e%252e/admin",  # double-encoded ..
        "/kbs/v1/secrets/models/%c0%ae%c0%ae/admin",  # overlong UTF-8 for .
        "/kbs/v1/secrets/models\\..\\admin",
        "/kbs/v1/secrets/models/%ef%bc%8e%ef%bc%8e/admin",  # fullwidth full stops
        "/kbs/v1/secrets/models/m1%2f%2e%2e%2f%2e%2e%2fkey_material",
    ],
)
def test_encoded_traversal_over_http(h: Harness, url: str) -> None:
    """Encoded traversal: double percent-encoding, overlong UTF-8, backslashes, Unicode look-alikes.

    Source: CWE-22, CWE-174 (double decoding), CWE-176 (Unicode encoding; the overlong-UTF-8 form of
    CVE-2000-0884); confidential-containers/trustee pull request 712 (KBS resource path checks). Plain
    %2e%2e and ..%2f are covered by tests/unit/broker/test_http.py.
    """
    token = h.attest()["token"]
    with TestClient(create_app(h.service)) as c:
        r = c.get(url, headers={"authorization": f"Bearer {token}"})
    assert (r.status_code, r.json()["code"]) == (400, "broker.secret_path_invalid")
    assert b"admin" not in r.content and b"key_material" not in r.content


def test_traversal_on_the_admin_write_side(h: Harness) -> None:
    """Creating a secret at a traversing path (an admin token stolen, or a confused operator script).

    Source: CWE-22; confidential-containers/trustee pull request 712 (set-resource must verify its path).
    """
    admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    body = json.dumps({"value": base64.b64encode(b"x").decode()})
    with TestClient(create_app(h.service)) as c:
        for url in ("/kbs/v1/admin/secrets/models/..%2fescape", "/kbs/v1/admin/secrets/%2e%2e/x"):
            r = c.post(url, headers=admin, content=body)
            assert (r.status_code, r.json()["code"]) == (400, "broker.secret_path_invalid"), url
    assert [s["path"] for s in h.service.list_secrets()["secrets"]] == ["models/m1"]


# --- policy updates racing each other ---------------------------------------------------------------


def test_concurrent_policy_updates_one_winner(harness: Harness) -> None:
    """Eight administrators (or a retried deploy job) push revision 2 at once, each expecting revision 1.

    Source: CWE-362 (race condition) / CWE-367 (time-of-check time-of-use); compare-and-set in
    BrokerService.put_policy. tests/unit/broker/test_race.py covers an update racing releases.
    """
    h = harness
    rules = "secrets:\n  - {path: models/*, allow: [good-build]}\n"
    texts = [
        policy_text(h.platform, h.enclave.manifest_digest, revision=2, secrets_yaml=rules if i % 2 else "")
        for i in range(8)
    ]
    barrier = threading.Barrier(len(texts))
    outcomes: list[str] = []
    lock = threading.Lock()

    def push(text: str) -> None:
        barrier.wait()
        try:
            h.service.put_policy(text, 1)
            result = "ok"
        except PolicyRevisionConflictError:
            result = "conflict"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=push, args=(t,)) for t in texts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes) == ["conflict"] * 7 + ["ok"]
    head = h.service.get_policy()
    assert head["revision"] == 2 and head["source"] in texts
    assert _denied(h, "policy.update") == ["policy.revision_conflict"] * 7
    with h.service.store.transaction() as conn:
        verify_ledger(conn, h.service.public_key)
