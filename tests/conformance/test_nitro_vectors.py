"""Real AWS Nitro attestation documents (capeprivacy/cape-js) verify at the times SOURCE.md pins, with the
values SOURCE.md states (read from SOURCE.md, not retyped)."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from enclavia.attestation.claims import Revocation, Tee
from enclavia.attestation.platforms.nitro import verify as nitro
from enclavia.attestation.roots.aws import AWS_NITRO_ROOT_G1_PEM, AWS_NITRO_ROOT_G1_SHA256
from enclavia.crypto.pki import ChainCache, certificate_from_pem, parse_certificate
from enclavia.errors import CertificateExpiredError, CertificateNotYetValidError
from tests.attestation_factory import iso, source_sections

FILES = ["attestation.bin", "spec_attestationDocument.cbor", "spec_keyAttestationDocument.cbor"]
_ISO = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z)")


@pytest.fixture(scope="module")
def nitro_dir(vectors: Path) -> Path:
    return vectors / "nitro" / "cape-js"


def pinned_time(source: Path, name: str) -> datetime:
    for line in source.read_text(encoding="utf-8").splitlines():
        if line.startswith(f"- {name}:"):
            m = _ISO.search(line)
            assert m, line
            return iso(m.group(1))
    raise AssertionError(f"no verification time for {name} in SOURCE.md")


@pytest.mark.parametrize("name", FILES)
def test_document_verifies_with_source_values(nitro_dir: Path, name: str) -> None:
    source = nitro_dir / "SOURCE.md"
    expect = source_sections(source)[name]
    data = (nitro_dir / name).read_bytes()
    assert len(data) == int(expect["doc_len"])
    assert hashlib.sha256(data).hexdigest() == expect["sha256_of_file"]

    claims = nitro.verify(data, now=pinned_time(source, name), cache=ChainCache())

    assert claims.tee is Tee.NITRO
    assert claims.details["module_id"] == expect["module_id"]
    assert claims.details["digest"] == expect["digest"]
    assert claims.details["timestamp_ms"] == int(expect["timestamp_ms"])
    assert claims.issued_at == iso(expect["timestamp"])
    assert len(claims.measurements) == int(expect["n_pcrs"])
    for i in (0, 1, 2, 3, 4, 8):
        assert claims.measurements[f"PCR{i}"].hex() == expect[f"pcr{i}"]
    assert claims.measurement.hex() == expect["pcr0"]
    assert claims.details["public_key"].hex() == expect["public_key"]
    assert claims.nonce is not None and claims.nonce.hex() == expect["nonce"]
    if expect["user_data"] == "None":
        assert claims.details["user_data"] is None
        assert claims.report_data == b""
    else:
        assert claims.report_data.hex() == expect["user_data"]
    assert claims.debug is (expect["pcr0"] == "00" * 48)
    assert claims.revocation is Revocation.UNKNOWN


@pytest.mark.parametrize("name", FILES)
def test_document_tagged_form_verifies(nitro_dir: Path, name: str) -> None:
    data = (nitro_dir / name).read_bytes()
    now = pinned_time(nitro_dir / "SOURCE.md", name)
    plain = nitro.verify(data, now=now)
    tagged = nitro.verify(b"\xd2" + data, now=now)  # COSE_Sign1 tag 18
    assert tagged == plain


@pytest.mark.parametrize("name", FILES)
def test_chain_window_from_source(nitro_dir: Path, name: str) -> None:
    expect = source_sections(nitro_dir / "SOURCE.md")[name]
    data = (nitro_dir / name).read_bytes()
    valid_from, valid_to = iso(expect["chain_valid_from"]), iso(expect["chain_valid_to"])
    nitro.verify(data, now=valid_from)
    nitro.verify(data, now=valid_to)
    with pytest.raises(CertificateNotYetValidError):
        nitro.verify(data, now=valid_from - timedelta(seconds=1))
    with pytest.raises(CertificateExpiredError):
        nitro.verify(data, now=valid_to + timedelta(seconds=1))


def test_cape_spec_function_checksum(nitro_dir: Path) -> None:
    """Cape.spec.ts's functionChecksum is the base64 func_checksum inside the signed user_data JSON."""
    import base64
    import json

    claims = nitro.verify(
        (nitro_dir / "spec_attestationDocument.cbor").read_bytes(),
        now=pinned_time(nitro_dir / "SOURCE.md", "spec_attestationDocument.cbor"),
    )
    user = json.loads(claims.report_data)
    assert base64.b64decode(user["func_checksum"]).hex() == (
        "66731e5ccf226680dd5c98a1d1ad52b7a4c986984042d0672d8f3153130b34a8"
    )


def test_pinned_root_is_the_vector_root_and_aws_fingerprint(nitro_dir: Path) -> None:
    text = (nitro_dir / "SOURCE.md").read_text(encoding="utf-8")
    m = re.search(r"SHA-256 fingerprint ([0-9a-f]{64})", text)
    assert m
    pinned = certificate_from_pem(AWS_NITRO_ROOT_G1_PEM)
    vector = certificate_from_pem((nitro_dir / "aws_nitro_root_g1.pem").read_bytes())
    assert pinned.der == vector.der
    assert pinned.sha256.hex() == m.group(1) == AWS_NITRO_ROOT_G1_SHA256
    assert pinned.subject_common_name == "aws.nitro-enclaves"


def test_cabundle_root_is_pinned_root(nitro_dir: Path) -> None:
    from enclavia.attestation.platforms.nitro.abi import parse_cose_sign1

    for name in FILES:
        doc = parse_cose_sign1((nitro_dir / name).read_bytes()).document
        assert parse_certificate(doc.cabundle[0]).sha256.hex() == AWS_NITRO_ROOT_G1_SHA256


def test_cache_hit_after_first_verification(nitro_dir: Path) -> None:
    data = (nitro_dir / "attestation.bin").read_bytes()
    now = pinned_time(nitro_dir / "SOURCE.md", "attestation.bin")
    cache = ChainCache()
    first = nitro.verify(data, now=now, cache=cache)
    second = nitro.verify(data, now=now, cache=cache)
    assert first == second
    assert cache.hits == 1 and cache.misses == 1
    # A cached chain does not outlive its certificates.
    with pytest.raises(CertificateExpiredError):
        nitro.verify(data, now=now + timedelta(hours=3), cache=cache)
