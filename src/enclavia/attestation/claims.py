"""The one claims model shared by every platform, and the EAR-shaped attestation result."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType


class Tee(StrEnum):
    SIMULATED = "simulated"
    NITRO = "nitro"
    SEV_SNP = "sev-snp"
    TDX = "tdx"
    NVIDIA = "nvidia"


class Revocation(StrEnum):
    CHECKED = "checked"  # a CRL or OCSP answer was consulted and the chain is not revoked
    UNKNOWN = "unknown"  # no revocation source available offline; policy must decide
    NOT_APPLICABLE = "not_applicable"


class Status(StrEnum):
    AFFIRMING = "affirming"
    CONTRAINDICATED = "contraindicated"


def _frozen(m: Mapping[str, object] | None) -> Mapping[str, object]:
    return MappingProxyType(dict(m or {}))


@dataclass(frozen=True)
class Claims:
    """What verified evidence says, in one shape for every TEE.

    ``measurement`` is the platform's primary launch measurement (simulated: SHA-384 of the manifest;
    Nitro: PCR0; SEV-SNP: MEASUREMENT; TDX: MRTD; NVIDIA: digest over the measurement block).
    ``measurements`` holds every named register (``PCR0``..., ``RTMR0``..., ``MRTD``, NVIDIA indices).
    """

    tee: Tee
    measurement: bytes
    report_data: bytes
    debug: bool
    measurements: Mapping[str, bytes] = field(default_factory=dict)
    issued_at: datetime | None = None
    tcb: Mapping[str, object] = field(default_factory=dict)
    details: Mapping[str, object] = field(default_factory=dict)
    revocation: Revocation = Revocation.NOT_APPLICABLE
    nonce: bytes | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "measurements", MappingProxyType(dict(self.measurements)))
        object.__setattr__(self, "tcb", _frozen(self.tcb))
        object.__setattr__(self, "details", _frozen(self.details))

    def to_json(self) -> dict[str, object]:
        return {
            "tee": str(self.tee),
            "measurement": self.measurement.hex(),
            "measurements": {k: v.hex() for k, v in self.measurements.items()},
            "report_data": self.report_data.hex(),
            "debug": self.debug,
            "issued_at": self.issued_at.isoformat() if self.issued_at else None,
            "tcb": {k: _jsonable(v) for k, v in self.tcb.items()},
            "details": {k: _jsonable(v) for k, v in self.details.items()},
            "revocation": str(self.revocation),
            "nonce": self.nonce.hex() if self.nonce is not None else None,
        }


def _jsonable(v: object) -> object:
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return str(v)


@dataclass(frozen=True)
class AttestationResult:
    """EAR-like appraisal outcome (draft-ietf-rats-ear): status, tee, measurement, policy, reasons."""

    status: Status
    tee: Tee
    measurement: str
    policy_id: str
    policy_revision: int
    reasons: tuple[str, ...]
    claims: Claims
    reference_name: str | None = None

    @property
    def affirming(self) -> bool:
        return self.status is Status.AFFIRMING

    def to_json(self) -> dict[str, object]:
        return {
            "status": str(self.status),
            "tee": str(self.tee),
            "measurement": self.measurement,
            "policy_id": self.policy_id,
            "policy_revision": self.policy_revision,
            "reasons": list(self.reasons),
            "reference": self.reference_name,
            "claims": self.claims.to_json(),
        }
