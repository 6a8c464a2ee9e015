"""Nitro reference values: pinned PCRs. PCR0 (the enclave image) is required; under ``profile: production``
PCR0, PCR1 and PCR2 together, unless the entry says ``unsafe_weak_pins: true`` (enclavia.policy.strength).

::

    reference_values:
      nitro:
        - name: gateway-1.4.0
          pcrs:
            0: <hex, 48 bytes>     # enclave image file (required, not all zeros)
            1: <hex, 48 bytes>     # kernel and bootstrap (optional)
            2: <hex, 48 bytes>     # application (optional)
            8: <hex, 48 bytes>     # signing certificate of the EIF (optional)
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar, Self

from enclavia.attestation.appraisal import parse_hex, register_reference
from enclavia.attestation.claims import Claims, Tee
from enclavia.errors import PolicyLoadError

PCR_LEN = 48
MAX_PCR_INDEX = 31


def _pcr_index(key: object) -> int:
    if isinstance(key, bool):
        raise PolicyLoadError("PCR index must be an integer 0..31")
    if isinstance(key, str) and key.isdigit():
        key = int(key)
    if not isinstance(key, int) or not 0 <= key <= MAX_PCR_INDEX:
        raise PolicyLoadError("PCR index must be an integer 0..31")
    return key


@register_reference
@dataclass(frozen=True)
class NitroReference:
    tee: ClassVar[Tee] = Tee.NITRO
    name: str
    pcrs: Mapping[int, bytes]

    def __post_init__(self) -> None:
        object.__setattr__(self, "pcrs", MappingProxyType(dict(self.pcrs)))

    @classmethod
    def from_mapping(cls, name: str, data: Mapping[str, Any]) -> Self:
        if set(data) - {"pcrs"}:
            raise PolicyLoadError("unknown key in nitro reference")
        raw = data.get("pcrs")
        if raw is None or (isinstance(raw, Mapping) and not raw):
            raise PolicyLoadError("nitro reference pins nothing")
        if not isinstance(raw, Mapping):
            raise PolicyLoadError("nitro pcrs must be a mapping of index to hex")
        pcrs: dict[int, bytes] = {}
        for k, v in raw.items():
            idx = _pcr_index(k)
            if idx in pcrs:
                raise PolicyLoadError("duplicate PCR index")
            pcrs[idx] = parse_hex(v, PCR_LEN, "PCR value")
        # PCR0 names the enclave image. All zeros is what every debug-mode enclave reports: a wildcard.
        if 0 not in pcrs or not any(pcrs[0]):
            raise PolicyLoadError("nitro reference pins nothing (PCR0 required, not all zeros)")
        return cls(name=name, pcrs=pcrs)

    def matches(self, claims: Claims) -> bool:
        ok = True
        for idx, want in self.pcrs.items():
            got = claims.measurements.get(f"PCR{idx}")
            # Compare every pinned register (no early exit on the first mismatch).
            ok = (got is not None and hmac.compare_digest(want, got)) and ok
        return ok
