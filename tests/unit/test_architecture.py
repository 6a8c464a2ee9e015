"""Rules a linter cannot express directly."""

from __future__ import annotations

import ast
from pathlib import Path

import enclavia
from enclavia.errors import all_error_classes

SRC = Path(enclavia.__file__).resolve().parent


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_only_enclavia_crypto_imports_cryptography_hazmat() -> None:
    offenders = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC)
        if rel.parts[0] == "crypto":
            continue
        if any(name.startswith("cryptography.hazmat") for name in _imports(path)):
            offenders.append(str(rel))
    assert offenders == []


def test_host_imports_no_cryptography_at_all() -> None:
    for path in (SRC / "host").rglob("*.py"):
        assert not any(n.split(".")[0] == "cryptography" for n in _imports(path)), path


def test_error_codes_are_unique_and_stable_shaped() -> None:
    codes = [cls.code for cls in all_error_classes()]
    assert len(codes) == len(set(codes))
    for cls in all_error_classes():
        assert "." in cls.code and cls.code == cls.code.lower()
        assert 400 <= cls.status <= 599
