"""Installed distributions: which provide a top-level module, and what each requires (Requires-Dist).

Used by the enclave's manifest (the dependency lock is the closure of what its code imports) and by the
release tooling's trusted-base report. Reads installed metadata only; nothing is imported or executed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import metadata

_EXTRA = re.compile(r"""extra\s*==\s*['"]""")


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@cache
def module_owners() -> Mapping[str, tuple[str, ...]]:
    return {k: tuple(v) for k, v in metadata.packages_distributions().items()}


def _marker_holds(marker: str) -> bool:
    """True when the marker holds here or cannot be evaluated (over-reporting is the safe side)."""
    try:
        from packaging.markers import Marker

        return bool(Marker(marker).evaluate({"extra": ""}))
    except Exception:  # noqa: BLE001 - no packaging, or an unparsable marker: keep the requirement
        return True


def _requires(dist: metadata.Distribution) -> list[str]:
    """Names of the distributions ``dist`` requires, without extras and without markers that do not hold."""
    out = []
    for spec in dist.requires or []:
        req, _, marker = spec.partition(";")
        if marker and _EXTRA.search(marker):
            continue
        if marker and not _marker_holds(marker.strip()):
            continue
        name = re.split(r"[\s<>=!~;\[(]", req.strip(), maxsplit=1)[0]
        if name:
            out.append(name)
    return out


def distribution_closure(top_modules: Iterable[str]) -> dict[str, metadata.Distribution]:
    """Installed distributions providing ``top_modules`` and all they require, by normalized name."""
    owners = module_owners()
    return distribution_closure_of([d for m in top_modules for d in owners.get(m, ())])


def distribution_closure_of(stack: list[str]) -> dict[str, metadata.Distribution]:
    """The installed distributions named in ``stack`` and all they require, by normalized name."""
    found: dict[str, metadata.Distribution] = {}
    while stack:
        name = stack.pop()
        key = norm(name)
        if key in found or key == "enclavia":
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # an optional runtime that is not installed here
        found[key] = dist
        stack.extend(_requires(dist))
    return found
