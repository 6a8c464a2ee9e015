"""SEV-SNP reference values. MEASUREMENT is required; everything else narrows the entry further. Under
``profile: production`` ``min_tcb`` and ``vmpl`` are required too, unless the entry says
``unsafe_weak_pins: true`` (enclavia.policy.strength).

::

    reference_values:
      sev-snp:
        - name: gateway-1.4.0-snp
          measurement: <hex, 48 bytes>          # required
          min_tcb: {bootloader: 4, tee: 0, snp: 24, microcode: 217, fmc: 0}   # optional floors
          vmpl: 0                               # optional: the report must come from this VMPL
          allow_smt: true                       # default true: SMT is on in most clouds
          allow_migration_agent: false          # default false
          host_data: <hex, 32 bytes>            # optional
          id_key_digest: <hex, 48 bytes>        # optional
          bind_manifest: true                   # host_data must be SHA-256 of the presented manifest
                                                # (attestation.config_binding); production requires it
                                                # or a host_data pin

An entry whose pins all match but whose TCB floor is not met raises TcbError (not "no match"): the operator
learns that the firmware, not the image, is the problem. ``fmc`` floors apply to Turin evidence only (the FMC
component exists only there).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, Self

from enclavia.attestation.appraisal import parse_hex, register_reference
from enclavia.attestation.claims import Claims, Tee
from enclavia.errors import PolicyLoadError, TcbError

TCB_COMPONENTS = ("bootloader", "tee", "snp", "microcode", "fmc")
_KEYS = {
    "measurement",
    "min_tcb",
    "vmpl",
    "allow_smt",
    "allow_migration_agent",
    "host_data",
    "id_key_digest",
    "bind_manifest",
}


def _bool(data: Mapping[str, Any], key: str, default: bool) -> bool:
    v = data.get(key, default)
    if not isinstance(v, bool):
        raise PolicyLoadError(f"{key} must be a boolean")
    return v


def _small_int(v: object, hi: int, what: str) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= hi:
        raise PolicyLoadError(f"{what} must be an integer 0..{hi}")
    return v


@register_reference
@dataclass(frozen=True)
class SevSnpReference:
    tee: ClassVar[Tee] = Tee.SEV_SNP
    name: str
    measurement: bytes
    min_tcb: Mapping[str, int] = field(default_factory=dict)
    vmpl: int | None = None
    allow_smt: bool = True
    allow_migration_agent: bool = False
    host_data: bytes | None = None
    id_key_digest: bytes | None = None
    bind_manifest: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "min_tcb", MappingProxyType(dict(self.min_tcb)))

    @classmethod
    def from_mapping(cls, name: str, data: Mapping[str, Any]) -> Self:
        if set(data) - _KEYS:
            raise PolicyLoadError("unknown key in sev-snp reference")
        if "measurement" not in data:
            raise PolicyLoadError("sev-snp reference pins nothing (measurement required)")
        measurement = parse_hex(data["measurement"], 48, "sev-snp measurement")
        if not any(measurement):
            raise PolicyLoadError("sev-snp reference pins nothing (measurement is all zeros)")
        raw_tcb = data.get("min_tcb") or {}
        if not isinstance(raw_tcb, Mapping) or set(raw_tcb) - set(TCB_COMPONENTS):
            raise PolicyLoadError("min_tcb must map bootloader/tee/snp/microcode/fmc to integers")
        min_tcb = {k: _small_int(v, 255, f"min_tcb.{k}") for k, v in raw_tcb.items()}
        vmpl = data.get("vmpl")
        return cls(
            name=name,
            measurement=measurement,
            min_tcb=min_tcb,
            vmpl=None if vmpl is None else _small_int(vmpl, 3, "vmpl"),
            allow_smt=_bool(data, "allow_smt", True),
            allow_migration_agent=_bool(data, "allow_migration_agent", False),
            host_data=None
            if data.get("host_data") is None
            else parse_hex(data["host_data"], 32, "host_data"),
            id_key_digest=(
                None
                if data.get("id_key_digest") is None
                else parse_hex(data["id_key_digest"], 48, "id_key_digest")
            ),
            bind_manifest=_bool(data, "bind_manifest", False),
        )

    def matches(self, claims: Claims) -> bool:
        if claims.tee is not Tee.SEV_SNP:
            return False
        details = claims.details
        policy = details.get("policy_bits")
        if not isinstance(policy, Mapping):
            return False
        ok = hmac.compare_digest(self.measurement, claims.measurement)
        if self.vmpl is not None:
            ok = details.get("vmpl") == self.vmpl and ok
        if not self.allow_smt:
            ok = policy.get("smt") is False and ok
        if not self.allow_migration_agent:
            ok = policy.get("migrate_ma") is False and ok
        if self.host_data is not None:
            ok = _eq(self.host_data, details.get("host_data")) and ok
        if self.id_key_digest is not None:
            ok = _eq(self.id_key_digest, details.get("id_key_digest")) and ok
        if ok:
            self._check_tcb(claims.tcb)
        return ok

    def _check_tcb(self, tcb: Mapping[str, object]) -> None:
        for comp, floor in self.min_tcb.items():
            have = tcb.get(comp)
            if have is None and comp == "fmc":
                continue  # no FMC component before Turin
            if not isinstance(have, int) or have < floor:
                raise TcbError("TCB below the policy floor")


def _eq(want: bytes, got: object) -> bool:
    return isinstance(got, bytes) and hmac.compare_digest(want, got)
