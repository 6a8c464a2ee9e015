"""Platform measurements published beside the manifest digest.

Each function returns ``(values, inputs)``: ``values`` is shaped like the policy reference entry for
that TEE (so a rollout can pin it as is), ``inputs`` records what it was computed from (digests and
parameters), so anyone can recompute it.

* simulated: the measurement is the manifest digest itself (SHA-384 of the canonical manifest).
* SEV-SNP: the expected launch MEASUREMENT, computed by ``sev-snp-measure`` from OVMF, kernel, initrd,
  kernel command line, vCPU count and type, guest features and VMM type.
* Nitro: PCR0/1/2 (and PCR8 for a signed image) from the JSON that ``nitro-cli describe-eif`` (or
  ``build-enclave``) prints.
* TDX: MRTD and RTMR0..3 as computed by the TD build tooling, given as hex.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from enclavia.errors import ReleaseRecordInvalidError

MEASUREMENT_LEN = 48  # SHA-384 registers on every platform here
NITRO_PCRS = ("PCR0", "PCR1", "PCR2")
NITRO_OPTIONAL_PCRS = ("PCR8",)
TDX_REGISTERS = ("mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3")

Measured = tuple[dict[str, Any], dict[str, Any]]


def _hex48(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise ReleaseRecordInvalidError(f"{what} must be hex")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise ReleaseRecordInvalidError(f"{what} must be hex") from None
    if len(raw) != MEASUREMENT_LEN:
        raise ReleaseRecordInvalidError(f"{what} must be 48 bytes")
    return raw.hex()


def measure_simulated(manifest_digest: bytes) -> Measured:
    if len(manifest_digest) != MEASUREMENT_LEN:
        raise ValueError("manifest digest must be 48 bytes")
    return {"measurement": manifest_digest.hex()}, {"manifest_digest": manifest_digest.hex()}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def measure_sev_snp(
    *,
    ovmf: Path,
    vcpus: int,
    vcpu_type: str | None = None,
    vcpu_sig: int | None = None,
    kernel: Path | None = None,
    initrd: Path | None = None,
    append: str | None = None,
    guest_features: int = 0x1,
    vmm_type: str = "QEMU",
) -> Measured:
    """Expected SNP launch digest, computed by ``sev-snp-measure`` (virtee)."""
    from sevsnpmeasure import vcpu_types
    from sevsnpmeasure.guest import snp_calc_launch_digest
    from sevsnpmeasure.vmm_types import VMMType

    if vcpus < 1:
        raise ValueError("vcpus must be at least 1")
    if (vcpu_type is None) == (vcpu_sig is None):
        raise ValueError("give exactly one of vcpu_type and vcpu_sig")
    if vcpu_type is not None:
        try:
            sig = int(vcpu_types.CPU_SIGS[vcpu_type])
        except KeyError:
            raise ValueError("unknown vcpu type") from None
    else:
        sig = int(vcpu_sig or 0)
    try:
        vmm = VMMType[vmm_type]
    except KeyError:
        raise ValueError("vmm_type must be QEMU, ec2 or gce") from None
    if (initrd is not None or append) and kernel is None:
        raise ValueError("initrd and append need a kernel")
    try:
        digest = snp_calc_launch_digest(
            vcpus,
            sig,
            str(ovmf),
            str(kernel) if kernel else None,
            str(initrd) if initrd else None,
            append,
            guest_features,
            "",
            vmm,
        )
    except (RuntimeError, ValueError, AssertionError, OSError):
        raise ReleaseRecordInvalidError("sev-snp-measure could not compute the launch digest") from None
    inputs: dict[str, Any] = {
        "tool": "sev-snp-measure",
        "ovmf_sha256": _sha256(ovmf),
        "kernel_sha256": _sha256(kernel) if kernel else None,
        "initrd_sha256": _sha256(initrd) if initrd else None,
        "append": append,
        "vcpus": vcpus,
        "vcpu_sig": sig,
        "vcpu_type": vcpu_type,
        "guest_features": guest_features,
        "vmm_type": vmm.name,
    }
    return {"measurement": bytes(digest).hex()}, inputs


def measure_nitro(describe_eif_json: bytes) -> Measured:
    """PCRs from ``nitro-cli describe-eif`` output (``Measurements``: ``PCR0``, ``PCR1``, ``PCR2``)."""
    try:
        doc = json.loads(describe_eif_json)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ReleaseRecordInvalidError("describe-eif output is not JSON") from None
    meas = doc.get("Measurements") if isinstance(doc, Mapping) else None
    if not isinstance(meas, Mapping):
        raise ReleaseRecordInvalidError("describe-eif output has no Measurements")
    algorithm = str(meas.get("HashAlgorithm", ""))
    if not algorithm.lower().startswith("sha384"):
        raise ReleaseRecordInvalidError("describe-eif measurements are not SHA-384")
    pcrs: dict[str, str] = {}
    for name in NITRO_PCRS:
        if name not in meas:
            raise ReleaseRecordInvalidError("describe-eif output lacks PCR0/1/2")
        pcrs[name.removeprefix("PCR")] = _hex48(meas[name], name)
    for name in NITRO_OPTIONAL_PCRS:
        if name in meas:
            pcrs[name.removeprefix("PCR")] = _hex48(meas[name], name)
    if not any(bytes.fromhex(pcrs["0"])):
        raise ReleaseRecordInvalidError("PCR0 is all zeros (debug image)")
    inputs = {
        "tool": "nitro-cli describe-eif",
        "eif_version": doc.get("EifVersion"),
        "image_name": doc.get("ImageName"),
        "image_version": doc.get("ImageVersion"),
        "is_signed": doc.get("IsSigned"),
    }
    return {"pcrs": pcrs}, inputs


def measure_tdx(registers: Mapping[str, str]) -> Measured:
    """MRTD (required) and RTMR0..3 (optional) as computed by the TD image build, 48-byte hex each."""
    unknown = set(registers) - set(TDX_REGISTERS)
    if unknown:
        raise ValueError("unknown TDX register name")
    if "mrtd" not in registers:
        raise ValueError("mrtd is required")
    values = {k: _hex48(registers[k], k) for k in TDX_REGISTERS if registers.get(k) is not None}
    return values, {"tool": "given", "registers": sorted(values)}
