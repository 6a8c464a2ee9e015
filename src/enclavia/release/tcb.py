"""What the enclave's code actually pulls in: third-party distributions reached from the measured files.

The manifest's dependency lock (enclavia.enclave.image.RUNTIME_DISTRIBUTIONS) lists the distributions the
enclave is meant to use. This module checks that list against the code: it reads every measured ``.py`` file
(``ast``, nothing is imported or executed), collects each absolute import, including imports inside functions
(optional runtimes load lazily), maps the top-level module names to installed distributions, and follows their
``Requires-Dist`` metadata (extras not requested are skipped) to the full set installed for the enclave. It
reports distributions with versions and installed sizes, the ones the manifest's lock does not pin, enclavia
modules outside the trusted base that the code imports, and any distribution that must never be in an
enclave (web servers, databases, the broker's and host's stacks).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any, Final

from enclavia.distributions import distribution_closure, module_owners, norm

# Distributions that belong to the host, the broker or a database: never in the enclave's image.
NEVER_IN_ENCLAVE: Final = frozenset(
    {
        "alembic",
        "fastapi",
        "gunicorn",
        "psycopg",
        "psycopg-binary",
        "psycopg2",
        "psycopg2-binary",
        "python-pkcs11",
        "sqlalchemy",
        "starlette",
        "uvicorn",
        "asyncpg",
    }
)
# enclavia packages that are outside the trusted base (the import-linter contract keeps them out too).
OUTSIDE: Final = ("enclavia.host", "enclavia.broker", "enclavia.release", "enclavia.cli", "enclavia.client")


def imported_modules(package_root: Path, files: Iterable[str]) -> tuple[set[str], set[str]]:
    """(top-level third-party module names, enclavia modules) imported by the measured ``.py`` files."""
    third: set[str] = set()
    own: set[str] = set()
    for rel in files:
        if not rel.endswith(".py"):
            continue
        path = package_root / rel.removeprefix("enclavia/")
        try:
            tree = ast.parse(path.read_bytes(), filename=rel)
        except (OSError, SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                top = name.split(".", 1)[0]
                if top == "enclavia":
                    own.add(name)
                elif top not in sys.stdlib_module_names and top != "__future__":
                    third.add(top)
    return third, own


def _installed_bytes(dist: metadata.Distribution) -> int:
    total = 0
    for f in dist.files or []:
        if f.size is not None:
            total += int(f.size)
    return total


def import_report(files: Iterable[str], package_root: Path, lock: Iterable[str]) -> dict[str, Any]:
    """The closure section of the trusted-base report (see the module docstring)."""
    files = list(files)
    third, own = imported_modules(package_root, files)
    closure = distribution_closure(third)
    locked = {norm(pin.partition("==")[0]) for pin in lock}
    owners = module_owners()
    direct = {norm(d) for m in third for d in owners.get(m, ())}
    dists: list[dict[str, Any]] = [
        {
            "name": key,
            "version": dist.version,
            "installed_bytes": _installed_bytes(dist),
            "in_manifest_lock": key in locked,
        }
        for key, dist in sorted(closure.items())
    ]
    return {
        "imported_modules": sorted(third),
        "distributions": dists,
        "distribution_count": len(dists),
        "installed_bytes": sum(_installed_bytes(dist) for dist in closure.values()),
        "not_in_manifest_lock": [d["name"] for d in dists if not d["in_manifest_lock"]],
        # imported by the measured code itself but not pinned in the manifest: should be added to the lock
        "direct_not_in_manifest_lock": sorted(n for n in direct if n in closure and n not in locked),
        "never_in_enclave_found": sorted(
            {d["name"] for d in dists if d["name"] in NEVER_IN_ENCLAVE}
            | {n for n in locked if n in NEVER_IN_ENCLAVE}
        ),
        "outside_modules_imported": sorted(m for m in own if m.startswith(OUTSIDE)),
    }
