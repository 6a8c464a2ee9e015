"""The trusted-base report: what is inside the measured enclave image, and what must never be."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from enclavia.cli.main import app
from enclavia.release.tcb import NEVER_IN_ENCLAVE, import_report, imported_modules
from tests.support import ensure_model

runner = CliRunner()
HOST_AND_DATABASE = {"sqlalchemy", "psycopg", "psycopg-binary", "fastapi", "uvicorn", "starlette", "alembic"}


def test_tcb_lists_no_host_broker_or_database_packages() -> None:
    res = runner.invoke(app, ["tcb", "--json", "--model-dir", str(ensure_model())])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    # measured enclavia code: the enclave's packages only
    paths = {f["path"] for f in report["files"]}
    assert "enclavia/enclave/memory.py" in paths and "enclavia/enclave/split.py" in paths
    outside = ("enclavia/host/", "enclavia/broker/", "enclavia/release/", "enclavia/cli/", "enclavia/client/")
    assert not any(p.startswith(outside) for p in paths)
    assert report["enclavia_lines"] > 1000 and report["python_files"] == sum(p.endswith(".py") for p in paths)
    # third-party: neither the manifest's lock nor what the code really imports holds a host or database stack
    pinned = {d["name"] for d in report["third_party"]}
    imports = report["imports"]
    closure = {d["name"] for d in imports["distributions"]}
    assert {"cryptography", "numpy", "cbor2"} <= pinned and {"cryptography", "numpy", "cbor2"} <= closure
    assert not (pinned | closure) & HOST_AND_DATABASE
    assert imports["never_in_enclave_found"] == []
    assert imports["outside_modules_imported"] == []
    assert all(d["version"] and d["installed_bytes"] >= 0 for d in imports["distributions"])
    assert imports["installed_bytes"] == sum(d["installed_bytes"] for d in imports["distributions"])
    # the code's direct imports that run in every enclave are pinned (optional ones are listed when installed)
    assert not {"cryptography", "numpy", "cbor2", "structlog", "pyyaml"} & set(
        imports["not_in_manifest_lock"]
    )


def test_tcb_summary_text() -> None:
    res = runner.invoke(app, ["tcb", "--model-dir", str(ensure_model())])
    assert res.exit_code == 0, res.output
    assert "host/broker/db:     none" in res.output
    assert "outside enclavia:   none" in res.output


def test_report_flags_host_code_and_web_stacks(tmp_path: Path) -> None:
    """A tree whose enclave code imports host code and a web framework (lazily, inside a function)."""
    root = tmp_path / "enclavia"
    (root / "enclave").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "enclave" / "bad.py").write_text(
        "import numpy\n"
        "from enclavia.host.app import create_app\n"
        "def later():\n"
        "    import fastapi\n"
        "    from enclavia import channel\n"
    )
    files = ["enclavia/__init__.py", "enclavia/enclave/bad.py"]
    third, own = imported_modules(root, files)
    assert third == {"numpy", "fastapi"}
    assert "enclavia.host.app" in own and "enclavia.channel" in own
    report = import_report(files, root, ["numpy==1.0"])
    assert "fastapi" in report["never_in_enclave_found"] and "fastapi" in NEVER_IN_ENCLAVE
    assert "enclavia.host.app" in report["outside_modules_imported"]
    assert "fastapi" in report["direct_not_in_manifest_lock"]
    assert "numpy" not in report["not_in_manifest_lock"]


def test_release_build_tcb_carries_the_same_section() -> None:
    res = runner.invoke(app, ["release", "build", "--tcb", "--model-dir", str(ensure_model())])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["imports"]["never_in_enclave_found"] == []


def test_tcb_prints_what_is_measured_by_category() -> None:
    res = runner.invoke(app, ["tcb", "--json", "--model-dir", str(ensure_model())])
    assert res.exit_code == 0, res.output
    cat = json.loads(res.output)["categories"]
    assert cat["enclavia_modules"]["count"] > 50
    assert cat["third_party"]["distributions"] > 5 and cat["third_party"]["record_files"] > 1000
    assert cat["process"]["flags"] == ["-I", "-B"]
    text = runner.invoke(app, ["tcb", "--model-dir", str(ensure_model())]).output
    assert "measured, by category:" in text and "-I -B -m enclavia.enclave.main" in text


def test_tcb_fails_when_the_code_imports_an_unlocked_distribution(tmp_path: Path) -> None:
    """The allow-list check: a third-party import no locked distribution provides would make the enclave
    refuse at start, so the release check fails first."""
    import shutil

    import enclavia

    root = tmp_path / "enclavia"
    shutil.copytree(Path(enclavia.__file__).parent, root, ignore=shutil.ignore_patterns("__pycache__"))
    boot = root / "enclave" / "boot.py"
    boot.write_text(boot.read_text() + "\ndef _later() -> None:\n    import pluggy  # noqa: F401\n")
    res = runner.invoke(app, ["tcb", "--source", str(root), "--model-dir", str(ensure_model())])
    assert res.exit_code == 1, res.output
    assert "direct, unpinned:   pluggy" in res.output
