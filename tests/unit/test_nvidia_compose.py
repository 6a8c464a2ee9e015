"""Composition of a CVM result with GPU results: the GPU nonce must be derived from the CPU report_data."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from enclavia.attestation.claims import AttestationResult, Claims, Status, Tee
from enclavia.attestation.platforms.nvidia.compose import GPU_NONCE_DOMAIN, compose, derive_gpu_nonce
from enclavia.attestation.platforms.nvidia.verify import verify
from enclavia.errors import AttestationError, EvidenceFormatError, NonceMismatchError, ReportDataMismatchError
from enclavia.policy.document import appraise, parse_policy
from tests.nvidia_synth import make_gpu

NOW = datetime.now(UTC)
REPORT_DATA = hashlib.sha512(b"session").digest()
MRTD = "ab" * 48


def _policy(m1: str) -> Any:
    return parse_policy(
        f"""
policy_id: cvm-gpu
revision: 2
requirements: {{accept_revocation_unknown: true}}
reference_values:
  tdx: [{{name: td, unsafe_weak_pins: true, mrtd: '{MRTD}'}}]
  nvidia: [{{name: h100, measurements: {{1: '{m1}'}}}}]
"""
    )


def _cpu(report_data: bytes = REPORT_DATA) -> Claims:
    return Claims(
        tee=Tee.TDX,
        measurement=bytes.fromhex(MRTD),
        measurements={"MRTD": bytes.fromhex(MRTD)},
        report_data=report_data,
        debug=False,
        tcb={"status": "UpToDate", "advisory_ids": []},
    )


def _gpu_result(nonce: bytes, chip: str = "GH100") -> AttestationResult:
    gpu = make_gpu(chip)
    claims = verify(
        gpu.report(nonce), cert_chain_pem=gpu.chain_pem, nonce=nonce, now=NOW, root_pem=gpu.root_pem
    )
    return appraise(claims, _policy("01" * 48), now=NOW)


def test_derive_gpu_nonce_rule() -> None:
    assert derive_gpu_nonce(REPORT_DATA) == hashlib.sha256(GPU_NONCE_DOMAIN + REPORT_DATA).digest()
    assert len(derive_gpu_nonce(REPORT_DATA)) == 32
    with pytest.raises(ValueError):
        derive_gpu_nonce(REPORT_DATA[:32])


def test_compose_bound_gpus() -> None:
    cpu = appraise(_cpu(), _policy("01" * 48), now=NOW, expected_report_data=REPORT_DATA)
    nonce = derive_gpu_nonce(REPORT_DATA)
    gpus = [_gpu_result(nonce), _gpu_result(nonce, "GB100")]
    result = compose(cpu, gpus, expected_gpus=2)
    assert result.affirming and result.tee is Tee.TDX
    assert result.measurement == MRTD
    assert result.reference_name == "td+gpus[h100,h100]"
    summary = result.claims.details["gpus"]
    assert isinstance(summary, list) and [g["arch"] for g in summary] == ["HOPPER", "BLACKWELL"]
    assert result.claims.details["gpu_nonce"] == nonce
    assert result.to_json()["claims"]["details"]["gpu_nonce"] == nonce.hex()  # type: ignore[index]


def test_gpu_from_another_session_refused() -> None:
    cpu = appraise(_cpu(), _policy("01" * 48), now=NOW)
    stale = _gpu_result(derive_gpu_nonce(hashlib.sha512(b"other session").digest()))
    with pytest.raises(NonceMismatchError):
        compose(cpu, [stale])
    raw = _gpu_result(REPORT_DATA[:32])  # the CPU report_data itself, not the derived nonce
    with pytest.raises(NonceMismatchError):
        compose(cpu, [raw])


def test_same_gpu_twice_and_count() -> None:
    cpu = appraise(_cpu(), _policy("01" * 48), now=NOW)
    g = _gpu_result(derive_gpu_nonce(REPORT_DATA))
    with pytest.raises(EvidenceFormatError):
        compose(cpu, [g, g])
    with pytest.raises(AttestationError):
        compose(cpu, [g], expected_gpus=2)


def test_misuse() -> None:
    cpu = appraise(_cpu(), _policy("01" * 48), now=NOW)
    g = _gpu_result(derive_gpu_nonce(REPORT_DATA))
    with pytest.raises(ValueError):
        compose(cpu, [])
    with pytest.raises(ValueError):
        compose(g, [g])
    with pytest.raises(ValueError):
        compose(cpu, [cpu])
    with pytest.raises(ValueError):
        compose(replace(cpu, status=Status.CONTRAINDICATED), [g])
    with pytest.raises(ValueError):
        compose(cpu, [replace(g, policy_revision=3)])
    short = replace(cpu, claims=replace(cpu.claims, report_data=b"\x00" * 32))
    with pytest.raises(ReportDataMismatchError):
        compose(short, [g])
