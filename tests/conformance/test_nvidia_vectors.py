"""Every NVIDIA GPU evidence set in tests/assets/vectors/nvidia, with the values its SOURCE.md states."""

from __future__ import annotations

import ast
import base64
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from enclavia.attestation.claims import Revocation, Tee
from enclavia.attestation.platforms.nvidia.abi import parse_report
from enclavia.attestation.platforms.nvidia.verify import verify, verify_evidence_list
from enclavia.attestation.roots.nvidia import (
    NVIDIA_DEVICE_IDENTITY_CA_PEM,
    NVIDIA_DEVICE_IDENTITY_CA_SHA256,
    NVIDIA_RIM_ROOT_CA_PEM,
    NVIDIA_RIM_ROOT_CA_SHA256,
)
from enclavia.crypto.pki import ChainCache, certificate_from_pem, load_pem_certificates
from tests.tee_vectors import nvidia_dir, nvidia_ppcie_nonce, nvidia_sample_expectations, read_evidence

# SOURCE.md: "All certs have notAfter 9999-12-31: any verification time after 2022-03-01 works".
AT = datetime(2022, 3, 1, tzinfo=UTC)
LATER = datetime(2026, 1, 1, tzinfo=UTC)


def test_pinned_roots_are_the_vector_files(vectors: Path) -> None:
    d = nvidia_dir(vectors)
    for pinned, fp, name in (
        (NVIDIA_DEVICE_IDENTITY_CA_PEM, NVIDIA_DEVICE_IDENTITY_CA_SHA256, "nvidia_device_identity_ca.pem"),
        (NVIDIA_RIM_ROOT_CA_PEM, NVIDIA_RIM_ROOT_CA_SHA256, "nvidia_rim_root.pem"),
    ):
        cert = certificate_from_pem(pinned)
        assert cert.der == certificate_from_pem((d / name).read_bytes()).der
        assert hashlib.sha256(cert.der).hexdigest() == fp
    root = certificate_from_pem(NVIDIA_DEVICE_IDENTITY_CA_PEM)
    assert root.subject_common_name == "NVIDIA Device Identity CA"
    assert root.not_before == datetime(2021, 11, 5, tzinfo=UTC)
    assert root.not_after.year == 9999


def test_hopper_sample_parses_as_source_md_says(vectors: Path) -> None:
    exp = nvidia_sample_expectations(vectors)
    raw = read_evidence(nvidia_dir(vectors) / "hopperAttestationReport.txt")
    assert len(raw) == int(exp["len"])
    rep = parse_report(raw)
    assert rep.request.nonce.hex() == exp["request_nonce"]
    assert len(rep.response.blocks) == int(exp["n_meas_blocks"])
    assert len(rep.response.record) == int(exp["record_len"])
    assert rep.response.nonce.hex() == exp["resp_nonce"]
    assert len(rep.response.opaque) == int(exp["opaque_len"])
    assert len(raw) - len(rep.signed_bytes) == 96
    assert [b.index for b in rep.response.blocks] == list(range(1, 65))


def test_hopper_sample_chain_as_source_md_says(vectors: Path) -> None:
    exp = nvidia_sample_expectations(vectors)
    chain = load_pem_certificates((nvidia_dir(vectors) / "hopperCertChain.pem").read_bytes())
    assert len(chain) == int(exp["chain_len"])
    stated = ast.literal_eval(exp["chain"])
    for cert, (subject, not_before, not_after) in zip(chain, stated, strict=True):
        cn = next(part for part in subject.split(",") if part.startswith("CN="))[3:]
        assert cert.subject_common_name == cn
        assert cert.not_before.date().isoformat() == not_before
        assert cert.not_after.date().isoformat() == not_after


@pytest.mark.parametrize("at", [AT, LATER, datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)])
def test_hopper_sample_verifies(vectors: Path, at: datetime) -> None:
    exp = nvidia_sample_expectations(vectors)
    d = nvidia_dir(vectors)
    claims = verify(
        read_evidence(d / "hopperAttestationReport.txt"),
        cert_chain_pem=(d / "hopperCertChain.pem").read_bytes(),
        nonce=bytes.fromhex(exp["request_nonce"]),
        now=at,
    )
    assert claims.tee is Tee.NVIDIA
    assert claims.nonce is not None and claims.nonce.hex() == exp["request_nonce"]
    assert len(claims.measurements) == int(exp["n_meas_blocks"])
    assert set(claims.measurements) == {f"M{i}" for i in range(1, 65)}
    assert claims.revocation is Revocation.UNKNOWN
    assert claims.details["arch"] == "HOPPER"
    assert claims.details["device_model"] == "GH100 A01 GSP BROM"
    assert claims.details["responder_nonce"] == bytes.fromhex(exp["resp_nonce"])
    assert claims.tcb == {"driver_version": "550.90.07", "vbios_version": "96.00.9F.00.01"}
    rep = parse_report(read_evidence(d / "hopperAttestationReport.txt"))
    assert claims.measurement == hashlib.sha384(rep.response.record).digest()
    json.dumps(claims.to_json())


def test_ppcie_8xh100_verifies(vectors: Path) -> None:
    d = nvidia_dir(vectors)
    nonce = bytes.fromhex(nvidia_ppcie_nonce(vectors))
    data = (d / "ppcie_gpu_evidence_8xH100.json").read_bytes()
    cache = ChainCache()
    claims = verify_evidence_list(data, nonce=nonce, now=LATER, cache=cache)
    doc = json.loads(data)
    assert len(claims) == len(doc) == 8
    for c, entry in zip(claims, doc, strict=True):
        assert c.nonce == nonce
        assert c.details["arch"] == entry["arch"] == "HOPPER"
        assert c.tcb["driver_version"] == entry["driver_version"]
        assert c.tcb["vbios_version"] == entry["vbios_version"]
        assert c.revocation is Revocation.UNKNOWN
    assert len({c.details["device_id"] for c in claims}) == 8
    # Each entry on its own through the single-report API, too.
    for entry in doc:
        verify(
            base64.b64decode(entry["evidence"]),
            cert_chain_pem=base64.b64decode(entry["certificate"]),
            nonce=nonce,
            now=AT,
            cache=cache,
        )
    assert cache.hits >= 8
