"""verify_evidence: one dispatcher over the five platforms, with real vectors where they exist."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from enclavia.attestation.claims import Tee
from enclavia.attestation.platforms.simulated.abi import SIGNATURE_CONTEXT, SimulatedEvidence, SimulatedReport
from enclavia.attestation.verifier import verify_evidence, verify_evidence_all
from enclavia.crypto.pki import ChainCache
from enclavia.crypto.signing import SigningKey
from enclavia.errors import (
    CertificateChainError,
    CollateralError,
    EvidenceFormatError,
    NonceMismatchError,
    UntrustedRootError,
)
from tests.tee_vectors import nvidia_dir, nvidia_ppcie_nonce, read_evidence

TDX_AT = datetime(2025, 6, 20, tzinfo=UTC)
GPU_AT = datetime(2025, 1, 1, tzinfo=UTC)
GPU_NONCE = bytes.fromhex("931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb")


def _simulated(key: SigningKey, nonce_rd: bytes = b"\x05" * 64) -> bytes:
    report = SimulatedReport(
        measurement=b"\x01" * 48,
        report_data=nonce_rd,
        timestamp_ms=1,
        debug=False,
        platform_key=key.public_bytes,
    )
    payload = report.encode()
    return SimulatedEvidence(payload, report, key.sign(SIGNATURE_CONTEXT + payload)).encode()


def test_tdx(vectors: Path) -> None:
    d = vectors / "tdx" / "dcap-qvl"
    quote = (d / "tdx_quote").read_bytes()
    collateral = (d / "tdx_quote_collateral.json").read_bytes()
    claims = verify_evidence(Tee.TDX, quote, now=TDX_AT, collateral=collateral)
    assert claims.tee is Tee.TDX and claims.tcb["status"] == "UpToDate"
    assert verify_evidence("tdx", quote, now=TDX_AT, collateral=collateral).to_json() == claims.to_json()  # type: ignore[arg-type]
    with pytest.raises(CollateralError):
        verify_evidence(Tee.TDX, quote, now=TDX_AT)
    with pytest.raises(ValueError):
        verify_evidence(Tee.TDX, quote, now=TDX_AT, collateral=collateral, nonce=b"\x00" * 32)
    with pytest.raises(ValueError):
        verify_evidence(Tee.TDX, quote, now=TDX_AT, collateral=collateral, certificates=[b"x"])


def test_nvidia(vectors: Path) -> None:
    d = nvidia_dir(vectors)
    report = read_evidence(d / "hopperAttestationReport.txt")
    chain = (d / "hopperCertChain.pem").read_bytes()
    claims = verify_evidence(Tee.NVIDIA, report, now=GPU_AT, certificates=[chain], nonce=GPU_NONCE)
    assert claims.tee is Tee.NVIDIA
    with pytest.raises(NonceMismatchError):
        verify_evidence(Tee.NVIDIA, report, now=GPU_AT, certificates=[chain], nonce=b"\x00" * 32)
    with pytest.raises(CertificateChainError):
        verify_evidence(Tee.NVIDIA, report, now=GPU_AT)
    with pytest.raises(ValueError):
        verify_evidence(Tee.NVIDIA, report, now=GPU_AT, certificates=[chain], collateral=b"{}")


def test_nvidia_evidence_list(vectors: Path) -> None:
    data = (nvidia_dir(vectors) / "ppcie_gpu_evidence_8xH100.json").read_bytes()
    nonce = bytes.fromhex(nvidia_ppcie_nonce(vectors))
    all_claims = verify_evidence_all(Tee.NVIDIA, data, now=GPU_AT, nonce=nonce, cache=ChainCache())
    assert len(all_claims) == 8
    with pytest.raises(EvidenceFormatError):
        verify_evidence(Tee.NVIDIA, data, now=GPU_AT, nonce=nonce)
    one = json.dumps(json.loads(data)[:1]).encode()
    assert verify_evidence(Tee.NVIDIA, one, now=GPU_AT, nonce=nonce).nonce == nonce


def test_simulated() -> None:
    key = SigningKey.generate()
    ev = _simulated(key)
    claims = verify_evidence(Tee.SIMULATED, ev, now=GPU_AT, trusted_simulated_keys=[key.public_bytes])
    assert claims.tee is Tee.SIMULATED
    with pytest.raises(UntrustedRootError):
        verify_evidence(Tee.SIMULATED, ev, now=GPU_AT)
    with pytest.raises(ValueError):
        verify_evidence(
            Tee.SIMULATED, ev, now=GPU_AT, certificates=[b"x"], trusted_simulated_keys=[key.public_bytes]
        )
    with pytest.raises(ValueError):
        verify_evidence(Tee.TDX, b"", now=GPU_AT, collateral=b"{}", trusted_simulated_keys=[key.public_bytes])


def test_nitro(vectors: Path) -> None:
    d = vectors / "nitro" / "cape-js"
    doc = (d / "attestation.bin").read_bytes()
    at = datetime(2022, 7, 14, 21, 46, 4, tzinfo=UTC)
    claims = verify_evidence(Tee.NITRO, doc, now=at)
    assert claims.tee is Tee.NITRO
    assert claims.nonce is not None
    assert verify_evidence(Tee.NITRO, doc, now=at, nonce=claims.nonce).nonce == claims.nonce
    with pytest.raises(NonceMismatchError):
        verify_evidence(Tee.NITRO, doc, now=at, nonce=b"other")
    with pytest.raises(ValueError):
        verify_evidence(Tee.NITRO, doc, now=at, certificates=[b"x"])


def test_sev_snp(vectors: Path) -> None:
    d = vectors / "snp" / "virtee-sev"
    report = (d / "report_milan.bin").read_bytes()
    vcek = (d / "vcek_milan.der").read_bytes()
    chain = (d / "cert_chain_milan.pem").read_bytes()
    at = datetime(2025, 6, 1, tzinfo=UTC)
    claims = verify_evidence(Tee.SEV_SNP, report, now=at, certificates=[vcek, chain])
    assert claims.tee is Tee.SEV_SNP
    assert verify_evidence(Tee.SEV_SNP, report, now=at, certificates=[vcek]).measurement == claims.measurement
    with pytest.raises(ValueError):
        verify_evidence(Tee.SEV_SNP, report, now=at, certificates=[vcek], nonce=b"\x00" * 32)
    with pytest.raises(CollateralError):
        verify_evidence(Tee.SEV_SNP, report, now=at)


def test_misuse() -> None:
    with pytest.raises(ValueError):
        verify_evidence("sgx", b"", now=GPU_AT)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        verify_evidence(Tee.TDX, b"", now=datetime(2025, 1, 1), collateral=b"{}")
    with pytest.raises(TypeError):
        verify_evidence(Tee.TDX, "quote", now=GPU_AT, collateral=b"{}")  # type: ignore[arg-type]
