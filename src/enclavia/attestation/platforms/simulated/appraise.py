"""Simulated reference values: the manifest measurement (SHA-384) must be named."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from enclavia.attestation.appraisal import parse_hex, register_reference
from enclavia.attestation.claims import Claims, Tee
from enclavia.errors import PolicyLoadError


@register_reference
@dataclass(frozen=True)
class SimulatedReference:
    tee: ClassVar[Tee] = Tee.SIMULATED
    name: str
    measurement: bytes

    @classmethod
    def from_mapping(cls, name: str, data: Mapping[str, Any]) -> Self:
        if set(data) - {"measurement", "name"}:
            raise PolicyLoadError("unknown key in simulated reference")
        if "measurement" not in data:
            raise PolicyLoadError("simulated reference pins nothing")
        return cls(name=name, measurement=parse_hex(data["measurement"], 48, "simulated measurement"))

    def matches(self, claims: Claims) -> bool:
        return hmac.compare_digest(self.measurement, claims.measurement)
