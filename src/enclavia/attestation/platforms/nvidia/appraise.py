"""NVIDIA reference values: pinned SPDM measurement indices (at least one), optional arch and versions.

::

    requirements: {accept_revocation_unknown: true}   # required for GPUs: no offline revocation source
    reference_values:
      nvidia:
        - name: h100-vbios-96.00.9F
          measurements: {1: <hex>, 2: <hex>, ...}     # required, index 1..254 -> exact value
          arch: HOPPER                                # optional: HOPPER or BLACKWELL
          driver_version: "550.90.07"                 # optional exact match
          vbios_version: "96.00.9F.00.01"             # optional exact match (case-insensitive)

Take the per-index values from NVIDIA's signed RIMs for the driver and VBIOS you deploy (the release tooling
checks the RIM signatures under the pinned NVIDIA RIM root) or from a known-good GPU.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from enclavia.attestation.appraisal import register_reference
from enclavia.attestation.claims import Claims, Tee
from enclavia.attestation.platforms.nvidia.verify import GpuArchitecture
from enclavia.errors import PolicyLoadError

MAX_MEASUREMENT_LEN = 4096
_KEYS = {"measurements", "arch", "driver_version", "vbios_version"}


def _index(key: object) -> int:
    if isinstance(key, bool):
        raise PolicyLoadError("nvidia measurement index must be an integer 1..254")
    if isinstance(key, str) and key.upper().startswith("M"):
        key = key[1:]
    if not isinstance(key, (int, str)):
        raise PolicyLoadError("nvidia measurement index must be an integer 1..254")
    try:
        index = int(key)
    except ValueError:
        raise PolicyLoadError("nvidia measurement index must be an integer 1..254") from None
    if not 1 <= index <= 254:
        raise PolicyLoadError("nvidia measurement index must be an integer 1..254")
    return index


def _value(value: object) -> bytes:
    if not isinstance(value, str):
        raise PolicyLoadError("nvidia measurement value must be a hex string")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise PolicyLoadError("nvidia measurement value is not hex") from None
    if not 1 <= len(raw) <= MAX_MEASUREMENT_LEN:
        raise PolicyLoadError("nvidia measurement value has an invalid length")
    return raw


@register_reference
@dataclass(frozen=True)
class NvidiaReference:
    tee: ClassVar[Tee] = Tee.NVIDIA
    name: str
    measurements: Mapping[int, bytes]
    arch: GpuArchitecture | None = None
    driver_version: str | None = None
    vbios_version: str | None = None

    @classmethod
    def from_mapping(cls, name: str, data: Mapping[str, Any]) -> Self:
        if set(data) - _KEYS:
            raise PolicyLoadError("unknown key in nvidia reference")
        pins = data.get("measurements")
        if not isinstance(pins, Mapping) or not pins:
            raise PolicyLoadError("nvidia reference must pin at least one measurement index")
        measurements: dict[int, bytes] = {}
        for k, v in pins.items():
            index = _index(k)
            if index in measurements:
                raise PolicyLoadError("nvidia measurement index repeated")
            measurements[index] = _value(v)
        arch = None
        if "arch" in data:
            try:
                arch = GpuArchitecture(str(data["arch"]).upper())
            except ValueError:
                raise PolicyLoadError("nvidia arch must be HOPPER or BLACKWELL") from None
        versions: dict[str, str | None] = {}
        for key in ("driver_version", "vbios_version"):
            v = data.get(key)
            if v is not None and (not isinstance(v, str) or not v):
                raise PolicyLoadError(f"nvidia {key} must be a string")
            versions[key] = v
        return cls(name=name, measurements=measurements, arch=arch, **versions)

    def matches(self, claims: Claims) -> bool:
        if claims.tee is not Tee.NVIDIA:
            return False
        ok = True
        for index, want in self.measurements.items():
            ok &= hmac.compare_digest(want, claims.measurements.get(f"M{index}", b""))
        if self.arch is not None:
            ok &= claims.details.get("arch") == str(self.arch)
        if self.driver_version is not None:
            ok &= claims.tcb.get("driver_version") == self.driver_version
        if self.vbios_version is not None:
            ok &= str(claims.tcb.get("vbios_version", "")).upper() == self.vbios_version.upper()
        return ok
