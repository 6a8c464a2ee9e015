"""Policy YAML: deny by default.

::

    policy_id: hospital-prod
    revision: 3
    profile: production            # or dev; only dev accepts the simulated TEE
    requirements: {allow_debug: false, max_evidence_age_s: 300, accept_revocation_unknown: false}
    trust:
      simulated_platform_keys: [<hex, 32 bytes>]    # dev only
    reference_values:
      simulated: [{name: enclavia-0.1.0, measurement: <hex, 48 bytes>}]
      sev-snp: [...]                                 # see docs/attestation.md per platform
      # any entry may carry not_after: '2026-12-01T00:00:00Z' (UTC): it stops matching after that time
      # (the overlap deadline of a staged rollout, docs/releasing.md)
      # production refuses entries that pin only firmware-level values unless they say
      # unsafe_weak_pins: true (shown in every result they affirm): enclavia.policy.strength
    secrets: [...]                                   # key-release rules (broker), see docs/broker.md
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from enclavia.attestation.appraisal import Reference, Requirements, appraise_claims, reference_type
from enclavia.attestation.claims import AttestationResult, Claims, Status, Tee
from enclavia.attestation.manifest import ImageManifest
from enclavia.errors import DevProfileRequiredError, PolicyLoadError
from enclavia.policy.rules import SecretRule, parse_secret_rules
from enclavia.policy.strength import UNSAFE_FLAG, unsafe_reason, weak_pins

MAX_POLICY_BYTES = 1 << 20
_TOP_KEYS = {"policy_id", "revision", "profile", "requirements", "trust", "reference_values", "secrets"}


class Profile(StrEnum):
    DEV = "dev"
    PRODUCTION = "production"


@dataclass(frozen=True)
class Policy:
    policy_id: str
    revision: int
    profile: Profile
    requirements: Requirements
    references: tuple[Reference, ...]
    simulated_platform_keys: tuple[bytes, ...] = ()
    secrets: tuple[Mapping[str, Any], ...] = field(default=())
    source: str = ""
    secret_rules: tuple[SecretRule, ...] = field(default=())  # typed form of ``secrets``
    not_after: Mapping[str, datetime] = field(default_factory=dict)  # reference name -> last valid time
    # reference name -> what it leaves open, for entries marked unsafe_weak_pins (shown in each result)
    unsafe: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def references_for(self, tee: Tee) -> tuple[Reference, ...]:
        return tuple(r for r in self.references if r.tee is tee)


def _hex_list(value: object, length: int, what: str) -> tuple[bytes, ...]:
    if not isinstance(value, list):
        raise PolicyLoadError(f"{what} must be a list")
    out = []
    for item in value:
        try:
            raw = bytes.fromhex(item) if isinstance(item, str) else b""
        except ValueError:
            raw = b""
        if len(raw) != length:
            raise PolicyLoadError(f"{what} entries must be {length}-byte hex")
        out.append(raw)
    return tuple(out)


def _not_after(value: object) -> datetime:
    if not isinstance(value, (str, datetime)):
        raise PolicyLoadError("not_after must be an ISO 8601 UTC time")
    try:
        when = value if isinstance(value, datetime) else datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise PolicyLoadError("not_after must be an ISO 8601 UTC time") from None
    if when.tzinfo is None:
        raise PolicyLoadError("not_after must carry a UTC offset")
    return when


def _references(
    data: object,
    not_after: dict[str, datetime] | None = None,
    unsafe: dict[str, bool] | None = None,
) -> tuple[Reference, ...]:
    if not isinstance(data, Mapping):
        raise PolicyLoadError("reference_values must be a mapping of TEE to entries")
    refs: list[Reference] = []
    names: set[str] = set()
    for tee_name, entries in data.items():
        try:
            tee = Tee(tee_name)
        except ValueError:
            raise PolicyLoadError("unknown TEE in reference_values") from None
        if not isinstance(entries, list) or not entries:
            raise PolicyLoadError("reference_values entries must be a non-empty list")
        cls = reference_type(tee)
        for i, entry in enumerate(entries):
            if not isinstance(entry, Mapping):
                raise PolicyLoadError("reference entry must be a mapping")
            name = str(entry.get("name", f"{tee}-{i}"))
            if name in names:
                raise PolicyLoadError("duplicate reference name")
            names.add(name)
            if "not_after" in entry and not_after is not None:
                not_after[name] = _not_after(entry["not_after"])
            flag = entry.get(UNSAFE_FLAG, False)
            if not isinstance(flag, bool):
                raise PolicyLoadError(f"{UNSAFE_FLAG} must be true or false")
            if unsafe is not None:
                unsafe[name] = flag
            values = {k: v for k, v in entry.items() if k not in ("name", "not_after", UNSAFE_FLAG)}
            refs.append(cls.from_mapping(name, values))
    return tuple(refs)


def parse_policy(text: str) -> Policy:
    if len(text.encode()) > MAX_POLICY_BYTES:
        raise PolicyLoadError("policy too large")
    try:
        doc = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError):  # RecursionError: nesting deeper than the parser's stack
        raise PolicyLoadError("policy is not valid YAML") from None
    if not isinstance(doc, Mapping):
        raise PolicyLoadError("policy must be a mapping")
    if set(doc) - _TOP_KEYS:
        raise PolicyLoadError("unknown top-level key in policy")
    policy_id = doc.get("policy_id")
    revision = doc.get("revision")
    if not isinstance(policy_id, str) or not policy_id:
        raise PolicyLoadError("policy_id is required")
    if not isinstance(revision, int) or isinstance(revision, bool) or revision < 1:
        raise PolicyLoadError("revision must be a positive integer")
    try:
        profile = Profile(doc.get("profile", "production"))
    except ValueError:
        raise PolicyLoadError("profile must be dev or production") from None
    trust = doc.get("trust") or {}
    if not isinstance(trust, Mapping) or set(trust) - {"simulated_platform_keys"}:
        raise PolicyLoadError("unknown key in trust")
    sim_keys = _hex_list(trust.get("simulated_platform_keys", []), 32, "simulated_platform_keys")
    not_after: dict[str, datetime] = {}
    flagged: dict[str, bool] = {}
    references = _references(doc.get("reference_values") or {}, not_after, flagged)
    if profile is not Profile.DEV and (sim_keys or any(r.tee is Tee.SIMULATED for r in references)):
        raise PolicyLoadError("simulated TEE entries are allowed only under profile: dev")
    unsafe = _unsafe_entries(profile, references, flagged)
    secrets = doc.get("secrets") or []
    if not isinstance(secrets, list) or not all(isinstance(s, Mapping) for s in secrets):
        raise PolicyLoadError("secrets must be a list of mappings")
    secret_rules = parse_secret_rules(secrets, [r.name for r in references])
    return Policy(
        policy_id=policy_id,
        revision=revision,
        profile=profile,
        requirements=Requirements.from_mapping(doc.get("requirements")),
        references=references,
        simulated_platform_keys=sim_keys,
        secrets=tuple(dict(s) for s in secrets),
        source=text,
        secret_rules=secret_rules,
        not_after=not_after,
        unsafe=unsafe,
    )


def _unsafe_entries(
    profile: Profile, references: Sequence[Reference], flagged: Mapping[str, bool]
) -> dict[str, tuple[str, ...]]:
    """Production: an entry that pins too little is refused unless flagged; flagged gaps are kept."""
    out: dict[str, tuple[str, ...]] = {}
    for ref in references:
        gaps = weak_pins(ref)
        if not gaps:
            continue
        if flagged.get(ref.name):
            out[ref.name] = gaps
        elif profile is Profile.PRODUCTION:
            raise PolicyLoadError(
                f"reference pins too little for production ({','.join(gaps)}): pin more or set {UNSAFE_FLAG}"
            )
    return out


def load_policy(path: str | Path) -> Policy:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise PolicyLoadError("policy file unreadable") from None
    return parse_policy(text)


def appraise(
    claims: Claims,
    policy: Policy,
    *,
    now: datetime,
    expected_report_data: bytes | None = None,
    references: Sequence[Reference] | None = None,
    manifest: ImageManifest | None = None,
) -> AttestationResult:
    """Appraise verified claims under ``policy``; raises on refusal, returns an affirming result."""
    if claims.tee is Tee.SIMULATED and policy.profile is not Profile.DEV:
        raise DevProfileRequiredError()
    candidates = policy.references if references is None else references
    # entries past their not_after (an ended rollout overlap) no longer match
    candidates = [r for r in candidates if r.name not in policy.not_after or now <= policy.not_after[r.name]]
    ref = appraise_claims(
        claims,
        candidates,
        policy.requirements,
        now=now,
        expected_report_data=expected_report_data,
        manifest=manifest,
    )
    return AttestationResult(
        status=Status.AFFIRMING,
        tee=claims.tee,
        measurement=claims.measurement.hex(),
        policy_id=policy.policy_id,
        policy_revision=policy.revision,
        reasons=(unsafe_reason(policy.unsafe[ref.name]),) if ref.name in policy.unsafe else (),
        claims=claims,
        reference_name=ref.name,
    )
