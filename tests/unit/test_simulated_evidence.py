from __future__ import annotations

import contextlib

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enclavia.attestation.platforms.simulated.abi import parse_evidence
from enclavia.attestation.platforms.simulated.verify import verify
from enclavia.crypto.signing import SigningKey
from enclavia.errors import EnclaviaError, EvidenceFormatError, SignatureInvalidError, UntrustedRootError
from enclavia.tee.simulated import SimulatedAttester

KEY = SigningKey.generate()
MEAS = bytes(range(48))
RD = bytes(range(64))


def _evidence(**kw: object) -> bytes:
    return (
        SimulatedAttester(platform_key=KEY, measurement=MEAS, clock=lambda: 1_800_000_000.0, **kw)
        .attest(RD)
        .evidence
    )  # type: ignore[arg-type]


def test_round_trip() -> None:
    claims = verify(_evidence(), trusted_platform_keys=[KEY.public_bytes])
    assert claims.measurement == MEAS and claims.report_data == RD and not claims.debug
    assert claims.issued_at is not None and claims.issued_at.timestamp() == 1_800_000_000.0
    assert verify(_evidence(debug=True), trusted_platform_keys=[KEY.public_bytes]).debug


def test_unpinned_key() -> None:
    with pytest.raises(UntrustedRootError):
        verify(_evidence(), trusted_platform_keys=[SigningKey.generate().public_bytes])


def test_bit_flips_in_body_and_signature() -> None:
    payload, sig = cbor2.loads(_evidence())
    for i in range(0, len(payload), 7):
        flipped = bytearray(payload)
        flipped[i] ^= 0x01
        with pytest.raises((SignatureInvalidError, EvidenceFormatError, UntrustedRootError)):
            verify(cbor2.dumps([bytes(flipped), sig]), trusted_platform_keys=[KEY.public_bytes])
    bad_sig = bytes([sig[0] ^ 0x80]) + sig[1:]
    with pytest.raises(SignatureInvalidError):
        verify(cbor2.dumps([payload, bad_sig]), trusted_platform_keys=[KEY.public_bytes])


def test_truncated_and_extended() -> None:
    ev = _evidence()
    for bad in (ev[:-1], ev + b"\x00", b"", cbor2.dumps([b"x", b"y" * 64, b"z"])):
        with pytest.raises(EvidenceFormatError):
            parse_evidence(bad)


def test_huge_and_nested_cbor() -> None:
    with pytest.raises(EvidenceFormatError):
        parse_evidence(b"\x81" * 5000)
    with pytest.raises(EvidenceFormatError):
        parse_evidence(b"\x5b\xff\xff\xff\xff\xff\xff\xff\xff")  # bstr claiming 2^64-1 bytes


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_parser_raises_only_tree_errors(data: bytes) -> None:
    with contextlib.suppress(EnclaviaError):
        parse_evidence(data)
