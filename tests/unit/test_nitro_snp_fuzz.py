"""Fuzz the Nitro and SEV-SNP parsers and verifiers: whatever the bytes, only EnclaviaError subclasses come
out, and every call returns quickly (hypothesis deadline)."""

from __future__ import annotations

import contextlib
import uuid
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enclavia.attestation.platforms.nitro import abi as nitro_abi
from enclavia.attestation.platforms.nitro import verify as nitro
from enclavia.attestation.platforms.sevsnp import abi as snp_abi
from enclavia.attestation.platforms.sevsnp import verify as snp
from enclavia.crypto import pki
from enclavia.errors import EnclaviaError
from tests.conftest import VECTORS

FUZZ = settings(
    max_examples=300,
    deadline=500,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _read(rel: str) -> bytes:
    return (VECTORS / rel).read_bytes()  # a missing vector is a failure, not a skip


NITRO_DOC = _read("nitro/cape-js/spec_attestationDocument.cbor")
NITRO_AT = datetime(2022, 9, 15, 17, 44, 24, tzinfo=UTC)
SNP_REPORT = _read("snp/trustee/test-report.bin")
SNP_VCEK = _read("snp/trustee/test-vcek.der")
SNP_AT = datetime(2025, 6, 1, tzinfo=UTC)


@st.composite
def mutated(draw: st.DrawFn, base: bytes) -> bytes:
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "set", "cut", "insert", "delete"]))
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
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


def _only_enclavia_errors(fn: object, *args: object, **kw: object) -> None:
    with contextlib.suppress(EnclaviaError):
        fn(*args, **kw)  # type: ignore[operator]


# --- Nitro ---------------------------------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=4096))
def test_nitro_abi_random_bytes(data: bytes) -> None:
    _only_enclavia_errors(nitro_abi.parse_cose_sign1, data)


@FUZZ
@given(mutated(NITRO_DOC))
def test_nitro_abi_mutations(data: bytes) -> None:
    _only_enclavia_errors(nitro_abi.parse_cose_sign1, data)


@FUZZ
@given(mutated(NITRO_DOC))
def test_nitro_verify_mutations(data: bytes) -> None:
    _only_enclavia_errors(nitro.verify, data, now=NITRO_AT)


@st.composite
def cbor_items(draw: st.DrawFn) -> bytes:
    """Structured CBOR heads (all major types, all argument sizes, bogus lengths) in short sequences."""
    out = b""
    for _ in range(draw(st.integers(1, 12))):
        major = draw(st.integers(0, 7))
        info = draw(st.integers(0, 31))
        out += bytes([major << 5 | info])
        if 24 <= info <= 27:
            out += draw(st.binary(min_size=1 << (info - 24), max_size=1 << (info - 24)))
        out += draw(st.binary(max_size=8))
    return out


@FUZZ
@given(cbor_items())
def test_nitro_cbor_guard(data: bytes) -> None:
    _only_enclavia_errors(nitro_abi.loads_strict, data, allow_tag=18)
    _only_enclavia_errors(nitro_abi.parse_document, data)
    _only_enclavia_errors(nitro_abi.parse_protected_header, data)


# --- SEV-SNP -------------------------------------------------------------------------------------------


@FUZZ
@given(st.binary(min_size=snp_abi.REPORT_LEN, max_size=snp_abi.REPORT_LEN))
def test_snp_abi_random_reports(data: bytes) -> None:
    _only_enclavia_errors(snp_abi.parse_report, data)


@FUZZ
@given(st.binary(max_size=2 * snp_abi.REPORT_LEN))
def test_snp_abi_random_lengths(data: bytes) -> None:
    _only_enclavia_errors(snp_abi.parse_report, data)


@FUZZ
@given(mutated(SNP_REPORT))
def test_snp_verify_mutations(data: bytes) -> None:
    _only_enclavia_errors(snp.verify, data, now=SNP_AT, vcek_der=SNP_VCEK)


@FUZZ
@given(mutated(SNP_VCEK))
def test_snp_verify_mutated_vcek(vcek: bytes) -> None:
    _only_enclavia_errors(snp.verify, SNP_REPORT, now=SNP_AT, vcek_der=vcek)


# --- certificate table ---------------------------------------------------------------------------------

_GUIDS = [snp_abi.VCEK_GUID, snp_abi.VLEK_GUID, snp_abi.ASK_GUID, snp_abi.ARK_GUID, uuid.UUID(int=0)]


@st.composite
def cert_tables(draw: st.DrawFn) -> bytes:
    n = draw(st.integers(0, 6))
    head = b""
    for _ in range(n):
        guid = (
            draw(st.sampled_from(_GUIDS)).bytes
            if draw(st.booleans())
            else draw(st.binary(min_size=16, max_size=16))
        )
        offset = draw(st.one_of(st.integers(0, 400), st.integers(0, 2**32 - 1)))
        length = draw(st.one_of(st.integers(0, 400), st.integers(0, 2**32 - 1)))
        head += guid + offset.to_bytes(4, "little") + length.to_bytes(4, "little")
    if draw(st.booleans()):
        head += bytes(24)
    return head + draw(st.binary(max_size=512))


@FUZZ
@given(cert_tables())
def test_cert_table_structured(aux: bytes) -> None:
    _only_enclavia_errors(snp_abi.parse_cert_table, aux)


@FUZZ
@given(st.binary(max_size=1024))
def test_cert_table_random(aux: bytes) -> None:
    _only_enclavia_errors(snp_abi.parse_cert_table, aux)


@FUZZ
@given(cert_tables())
def test_snp_verify_with_fuzzed_table(aux: bytes) -> None:
    _only_enclavia_errors(snp.verify, SNP_REPORT, now=SNP_AT, aux=aux)


# --- X.509 ---------------------------------------------------------------------------------------------


@FUZZ
@given(mutated(SNP_VCEK))
def test_pki_parse_mutated_vcek(der: bytes) -> None:
    try:
        cert = pki.parse_certificate(der)
        _ = (cert.basic_constraints, cert.key_usage, cert.subject_common_name)
        _only_enclavia_errors(lambda: cert.public_key)
    except EnclaviaError:
        pass


@FUZZ
@given(st.binary(max_size=2048))
def test_pki_parse_random(der: bytes) -> None:
    _only_enclavia_errors(pki.parse_certificate, der)


def test_fuzz_corpus_present() -> None:
    assert Path(VECTORS).is_dir()
    assert NITRO_DOC and SNP_REPORT and SNP_VCEK
