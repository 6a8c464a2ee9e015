"""TDX reference values: MRTD is required; RTMRs, config/owner registers, attributes and the accepted TCB
statuses are optional pins. Under ``profile: production`` MRTD (the TD firmware) is never enough on its
own: the entry must also pin RTMR0-RTMR2 or MRCONFIGID, or say ``unsafe_weak_pins: true``
(enclavia.policy.strength).

::

    reference_values:
      tdx:
        - name: enclavia-0.1.0-tdx
          mrtd: <hex, 48 bytes>                      # required
          rtmr0: <hex, 48>                           # optional, likewise rtmr1..rtmr3
          mrconfigid: <hex, 48>                      # optional, likewise mrowner, mrownerconfig, mrseam
          td_attributes: <hex, 8>                    # optional exact match (debug: see requirements)
          xfam: <hex, 8>                             # optional exact match
          accepted_tcb_status: [UpToDate]            # default [UpToDate]; Revoked can never be named
          rejected_advisory_ids: [INTEL-SA-00837]    # optional: refuse when any of these applies
          bind_manifest: true                        # MRCONFIGID must be SHA-384 of the presented manifest
                                                     # (attestation.config_binding); production requires
                                                     # it or an mrconfigid pin

An entry whose registers all match but whose TCB requirement fails raises ``TcbError`` (a TCB refusal, not an
allow-list miss), so put the stricter of two entries for one MRTD first.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

from enclavia.attestation.appraisal import parse_hex, register_reference
from enclavia.attestation.claims import Claims, Tee
from enclavia.attestation.platforms.tdx.verify import (
    ACCEPTABLE_TCB_STATUSES,
    DEFAULT_ACCEPTED_TCB_STATUSES,
    TcbStatus,
)
from enclavia.errors import PolicyLoadError, TcbError

# policy key -> (claims register name or details key, length)
_REGISTERS: dict[str, tuple[str, int]] = {
    "rtmr0": ("RTMR0", 48),
    "rtmr1": ("RTMR1", 48),
    "rtmr2": ("RTMR2", 48),
    "rtmr3": ("RTMR3", 48),
    "mrconfigid": ("MRCONFIGID", 48),
    "mrowner": ("MROWNER", 48),
    "mrownerconfig": ("MROWNERCONFIG", 48),
    "mrseam": ("MRSEAM", 48),
}
_DETAILS: dict[str, tuple[str, int]] = {"td_attributes": ("td_attributes", 8), "xfam": ("xfam", 8)}
_KEYS = {"mrtd", "accepted_tcb_status", "rejected_advisory_ids", "bind_manifest", *_REGISTERS, *_DETAILS}


def _statuses(value: object) -> frozenset[TcbStatus]:
    if not isinstance(value, list) or not value:
        raise PolicyLoadError("accepted_tcb_status must be a non-empty list")
    out: set[TcbStatus] = set()
    for item in value:
        try:
            status = TcbStatus(item)
        except ValueError:
            raise PolicyLoadError("unknown TDX TCB status in accepted_tcb_status") from None
        if status not in ACCEPTABLE_TCB_STATUSES:
            raise PolicyLoadError("TCB status Revoked can never be accepted")
        out.add(status)
    return frozenset(out)


def _advisories(value: object) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise PolicyLoadError("rejected_advisory_ids must be a list of strings")
    return frozenset(value)


def _bind(value: object) -> bool:
    if not isinstance(value, bool):
        raise PolicyLoadError("bind_manifest must be a boolean")
    return value


@register_reference
@dataclass(frozen=True)
class TdxReference:
    tee: ClassVar[Tee] = Tee.TDX
    name: str
    mrtd: bytes
    registers: Mapping[str, bytes] = field(default_factory=dict)  # claims.measurements name -> value
    attributes: Mapping[str, bytes] = field(default_factory=dict)  # claims.details name -> value
    accepted_tcb_status: frozenset[TcbStatus] = DEFAULT_ACCEPTED_TCB_STATUSES
    rejected_advisory_ids: frozenset[str] = frozenset()
    bind_manifest: bool = False

    @classmethod
    def from_mapping(cls, name: str, data: Mapping[str, Any]) -> Self:
        if set(data) - _KEYS:
            raise PolicyLoadError("unknown key in tdx reference")
        if "mrtd" not in data:
            raise PolicyLoadError("tdx reference must pin mrtd")
        registers = {
            reg: parse_hex(data[k], n, f"tdx {k}") for k, (reg, n) in _REGISTERS.items() if k in data
        }
        attributes = {key: parse_hex(data[k], n, f"tdx {k}") for k, (key, n) in _DETAILS.items() if k in data}
        return cls(
            name=name,
            mrtd=parse_hex(data["mrtd"], 48, "tdx mrtd"),
            registers=registers,
            attributes=attributes,
            accepted_tcb_status=_statuses(data["accepted_tcb_status"])
            if "accepted_tcb_status" in data
            else DEFAULT_ACCEPTED_TCB_STATUSES,
            rejected_advisory_ids=_advisories(data.get("rejected_advisory_ids", [])),
            bind_manifest=_bind(data.get("bind_manifest", False)),
        )

    def matches(self, claims: Claims) -> bool:
        if claims.tee is not Tee.TDX:
            return False
        ok = hmac.compare_digest(self.mrtd, claims.measurement)
        for reg, want in self.registers.items():
            ok &= hmac.compare_digest(want, claims.measurements.get(reg, b""))
        for key, want in self.attributes.items():
            got = claims.details.get(key)
            ok &= isinstance(got, bytes) and hmac.compare_digest(want, got)
        if not ok:
            return False
        # Registers match: from here on a refusal is about the TCB, and says so.
        status = claims.tcb.get("status")
        if not isinstance(status, str) or status not in {str(s) for s in self.accepted_tcb_status}:
            raise TcbError("TDX TCB status not accepted by the policy")
        advisories = claims.tcb.get("advisory_ids", [])
        if not isinstance(advisories, (list, tuple)) or self.rejected_advisory_ids & {
            str(a) for a in advisories
        }:
            raise TcbError("TDX platform affected by an advisory the policy refuses")
        return True
