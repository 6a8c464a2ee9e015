"""Fuzz the small boundary parsers: PEM splitting, NSM responses, CLI evidence decoding."""

from __future__ import annotations

import contextlib

import cbor2
from hypothesis import given, settings
from hypothesis import strategies as st

from enclavia.attestation.pem import certificates_to_der, der_to_pem, pem_certificates
from enclavia.cli.verify import evidence_bytes
from enclavia.errors import EnclaviaError
from enclavia.tee.nitro_nsm import decode_attestation_response

FUZZ = settings(max_examples=300, deadline=500)
BLOCK = b"-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n"


@FUZZ
@given(st.binary(max_size=2000))
def test_pem_random(data: bytes) -> None:
    with contextlib.suppress(EnclaviaError):
        pem_certificates(data)
    with contextlib.suppress(EnclaviaError):
        certificates_to_der([data])


@FUZZ
@given(st.binary(max_size=64), st.binary(max_size=64), st.integers(0, len(BLOCK)))
def test_pem_around_blocks(before: bytes, after: bytes, cut: int) -> None:
    with contextlib.suppress(EnclaviaError):
        pem_certificates(before + BLOCK[:cut] + BLOCK + after)


@FUZZ
@given(st.binary(min_size=1, max_size=3000))
def test_der_pem_roundtrip(der: bytes) -> None:
    assert pem_certificates(der_to_pem(der)) == (der,)


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=300),
        st.recursive(
            st.one_of(st.none(), st.booleans(), st.integers(), st.binary(max_size=20), st.text(max_size=20)),
            lambda inner: st.one_of(
                st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
            ),
            max_leaves=12,
        ).map(cbor2.dumps),
    )
)
def test_nsm_response(data: bytes) -> None:
    with contextlib.suppress(EnclaviaError):
        decode_attestation_response(data)


@FUZZ
@given(st.binary(max_size=500))
def test_cli_evidence_bytes(data: bytes) -> None:
    out = evidence_bytes(data)
    assert isinstance(out, bytes)
