"""Compose a confidential VM's attestation with the attestation of the GPUs assigned to it.

Binding rule (what ties a GPU report to one CVM session):

    gpu_nonce = SHA-256("enclavia-gpu-nonce-v1" || cpu_report_data)        (32 bytes, the SPDM nonce size)

The enclave computes ``report_data`` first (it binds the client nonce, key configuration, signing key and
manifest: DESIGN.md), obtains the CPU evidence (TDX quote or SEV-SNP report) for it, then asks every GPU
for an SPDM GET_MEASUREMENTS with ``gpu_nonce`` as the requester nonce. A verifier accepts a GPU report
only if its signed requester nonce equals ``gpu_nonce`` for the CPU report it is composed with. So a GPU
report cannot be replayed into another session (another client nonce changes report_data and so
gpu_nonce), and the GPU report was produced after the CPU-side binding was fixed. The rule does not by
itself prove that the GPU is attached to that VM (SPDM has no such field); that comes from the CVM's
driver establishing the encrypted CPU-GPU session with the same device whose identity certificate signed
the report, which is part of the measured guest (TDX RTMRs / SNP measurement) the CPU appraisal pins.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from enclavia.attestation.binding import REPORT_DATA_LEN
from enclavia.attestation.claims import AttestationResult, Claims, Status, Tee
from enclavia.errors import AttestationError, EvidenceFormatError, NonceMismatchError, ReportDataMismatchError

GPU_NONCE_DOMAIN = b"enclavia-gpu-nonce-v1"
CVM_TEES = frozenset({Tee.TDX, Tee.SEV_SNP, Tee.SIMULATED})


def derive_gpu_nonce(cpu_report_data: bytes) -> bytes:
    """The SPDM requester nonce for the GPUs of the CVM whose evidence carries ``cpu_report_data``."""
    if not isinstance(cpu_report_data, bytes) or len(cpu_report_data) != REPORT_DATA_LEN:
        raise ValueError("cpu_report_data must be 64 bytes")
    return hashlib.sha256(GPU_NONCE_DOMAIN + cpu_report_data).digest()


def compose(
    cpu: AttestationResult, gpus: Sequence[AttestationResult], *, expected_gpus: int | None = None
) -> AttestationResult:
    """One affirming result for a CVM and its GPUs, each already appraised under the same policy.

    Raises NonceMismatchError when a GPU report is not bound to this CPU report, EvidenceFormatError when one
    GPU is presented twice, AttestationError when the GPU count differs from ``expected_gpus``; ValueError for
    misuse (non-affirming inputs, wrong TEEs, mixed policies).
    """
    # 1. Inputs: an affirming CVM result and affirming NVIDIA results under one policy revision.
    if cpu.status is not Status.AFFIRMING or any(g.status is not Status.AFFIRMING for g in gpus):
        raise ValueError("compose takes affirming results only")
    if cpu.tee not in CVM_TEES:
        raise ValueError("the CPU side must be a confidential VM (TDX, SEV-SNP, or simulated under dev)")
    if not gpus or any(g.tee is not Tee.NVIDIA for g in gpus):
        raise ValueError("gpus must be one or more NVIDIA results")
    if any((g.policy_id, g.policy_revision) != (cpu.policy_id, cpu.policy_revision) for g in gpus):
        raise ValueError("CPU and GPU results must come from the same policy revision")
    # 2. The CPU report_data is the full 64 bytes the binding is derived from.
    if len(cpu.claims.report_data) != REPORT_DATA_LEN:
        raise ReportDataMismatchError("CPU report_data is not 64 bytes")
    # 3. Every GPU answered the nonce derived from this CPU report_data.
    want = derive_gpu_nonce(cpu.claims.report_data)
    for g in gpus:
        if g.claims.nonce is None or not hmac.compare_digest(g.claims.nonce, want):
            raise NonceMismatchError("GPU evidence is not bound to this CPU report")
    # 4. Distinct devices, and as many as the deployment declares.
    devices = [g.claims.details.get("device_id") for g in gpus]
    if None in devices or len(set(devices)) != len(devices):
        raise EvidenceFormatError("the same GPU appears twice, or a GPU has no device identity")
    if expected_gpus is not None and len(gpus) != expected_gpus:
        raise AttestationError("number of attested GPUs differs from the expected number")
    # 5. The combined result: the CPU's claims with a summary of every GPU.
    gpu_summary = [
        {
            "reference": g.reference_name,
            "measurement": g.measurement,
            "arch": g.claims.details.get("arch"),
            "device_id": g.claims.details.get("device_id"),
            "driver_version": g.claims.tcb.get("driver_version"),
            "vbios_version": g.claims.tcb.get("vbios_version"),
            "revocation": str(g.claims.revocation),
        }
        for g in gpus
    ]
    c = cpu.claims
    claims = Claims(
        tee=c.tee,
        measurement=c.measurement,
        measurements=c.measurements,
        report_data=c.report_data,
        debug=c.debug,
        issued_at=c.issued_at,
        tcb=c.tcb,
        details={**c.details, "gpus": gpu_summary, "gpu_nonce": want},
        revocation=c.revocation,
        nonce=c.nonce,
    )
    refs = ",".join(str(g.reference_name) for g in gpus)
    return AttestationResult(
        status=Status.AFFIRMING,
        tee=cpu.tee,
        measurement=cpu.measurement,
        policy_id=cpu.policy_id,
        policy_revision=cpu.policy_revision,
        reasons=(),
        claims=claims,
        reference_name=f"{cpu.reference_name}+gpus[{refs}]",
    )
