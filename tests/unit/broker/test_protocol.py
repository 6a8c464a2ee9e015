"""Challenge, attest, release on SQLite and PostgreSQL: the happy path and every denial, each audited."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest

from enclavia.broker import tokens
from enclavia.broker.audit import canonical
from enclavia.crypto.hpke import AEAD_AES_128_GCM, DEFAULT_SUITE
from enclavia.crypto.ohttp import GatewayKey, KeyConfig
from enclavia.crypto.signing import SigningKey
from enclavia.errors import (
    DebugEnclaveError,
    DecryptionError,
    DevProfileRequiredError,
    EnclaviaError,
    EvidenceFormatError,
    MeasurementNotAllowedError,
    PolicyConditionFailedError,
    ReleaseDeniedError,
    ReplayedNonceError,
    ReportDataMismatchError,
    SecretNotFoundError,
    SecretPathInvalidError,
    TokenExpiredError,
    TokenInvalidError,
    TokenStaleError,
    UnsupportedSuiteError,
    UntrustedRootError,
)
from enclavia.policy.document import parse_policy
from tests.broker_support import Harness, make_enclave, policy_text

SECRET = b"\x07" * 32


def _denials(h: Harness, action: str) -> list[str]:
    return [r.code for r in h.records() if r.action == action and r.outcome == "denied"]


def _attest_raw(h: Harness, bundle: dict[str, Any]) -> dict[str, Any]:
    return h.service.attest(json.dumps({"bundle": bundle}).encode())


def test_full_release_is_sealed_to_the_attested_key_and_audited(harness: Harness) -> None:
    h = harness
    assert h.service.put_secret("models/m1", SECRET, rotate=False) == {"path": "models/m1", "version": 1}
    att = h.attest()
    assert att["result"]["status"] == "affirming"
    assert att["result"]["reference"] == "good-build"
    claims = tokens.unverified_claims(att["token"])
    assert set(claims) == {
        "status",
        "tee",
        "measurement",
        "policy_id",
        "policy_revision",
        "key_config_digest",
        "claims",
        "iat",
        "exp",
        "jti",
        "aud",
    }
    assert claims["claims"]["reference"] == "good-build" and claims["claims"]["tee"] == "simulated"
    assert claims["exp"] - claims["iat"] == 60
    assert claims["key_config_digest"] == hashlib.sha256(h.enclave.key_config).hexdigest()
    out = h.service.release("models/m1", "Bearer " + att["token"])
    assert set(out) == {"path", "version", "policy_revision", "jti", "current_version", "enc", "ciphertext"}
    assert out["current_version"] == 1
    assert out["jti"] == claims["jti"] and out["policy_revision"] == 1
    assert h.open(out) == SECRET
    # The associated data binds path, version, revision and token id: change any and it does not open.
    for field, value in (
        ("path", "models/m2"),
        ("version", 2),
        ("policy_revision", 2),
        ("jti", "0" * 32),
        ("current_version", 2),
    ):
        with pytest.raises(DecryptionError):
            h.open({**out, field: value})
    # Another enclave (another key) cannot open it either.
    with pytest.raises(DecryptionError):
        h.open(out, make_enclave(h.platform))
    actions = [(r.action, r.outcome, r.code) for r in h.records()]
    assert ("attest", "ok", "ok") in actions
    assert actions[-1] == ("release", "ok", "ok")
    # Identifiers are stored only as HMACs: the path and token id never appear in the ledger.
    for r in h.records():
        assert "models/m1" not in r.ids and claims["jti"] not in r.ids
    ids = json.loads(h.records()[-1].ids)
    assert set(ids) == {"secret", "jti"} and all(len(v) == 64 for v in ids.values())
    h.service.flush_aggregates(force=True)  # challenges: one aggregate record per window, with the count
    assert [(r.action, r.count) for r in h.records()][-1] == ("challenge", 1)


def test_rotated_versions_release_latest_or_pinned(harness: Harness) -> None:
    h = harness
    h.service.put_secret("models/m1", b"v1", rotate=False)
    assert h.service.put_secret("models/m1", b"v2", rotate=True)["version"] == 2
    token = "Bearer " + h.attest()["token"]
    assert h.open(h.service.release("models/m1", token)) == b"v2"
    assert h.open(h.service.release("models/m1", token, "1")) == b"v1"
    h.service.destroy_secret("models/m1", "1")
    with pytest.raises(SecretNotFoundError):
        h.service.release("models/m1", token, "1")
    listed = h.service.list_secrets()
    assert listed == {
        "secrets": [
            {
                "path": "models/m1",
                "versions": [
                    {
                        "version": 1,
                        "created_at": listed["secrets"][0]["versions"][0]["created_at"],
                        "destroyed": True,
                    },
                    {
                        "version": 2,
                        "created_at": listed["secrets"][0]["versions"][1]["created_at"],
                        "destroyed": False,
                    },
                ],
            }
        ]
    }
    assert "v2" not in json.dumps(listed) and base64.b64encode(b"v2").decode() not in json.dumps(listed)


def test_replayed_nonce_is_denied_and_audited(harness: Harness) -> None:
    h = harness
    nonce = h.service.challenge()["nonce"]
    bundle = h.bundle(nonce)
    _attest_raw(h, bundle)
    with pytest.raises(ReplayedNonceError):
        _attest_raw(h, bundle)
    # A nonce the broker never issued is refused the same way.
    with pytest.raises(ReplayedNonceError):
        _attest_raw(h, h.bundle("ab" * 32))
    assert _denials(h, "attest") == ["attestation.replayed_nonce"] * 2


def test_challenge_expires(harness: Harness) -> None:
    h = harness
    nonce = h.service.challenge()["nonce"]
    h.clock.offset += 61
    with pytest.raises(ReplayedNonceError):
        _attest_raw(h, h.bundle(nonce))


def test_refused_evidence_still_consumes_the_nonce(harness: Harness) -> None:
    h = harness
    nonce = h.service.challenge()["nonce"]
    other = make_enclave(SigningKey.generate())  # platform key not pinned by the policy
    with pytest.raises(UntrustedRootError):
        _attest_raw(h, h.bundle(nonce, other))
    with pytest.raises(ReplayedNonceError):
        _attest_raw(h, h.bundle(nonce))


def test_expired_token_is_denied_and_audited(harness: Harness) -> None:
    h = harness
    h.service.put_secret("models/m1", SECRET, rotate=False)
    token = "Bearer " + h.attest()["token"]
    h.clock.offset += 61
    with pytest.raises(TokenExpiredError) as exc:
        h.service.release("models/m1", token)
    assert isinstance(exc.value, TokenInvalidError)
    assert _denials(h, "release") == ["broker.token_expired"]


def test_wrong_key_config_is_denied(harness: Harness) -> None:
    h = harness
    nonce = h.service.challenge()["nonce"]
    bundle = h.bundle(nonce)
    # A key config the evidence does not bind (the host swapped in its own key).
    swapped = GatewayKey.generate(1).config.encode()
    with pytest.raises(ReportDataMismatchError):
        _attest_raw(h, {**bundle, "key_config": base64.b64encode(swapped).decode()})
    # A key config that offers another suite (downgrade) is refused before anything else.
    nonce = h.service.challenge()["nonce"]
    bundle = h.bundle(nonce)
    kc = KeyConfig.decode(h.enclave.key_config)
    weak = KeyConfig(
        kc.key_id, kc.kem_id, kc.public_key, ((DEFAULT_SUITE.kdf_id, AEAD_AES_128_GCM),)
    ).encode()
    with pytest.raises(UnsupportedSuiteError):
        _attest_raw(h, {**bundle, "key_config": base64.b64encode(weak).decode()})
    assert _denials(h, "attest") == ["attestation.report_data_mismatch", "crypto.unsupported_suite"]


@pytest.mark.parametrize(
    "path",
    [
        "models/../admin",
        "../etc/passwd",
        "/models/m1",
        "models/m1/",
        "models//m1",
        "models/.hidden",
        "models/m1%2f..",
        "models/m\x00",
        "modèles/m1",
        "a/" * 9 + "b",
        "",
    ],
)
def test_path_traversal_and_bad_characters_are_denied(harness: Harness, path: str) -> None:
    h = harness
    token = "Bearer " + h.attest()["token"]
    with pytest.raises(SecretPathInvalidError):
        h.service.release(path, token)
    assert _denials(h, "release") == ["broker.secret_path_invalid"]


def test_measurement_not_allowed(harness: Harness) -> None:
    h = harness
    other = make_enclave(h.platform, tee_config="another-build")
    with pytest.raises(MeasurementNotAllowedError):
        h.attest(other)
    assert _denials(h, "attest") == ["policy.measurement_not_allowed"]


def test_debug_enclave_denied(harness: Harness) -> None:
    h = harness
    debug = make_enclave(h.platform, debug=True)
    with pytest.raises(DebugEnclaveError):
        h.attest(debug)
    assert _denials(h, "attest") == ["attestation.debug"]


def test_simulated_tee_refused_under_a_production_policy(harness: Harness) -> None:
    h = harness
    production = "policy_id: prod\nrevision: 2\nprofile: production\nreference_values: {}\n"
    h.service.put_policy(production, 1)
    with pytest.raises(DevProfileRequiredError):
        h.attest()
    assert _denials(h, "attest") == ["policy.simulated_requires_dev"]


def test_malformed_attest_bodies(harness: Harness) -> None:
    h = harness
    for body in (
        b"not json",
        b"[]",
        b'{"bundle": 1}',
        b'{"bundle": {}, "x": 1}',
        b'{"bundle": {"version": 1}}',
    ):
        with pytest.raises(EvidenceFormatError):
            h.service.attest(body)
    assert _denials(h, "attest") == ["attestation.malformed_evidence"] * 5


def test_deny_by_default_and_cel_conditions(harness: Harness) -> None:
    h = harness
    rules = """secrets:
  - path: models/*
    allow: [good-build]
    condition: 'claims.tee == "nitro"'
  - path: tenants/a/key
    allow: [good-build]
    condition: '!claims.debug && claims.measurements["MANIFEST_SHA384"] == claims.measurement'
"""
    text = policy_text(h.platform, h.enclave.manifest_digest, revision=2, secrets_yaml=rules)
    h.service.put_policy(text, 1)
    for path in ("models/m1", "tenants/a/key", "tenants/b/key"):
        h.service.put_secret(path, SECRET, rotate=False)
    token = "Bearer " + h.attest()["token"]
    with pytest.raises(PolicyConditionFailedError):
        h.service.release("models/m1", token)
    assert h.open(h.service.release("tenants/a/key", token)) == SECRET
    with pytest.raises(ReleaseDeniedError):
        h.service.release("tenants/b/key", token)  # no rule: deny by default
    with pytest.raises(SecretNotFoundError):
        h.service.release("tenants/a/key", token, "7")
    assert _denials(h, "release") == [
        "policy.condition_failed",
        "broker.release_denied",
        "broker.secret_not_found",
    ]


def test_token_from_an_older_policy_revision_is_stale(harness: Harness) -> None:
    h = harness
    h.service.put_secret("models/m1", SECRET, rotate=False)
    token = "Bearer " + h.attest()["token"]
    text = policy_text(h.platform, h.enclave.manifest_digest, revision=2, secrets_yaml="")
    h.service.put_policy(text, 1)
    with pytest.raises(TokenStaleError):
        h.service.release("models/m1", token)


# -- forged tokens -------------------------------------------------------------------------------


def _forge(header: dict[str, Any], payload: dict[str, Any], sign: Any) -> str:
    h = tokens.b64url(canonical(header))
    p = tokens.b64url(canonical(payload))
    return f"{h}.{p}.{tokens.b64url(sign(f'{h}.{p}'.encode()))}"


def test_forged_tokens_are_refused_and_audited(harness: Harness) -> None:
    h = harness
    h.service.put_secret("models/m1", SECRET, rotate=False)
    good = h.attest()["token"]
    claims = tokens.unverified_claims(good)
    pub = h.service.public_key
    kid = tokens.key_id(pub)
    key = h.service._ready().signing_key  # the broker's own key: only header/claims tricks are tested

    cases = {
        "alg none": _forge({"alg": "none", "kid": kid, "typ": "JWT"}, claims, lambda _: b""),
        "HS256 keyed with the public key": _forge(
            {"alg": "HS256", "kid": kid, "typ": "JWT"},
            claims,
            lambda m: hmac.new(pub, m, hashlib.sha256).digest(),
        ),
        "EdDSA under another key": _forge(
            {"alg": "EdDSA", "kid": kid, "typ": "JWT"}, claims, SigningKey.generate().sign
        ),
        "wrong audience": _forge(
            {"alg": "EdDSA", "kid": kid, "typ": "JWT"}, {**claims, "aud": "other"}, key.sign
        ),
        "missing exp": _forge(
            {"alg": "EdDSA", "kid": kid, "typ": "JWT"},
            {k: v for k, v in claims.items() if k != "exp"},
            key.sign,
        ),
        "contraindicated": _forge(
            {"alg": "EdDSA", "kid": kid, "typ": "JWT"}, {**claims, "status": "contraindicated"}, key.sign
        ),
        "crit header": _forge({"alg": "EdDSA", "kid": kid, "crit": ["x"]}, claims, key.sign),
        "unknown jti": _forge(
            {"alg": "EdDSA", "kid": kid, "typ": "JWT"}, {**claims, "jti": "f" * 32}, key.sign
        ),
        "other key config": _forge(
            {"alg": "EdDSA", "kid": kid, "typ": "JWT"}, {**claims, "key_config_digest": "0" * 64}, key.sign
        ),
        "truncated": good[:-10],
        "garbage": "a.b.c",
        "two parts": "abc.def",
    }
    for name, token in cases.items():
        with pytest.raises(TokenInvalidError):
            h.service.release("models/m1", "Bearer " + token)
        assert _denials(h, "release")[-1] == "broker.token_invalid", name
    with pytest.raises(TokenInvalidError):
        h.service.release("models/m1", None)
    assert len(_denials(h, "release")) == len(cases) + 1
    # The genuine token still works.
    assert h.open(h.service.release("models/m1", "Bearer " + good)) == SECRET


def test_policy_compare_and_set(harness: Harness) -> None:
    from enclavia.errors import PolicyRevisionConflictError

    h = harness
    text2 = policy_text(h.platform, h.enclave.manifest_digest, revision=2)
    with pytest.raises(PolicyRevisionConflictError):
        h.service.put_policy(text2, 0)  # stale expectation
    with pytest.raises(PolicyRevisionConflictError):
        h.service.put_policy(policy_text(h.platform, h.enclave.manifest_digest, revision=3), None)  # skips 2
    assert h.service.put_policy(text2, 1)["revision"] == 2
    with pytest.raises(PolicyRevisionConflictError):
        h.service.put_policy(text2, 1)
    got = h.service.get_policy()
    assert got["revision"] == 2 and parse_policy(got["source"]).revision == 2
    assert _denials(h, "policy.update") == ["policy.revision_conflict"] * 3


def test_error_codes_are_distinct_for_each_denial() -> None:
    codes = {
        ReplayedNonceError.code,
        TokenExpiredError.code,
        TokenInvalidError.code,
        ReportDataMismatchError.code,
        UnsupportedSuiteError.code,
        SecretPathInvalidError.code,
        MeasurementNotAllowedError.code,
        DevProfileRequiredError.code,
    }
    assert len(codes) == 8
    assert all(issubclass(c, EnclaviaError) for c in (TokenExpiredError, TokenStaleError))
