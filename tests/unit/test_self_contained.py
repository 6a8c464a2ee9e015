"""A clone alone passes its tests: no test reads a file outside the repository.

Two checks. At run time, every asset root the fixtures hand out, and every file under it, resolves inside
the repository (a symlink out of the clone fails too). In the source, no test module names a path that
climbs out of the repository: a `..` in a path literal, the old shared-vector locations, `REPO.parent`, or a
`Path(__file__).parents[k]` higher than the repository root.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ASSETS, REPO, VECTORS

TESTS = REPO / "tests"
FORBIDDEN_TEXT = ("shared/vectors", "shared/data", "ENCLAVIA_SHARED")
ROOT_NAMES = {"REPO", "ROOT", "REPO_ROOT"}


def _inside(path: Path) -> bool:
    return path.resolve().is_relative_to(REPO.resolve())


def test_asset_roots_resolve_inside_the_repository(vectors: Path) -> None:
    for root in (ASSETS, VECTORS, vectors):
        assert _inside(root), root


def test_every_asset_file_resolves_inside_the_repository() -> None:
    files = [p for p in ASSETS.rglob("*") if p.is_file() or p.is_symlink()]
    assert len(files) > 50  # the copied sets, not an empty folder
    outside = [str(p) for p in files if not _inside(p)]
    assert not outside


def test_every_vector_set_keeps_its_source_md() -> None:
    sets = {p.parent for p in VECTORS.rglob("*") if p.is_file() and p.name != "SOURCE.md"}
    missing = [str(s.relative_to(VECTORS)) for s in sets if not (s / "SOURCE.md").is_file()]
    assert not missing


def _parents_index(node: ast.Subscript) -> int | None:
    """k in `Path(__file__)....parents[k]`, else None."""
    if not (isinstance(node.value, ast.Attribute) and node.value.attr == "parents"):
        return None
    if isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, int):
        return node.slice.value
    return None


def _climbs_beside_the_clone(literal: str, module: Path, repo: Path) -> bool:
    """A relative path with `..` that lands beside the repository (where ../shared was): taken from the
    module's folder, or taken from the repository root (the usual cwd) to something that exists there.
    Traversal payloads in attack tests ('../x', 'models/../../etc/passwd') name nothing that exists."""
    if ".." not in Path(literal).parts or Path(literal).is_absolute():
        return False
    root = repo.resolve()
    from_module = (module.parent / literal).resolve()
    from_root = (root / literal).resolve()
    return (not from_module.is_relative_to(root) and from_module.is_relative_to(root.parent)) or (
        not from_root.is_relative_to(root) and from_root.is_relative_to(root.parent) and from_root.exists()
    )


def escapes(module: Path, repo: Path = REPO) -> list[str]:
    """What in one test module names a path outside the repository."""
    depth = len(module.relative_to(repo).parts) - 1  # Path(__file__).parents[depth] is the repository
    found = []
    for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found += [f"literal {node.value!r}" for bad in FORBIDDEN_TEXT if bad in node.value]
            if _climbs_beside_the_clone(node.value, module, repo):
                found.append(f"literal {node.value!r} climbs beside the repository")
        elif isinstance(node, ast.Attribute) and node.attr == "parent":
            if isinstance(node.value, ast.Name) and node.value.id in ROOT_NAMES:
                found.append(f"{node.value.id}.parent (line {node.lineno})")
        elif isinstance(node, ast.Subscript):
            k = _parents_index(node)
            if k is not None and k > depth:
                found.append(f"parents[{k}] (line {node.lineno}) climbs above the repository")
    return found


@pytest.mark.parametrize(
    ("source", "caught"),
    [
        ("p = '../shared/vectors'", True),
        ("p = '../../sibling/file.json'", True),  # from tests/: one level beside the clone
        ("p = '../shared'", True),  # from the repository root, to something that exists there
        ("secret = 'models/../../etc/passwd'", False),  # a traversal payload, not a path anything reads
        ("key = '../keyring'", False),
        ("p = REPO.parent / 'shared'", True),
        ("from pathlib import Path\np = Path(__file__).parents[2]", True),
        ("import os\np = os.environ.get('ENCLAVIA_SHARED')", True),
        ("from pathlib import Path\np = Path(__file__).resolve().parents[1] / 'src'", False),
    ],
)
def test_the_scanner_sees_each_escape(tmp_path: Path, source: str, caught: bool) -> None:
    repo = tmp_path / "clone"
    (repo / "tests").mkdir(parents=True)
    (tmp_path / "shared").mkdir()
    module = repo / "tests" / "test_x.py"
    module.write_text(source)
    assert bool(escapes(module, repo)) is caught


def test_no_test_module_names_a_path_outside_the_repository() -> None:
    this = Path(__file__).resolve()  # spells the forbidden patterns out to look for them
    modules = [p for p in TESTS.rglob("*.py") if p.resolve() != this]
    assert len(modules) > 100
    offenders = {m.relative_to(REPO).as_posix(): found for m in modules if (found := escapes(m))}
    assert not offenders
