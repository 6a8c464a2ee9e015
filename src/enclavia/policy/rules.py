"""Key-release rules: which attested enclaves may receive which secret. Deny by default.

::

    secrets:
      - path: models/clinical-risk          # exact path, or a prefix ending in "/*" (models/*)
        allow: [local-build]                # reference-value names (from reference_values); required
        condition: '!claims.debug && claims.tee == "simulated"'   # optional CEL, must be true

A path is matched by its exact rule if there is one, else by the longest prefix rule. No rule: denied.
The CEL condition sees one variable, ``claims`` (see :func:`cel_claims`); any evaluation error, a missing
field or a non-boolean result is a denial. Conditions are compiled when the policy loads: syntax errors and
functions outside standard CEL are load errors, never a surprise at release time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from enclavia.errors import (
    PolicyConditionFailedError,
    PolicyLoadError,
    ReleaseDeniedError,
    SecretPathInvalidError,
)

MAX_PATH_LEN = 256
MAX_SEGMENTS = 8
MAX_CONDITION_LEN = 2048
_SEGMENT = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
_PATH = re.compile(rf"^{_SEGMENT}(?:/{_SEGMENT}){{0,{MAX_SEGMENTS - 1}}}$")
_RULE_KEYS = {"path", "allow", "condition"}
# Standard CEL functions and macros a condition may call; operators ("_&&_", "@in", "!_"...) always pass.
STANDARD_FUNCTIONS = frozenset(
    {
        "size",
        "startsWith",
        "endsWith",
        "contains",
        "matches",
        "int",
        "uint",
        "double",
        "string",
        "bytes",
        "bool",
        "type",
        "timestamp",
        "duration",
        "has",
        "all",
        "exists",
        "exists_one",
        "map",
        "filter",
    }
)


def validate_secret_path(path: object) -> str:
    """A secret path: 1 to 8 segments of [A-Za-z0-9._-], each starting with a letter or digit.

    Anything else (traversal, empty segments, leading or trailing slash, percent signs, control or
    non-ASCII characters) is ``SecretPathInvalidError``.
    """
    if not isinstance(path, str) or not 0 < len(path) <= MAX_PATH_LEN or not _PATH.match(path):
        raise SecretPathInvalidError()
    return path


class CelCondition:
    """A compiled CEL expression over ``claims``. Thread-safe to evaluate."""

    __slots__ = ("_program", "source")

    def __init__(self, source: str) -> None:
        import cel

        if not isinstance(source, str) or not source.strip() or len(source) > MAX_CONDITION_LEN:
            raise PolicyLoadError("condition must be a non-empty CEL string")
        try:
            program = cel.compile(source)
            functions = program.functions()
        except (ValueError, TypeError, RuntimeError):
            raise PolicyLoadError("condition is not valid CEL") from None
        for name in functions:
            if not (name[:1] in {"_", "@", "!", "-"} or name in STANDARD_FUNCTIONS):
                raise PolicyLoadError("condition calls a function outside standard CEL")
        self.source = source
        self._program = program

    def holds(self, claims: Mapping[str, Any]) -> bool:
        """True only when the expression evaluates to boolean true. Errors are false (deny)."""
        try:
            result = self._program.execute({"claims": dict(claims)})
        except Exception:  # noqa: BLE001 - any evaluation failure is a denial, never a crash
            return False
        return result is True

    def __repr__(self) -> str:
        return f"CelCondition({self.source!r})"


@dataclass(frozen=True)
class SecretRule:
    pattern: str  # exact path, or "prefix/*"
    allow: tuple[str, ...]  # reference names
    condition: CelCondition | None = field(default=None, compare=False)

    @property
    def is_prefix(self) -> bool:
        return self.pattern.endswith("/*")

    def matches(self, path: str) -> bool:
        if self.is_prefix:
            return path.startswith(self.pattern[:-1])
        return path == self.pattern


def parse_secret_rules(data: object, reference_names: Sequence[str]) -> tuple[SecretRule, ...]:
    if data is None:
        return ()
    if not isinstance(data, list):
        raise PolicyLoadError("secrets must be a list of rules")
    known = set(reference_names)
    rules: list[SecretRule] = []
    seen: set[str] = set()
    for entry in data:
        if not isinstance(entry, Mapping) or set(entry) - _RULE_KEYS or "path" not in entry:
            raise PolicyLoadError("secret rule must be a mapping with path, allow and optional condition")
        pattern = entry["path"]
        if not isinstance(pattern, str):
            raise PolicyLoadError("secret rule path must be a string")
        try:
            validate_secret_path(pattern[:-2] if pattern.endswith("/*") else pattern)
        except SecretPathInvalidError:
            raise PolicyLoadError("secret rule path is not a valid secret path or prefix") from None
        if pattern in seen:
            raise PolicyLoadError("duplicate secret rule path")
        seen.add(pattern)
        allow = entry.get("allow")
        if not isinstance(allow, list) or not allow or not all(isinstance(a, str) for a in allow):
            raise PolicyLoadError("secret rule allow must be a non-empty list of reference names")
        if set(allow) - known:
            raise PolicyLoadError("secret rule names a reference that is not in reference_values")
        cond = entry.get("condition")
        rules.append(
            SecretRule(
                pattern=pattern,
                allow=tuple(allow),
                condition=CelCondition(cond) if cond is not None else None,
            )
        )
    return tuple(rules)


def rule_for(rules: Sequence[SecretRule], path: str) -> SecretRule | None:
    """The exact rule for ``path``, else the longest matching prefix rule, else None."""
    best: SecretRule | None = None
    for rule in rules:
        if not rule.matches(path):
            continue
        if not rule.is_prefix:
            return rule
        if best is None or len(rule.pattern) > len(best.pattern):
            best = rule
    return best


def check_release(
    rules: Sequence[SecretRule], path: str, reference_name: str | None, claims: Mapping[str, Any]
) -> None:
    """Raise unless ``rules`` release ``path`` to an enclave appraised as ``reference_name``."""
    rule = rule_for(rules, path)
    if rule is None or reference_name is None or reference_name not in rule.allow:
        raise ReleaseDeniedError()
    if rule.condition is not None and not rule.condition.holds(claims):
        raise PolicyConditionFailedError()


def cel_claims(
    *,
    tee: str,
    measurement: str,
    debug: bool,
    reference: str | None,
    policy_id: str,
    policy_revision: int,
    measurements: Mapping[str, str] | None = None,
    tcb: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``claims`` variable a condition sees. Every value is a CEL-native type (string, int, bool, map)."""
    return {
        "status": "affirming",
        "tee": tee,
        "measurement": measurement,
        "debug": debug,
        "reference": reference or "",
        "policy_id": policy_id,
        "policy_revision": policy_revision,
        "measurements": dict(measurements or {}),
        "tcb": dict(tcb or {}),
    }
