"""The measured set is the enclave entry point's import closure (issue 13, point 1), and the start check
refuses a loaded module the manifest does not cover."""

from __future__ import annotations

import json
import shutil
import sys
import sysconfig
import types
from pathlib import Path

import pytest

import enclavia
from enclavia.enclave import loaded
from enclavia.enclave.image import (
    build_manifest,
    dependency_lock,
    enclave_code_files,
    import_closure,
    read_records,
)

PKG = Path(enclavia.__file__).resolve().parent


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "enclavia"
    shutil.copytree(PKG, root, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def test_appending_a_comment_to_any_module_of_the_closure_changes_the_measurement(tree: Path) -> None:
    closure = import_closure(tree)
    before = enclave_code_files(tree)
    digest = build_manifest({}, {}, tree).digest()
    for path in closure.values():
        path.write_bytes(path.read_bytes() + b"\n# host was here\n")
    after = enclave_code_files(tree)
    for name, path in closure.items():
        rel = f"enclavia/{path.relative_to(tree).as_posix()}"
        assert rel in before, name
        assert after[rel] != before[rel], name
    assert build_manifest({}, {}, tree).digest() != digest


@pytest.mark.parametrize("rel", ["channel.py", "problem.py", "launch.py", "errors.py", "distributions.py"])
def test_modules_shared_with_the_host_are_measured(tree: Path, rel: str) -> None:
    digest = build_manifest({}, {}, tree).digest()
    path = tree / rel
    path.write_bytes(path.read_bytes() + b"#\n")
    assert f"enclavia/{rel}" in enclave_code_files(tree)
    assert build_manifest({}, {}, tree).digest() != digest


def test_lazy_imports_inside_functions_are_in_the_closure() -> None:
    names = import_closure(PKG)
    # imported only inside functions of enclavia.enclave.boot
    for lazy in ("enclavia.inference.chat", "enclavia.inference.embeddings", "enclavia.enclave.data"):
        assert lazy in names
    for outside in (
        "enclavia.host.app",
        "enclavia.broker.service",
        "enclavia.cli.main",
        "enclavia.client.sdk",
    ):
        assert outside not in names


def test_a_new_module_imported_by_the_enclave_is_measured_without_editing_a_list(tree: Path) -> None:
    (tree / "newshared.py").write_text("X = 1\n")
    boot = tree / "enclave" / "boot.py"
    assert "enclavia/newshared.py" not in enclave_code_files(tree)
    boot.write_text(boot.read_text() + "\nfrom enclavia import newshared  # noqa\n")
    assert "enclavia/newshared.py" in enclave_code_files(tree)


def test_relative_imports_are_followed(tree: Path) -> None:
    (tree / "enclave" / "rel_target.py").write_text("Y = 2\n")
    main = tree / "enclave" / "main.py"
    main.write_text(main.read_text() + "\nfrom . import rel_target  # noqa\n")
    assert "enclavia.enclave.rel_target" in import_closure(tree)


def _module(name: str, file: str | None) -> types.ModuleType:
    mod = types.ModuleType(name)
    if file is not None:
        mod.__file__ = file
    return mod


def test_loaded_modules_of_this_test_process_that_the_enclave_uses_are_covered() -> None:
    import cryptography  # noqa: F401 - loaded for the check
    import numpy  # noqa: F401
    import yaml  # noqa: F401

    import enclavia.channel  # noqa: F401

    manifest = build_manifest({}, {}, PKG)
    modules = {n: sys.modules[n] for n in ("json", "yaml", "cryptography", "enclavia.channel", "numpy")}
    assert loaded.unmeasured(manifest, read_records(manifest.dependencies), modules) == []


def test_the_start_check_flags_what_the_manifest_does_not_cover(tmp_path: Path) -> None:
    manifest = build_manifest({}, {}, PKG)
    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    (tmp_path / "x.py").write_text("")
    modules = {
        "hostile": _module("hostile", str(tmp_path / "x.py")),
        # an enclavia file outside the closure (host code) and one that does not exist in the manifest
        "enclavia.host.app": _module("enclavia.host.app", str(PKG / "host" / "app.py")),
        # a sitecustomize dropped into site-packages: in no distribution's RECORD
        "sitecustomize": _module("sitecustomize", str(site / "sitecustomize.py")),
        # a distribution that is installed but not in the lock (the host's web stack)
        "fastapi": _module("fastapi", str(site / "fastapi" / "__init__.py")),
        "builtin": _module("builtin", None),
        "json": sys.modules["json"],
    }
    assert loaded.unmeasured(manifest, read_records(manifest.dependencies), modules) == [
        "enclavia.host.app",
        "fastapi",
        "hostile",
        "sitecustomize",
    ]
    detail = loaded.summary(["a", "b"])
    assert detail == "2 unmeasured: a,b"
    json.dumps(detail)


def _throwaway_dist(site: Path, body: bytes) -> None:
    """A small installed distribution (wheel layout: module, METADATA, RECORD with sha256 hashes)."""
    import base64
    import hashlib

    info = site / "throwaway_dist-1.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (site / "throwaway_mod.py").write_bytes(body)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: throwaway-dist\nVersion: 1.0\n")
    digest = base64.urlsafe_b64encode(hashlib.sha256(body).digest()).rstrip(b"=").decode()
    (info / "RECORD").write_text(
        f"throwaway_mod.py,sha256={digest},{len(body)}\n"
        "throwaway_dist-1.0.dist-info/METADATA,,\nthrowaway_dist-1.0.dist-info/RECORD,,\n"
    )


def test_a_changed_byte_in_an_installed_third_party_file_changes_the_measurement_or_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from enclavia.enclave.image import runtime_measured

    site = tmp_path / "site"
    _throwaway_dist(site, b"VALUE = 1\n")
    monkeypatch.syspath_prepend(str(site))
    lock = dependency_lock(["throwaway-dist"])
    assert lock == ("throwaway-dist==1.0",)
    before = runtime_measured(read_records(lock))
    module = _module("throwaway_mod", str(site / "throwaway_mod.py"))
    manifest = build_manifest({}, {}, PKG)
    manifest = type(manifest)(
        manifest.enclavia_version, manifest.files, lock, manifest.models, manifest.config
    )
    assert loaded.unmeasured(manifest, read_records(lock), {"throwaway_mod": module}) == []
    # A reinstall with one byte changed (RECORD rewritten to match): the measured RECORD digest changes.
    _throwaway_dist(site, b"VALUE = 2\n")
    after = runtime_measured(read_records(lock))
    assert after["records"]["throwaway-dist"] != before["records"]["throwaway-dist"]
    # The same byte changed in place, RECORD left as it was: the start check refuses the loaded file.
    records = read_records(lock)
    (site / "throwaway_mod.py").write_bytes(b"VALUE = 3\n")
    assert loaded.unmeasured(manifest, records, {"throwaway_mod": module}) == ["throwaway_mod"]


def test_after_the_start_check_an_unmeasured_import_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A module imported lazily after boot (a request path) is checked as it is imported."""
    manifest = build_manifest({}, {}, PKG)
    records = read_records(manifest.dependencies)
    (tmp_path / "late_hostile.py").write_text("RAN = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    guard = loaded.guard_imports(manifest, records)
    try:
        with pytest.raises(ImportError, match="outside the enclave's measurement"):
            __import__("late_hostile")
        assert "late_hostile" not in sys.modules
        import json.tool  # noqa: F401 - the standard library still imports

        import enclavia.enclave.split  # noqa: F401 - a measured module still imports
    finally:
        sys.meta_path.remove(guard)
