"""Policy appraisal shared by every platform: deny by default.

Each platform module (``attestation.platforms.<tee>.appraise``) provides a ``Reference`` type (one
allow-list entry, parsed from policy YAML by ``Reference.from_mapping``) and the registry below maps a
TEE to it. An entry that pins nothing is a load error, never a wildcard.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar, Protocol, Self

from enclavia.attestation.binding import check_report_data
from enclavia.attestation.claims import Claims, Revocation, Tee
from enclavia.attestation.config_binding import check_manifest_bound
from enclavia.attestation.manifest import ImageManifest
from enclavia.errors import (
    DebugEnclaveError,
    EvidenceTooOldError,
    MeasurementNotAllowedError,
    PolicyLoadError,
    RevocationUnknownError,
)


def parse_hex(value: object, length: int, what: str) -> bytes:
    """A reference value from policy YAML: a quoted hex string of exactly ``length`` bytes."""
    if not isinstance(value, str):
        raise PolicyLoadError(f"{what} must be a hex string")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise PolicyLoadError(f"{what} is not hex") from None
    if len(raw) != length:
        raise PolicyLoadError(f"{what} must be {length} bytes")
    return raw


class Reference(Protocol):
    """One allow-list entry for one TEE."""

    tee: ClassVar[Tee]
    name: str

    @classmethod
    def from_mapping(cls, name: str, data: Mapping[str, Any]) -> Self: ...

    def matches(self, claims: Claims) -> bool:
        """True when the claims satisfy every value this entry pins."""
        ...


@dataclass(frozen=True)
class Requirements:
    """Platform-independent requirements. Defaults are the strict ones."""

    allow_debug: bool = False
    max_evidence_age: timedelta | None = timedelta(minutes=5)
    accept_revocation_unknown: bool = False

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> Requirements:
        data = dict(data or {})
        unknown = set(data) - {"allow_debug", "max_evidence_age_s", "accept_revocation_unknown"}
        if unknown:
            raise PolicyLoadError("unknown key in requirements")
        age = data.get("max_evidence_age_s", 300)
        if age is not None and (not isinstance(age, int) or isinstance(age, bool) or age <= 0):
            raise PolicyLoadError("max_evidence_age_s must be a positive integer or null")
        allow_debug = data.get("allow_debug", False)
        accept_unknown = data.get("accept_revocation_unknown", False)
        if not isinstance(allow_debug, bool) or not isinstance(accept_unknown, bool):
            raise PolicyLoadError("requirements flags must be booleans")
        return cls(
            allow_debug=allow_debug,
            max_evidence_age=timedelta(seconds=age) if age is not None else None,
            accept_revocation_unknown=accept_unknown,
        )


def appraise_claims(
    claims: Claims,
    references: Sequence[Reference],
    requirements: Requirements,
    *,
    now: datetime,
    expected_report_data: bytes | None = None,
    manifest: ImageManifest | None = None,
) -> Reference:
    """Checklist. Returns the matching allow-list entry or raises a specific error. ``manifest``: the one
    presented beside the evidence, for entries that require the platform to carry it (``bind_manifest``)."""
    # 1. report_data binds what the caller expects (key config, nonce, manifest).
    if expected_report_data is not None:
        check_report_data(claims.report_data, expected_report_data)
    # 2. no debug enclaves unless explicitly allowed.
    if claims.debug and not requirements.allow_debug:
        raise DebugEnclaveError()
    # 3. evidence age, where the platform gives a time.
    if requirements.max_evidence_age is not None and claims.issued_at is not None:
        if now - claims.issued_at > requirements.max_evidence_age:
            raise EvidenceTooOldError()
        if claims.issued_at - now > timedelta(seconds=60):
            raise EvidenceTooOldError("evidence is from the future")
    # 4. revocation unknown must be accepted explicitly.
    if claims.revocation is Revocation.UNKNOWN and not requirements.accept_revocation_unknown:
        raise RevocationUnknownError()
    # 5. an allow-list entry for this TEE must match; deny by default.
    for ref in references:
        if ref.tee is claims.tee and ref.matches(claims):
            # 6. the entry's pins match: if it binds the manifest, the config slot must carry it.
            if getattr(ref, "bind_manifest", False):
                check_manifest_bound(claims, manifest)
            return ref
    raise MeasurementNotAllowedError()


_REGISTRY: dict[Tee, type[Any]] = {}


def register_reference(cls: type[Any]) -> type[Any]:
    _REGISTRY[cls.tee] = cls
    return cls


def reference_type(tee: Tee) -> type[Any]:
    # Import platforms lazily so that each registers itself; keeps this module free of cycles.
    import enclavia.attestation.platforms  # noqa: F401

    try:
        return _REGISTRY[tee]
    except KeyError:
        raise PolicyLoadError("no reference-value type for this TEE") from None
