"""Hypothesis fuzzing of the parsers that had no fuzz target before (see tests/fuzz/targets.py).

Parsers already fuzzed elsewhere are not fuzzed again here, only replayed from the corpus
(test_corpus_replay.py): bhttp (tests/unit/test_bhttp_fuzz.py), OHTTP key configs and messages
(test_ohttp_fuzz.py), the chunked-OHTTP response opener (test_chunked_ohttp.py), simulated evidence
(test_simulated_evidence.py), Nitro, SEV-SNP and its certificate table (test_nitro_snp_fuzz.py), TDX
(test_tdx_fuzz.py), NVIDIA (test_nvidia_fuzz.py), X.509 and CRLs (test_pki.py).

Three input shapes per target: random bytes, byte-level mutations of a corpus seed, and (for the JSON and
YAML documents) structural mutations that replace one value of a valid document with any JSON value,
including the NaN, Infinity, huge integers and deep nesting that Python's parser lets through.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.targets import TARGETS, run_target

CORPUS = Path(__file__).parent / "corpus"
FUZZ = settings(
    max_examples=int(os.environ.get("ENCLAVIA_FUZZ_EXAMPLES", "120")),
    deadline=2000,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

NEW_TARGETS = [
    "bhttp_stream",
    "chunked_ohttp_request",
    "channel_frame",
    "store_op",
    "bundle",
    "manifest",
    "policy_yaml",
    "broker_token",
    "tlog_sth",
    "tlog_proof",
    "signed_release",
    "receipt",
    "key_release",
]
JSON_TARGETS = ["bundle", "manifest", "tlog_sth", "tlog_proof", "signed_release", "key_release"]


def _seeds(name: str) -> list[bytes]:
    return [
        p.read_bytes() for p in sorted((CORPUS / name).iterdir()) if p.name.startswith(("valid-", "real-"))
    ]


@st.composite
def _mutated(draw: st.DrawFn, name: str) -> bytes:
    data = bytearray(draw(st.sampled_from(_seeds(name))))
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(["flip", "set", "cut", "insert", "delete"]))
        if op == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            data[i] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[i:]
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=16))
        else:
            del data[i : i + draw(st.integers(1, 16))]
    return bytes(data)


_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["", "00" * 32, "00" * 48, "AAAA", "not base64!", "é", "\x00"]),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def _json_mutated(draw: st.DrawFn, name: str) -> bytes:
    doc = json.loads(draw(st.sampled_from([s for s in _seeds(name) if s.startswith(b"{")])))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(doc)))
        if not path:
            continue
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]  # a missing field
        else:
            parent[path[-1]] = draw(_VALUES)
    if draw(st.booleans()) and isinstance(doc, dict):
        doc[draw(st.text(max_size=8))] = draw(_VALUES)  # an extra field
    return json.dumps(doc).encode()  # allow_nan: Python writes NaN/Infinity, as a hostile peer could


def _check(name: str, data: bytes) -> None:
    run_target(TARGETS[name], data)  # raises on anything the target does not document


@pytest.mark.parametrize("name", NEW_TARGETS)
@FUZZ
@given(data=st.binary(max_size=2048))
def test_random_bytes(name: str, data: bytes) -> None:
    _check(name, data)


@pytest.mark.parametrize("name", NEW_TARGETS)
@FUZZ
@given(data=st.data())
def test_mutated_seeds(name: str, data: st.DataObject) -> None:
    _check(name, data.draw(_mutated(name)))


@pytest.mark.parametrize("name", JSON_TARGETS)
@FUZZ
@given(data=st.data())
def test_structurally_mutated_documents(name: str, data: st.DataObject) -> None:
    _check(name, data.draw(_json_mutated(name)))


_YAML_SCALARS = st.one_of(
    st.integers(-5, 2**40),
    st.booleans(),
    st.none(),
    st.text(max_size=20),
    st.sampled_from(["'" + "ab" * 48 + "'", "[]", "{}", "*x", "&x 1", "!!binary AAAA", ".nan", "~"]),
)


@FUZZ
@given(
    policy_id=_YAML_SCALARS,
    revision=_YAML_SCALARS,
    profile=st.sampled_from(["dev", "production", "''", "prod", "1"]),
    requirements=st.dictionaries(
        st.sampled_from(["allow_debug", "max_evidence_age_s", "accept_revocation_unknown", "x"]),
        _YAML_SCALARS,
        max_size=3,
    ),
    reference=st.dictionaries(
        st.sampled_from(["measurement", "pcrs", "mrtd", "name", "not_after", "tcb", "x"]),
        _YAML_SCALARS,
        max_size=3,
    ),
    tee=st.sampled_from(["simulated", "nitro", "sev-snp", "tdx", "nvidia", "sgx"]),
    secret=st.dictionaries(st.sampled_from(["path", "allow", "condition", "x"]), _YAML_SCALARS, max_size=3),
)
def test_policy_documents(
    policy_id: object,
    revision: object,
    profile: str,
    requirements: dict[str, object],
    reference: dict[str, object],
    tee: str,
    secret: dict[str, object],
) -> None:
    def flow(d: dict[str, object]) -> str:
        return "{" + ", ".join(f"{k}: {v}" for k, v in d.items()) + "}"

    text = (
        f"policy_id: {policy_id}\nrevision: {revision}\nprofile: {profile}\n"
        f"requirements: {flow(requirements)}\n"
        f"reference_values:\n  {tee}:\n    - {flow(reference)}\n"
        f"secrets:\n  - {flow(secret)}\n"
    )
    _check("policy_yaml", text.encode())


@FUZZ
@given(
    header=st.dictionaries(st.sampled_from(["alg", "kid", "typ", "jwk", "crit", "x5u"]), _VALUES, max_size=4),
    claims=st.dictionaries(
        st.sampled_from(
            ["status", "tee", "exp", "iat", "aud", "jti", "policy_revision", "key_config_digest"]
        ),
        _VALUES,
        max_size=8,
    ),
    signature=st.binary(max_size=80),
)
def test_token_headers_and_claims(header: dict[str, Any], claims: dict[str, Any], signature: bytes) -> None:
    from enclavia.broker.tokens import b64url

    token = ".".join(b64url(json.dumps(x).encode()) for x in (header, claims)) + "." + b64url(signature)
    _check("broker_token", token.encode())
