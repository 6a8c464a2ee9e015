"""Reproducible manifest digest, platform measurements beside it, the TCB report."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import enclavia
from enclavia.attestation.claims import Tee
from enclavia.cli.main import app
from enclavia.errors import ReleaseRecordInvalidError
from enclavia.policy.document import parse_policy
from enclavia.release.build import Build, load_build, parse_build
from enclavia.release.measure import measure_nitro, measure_sev_snp, measure_simulated, measure_tdx
from tests.release.synthetic import describe_eif_json, synthetic_ovmf
from tests.support import ensure_model

PKG = Path(enclavia.__file__).resolve().parent
runner = CliRunner()


def _copy_tree(dst: Path) -> Path:
    target = dst / "enclavia"
    shutil.copytree(PKG, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def _build(source: Path, models: Path, out: Path) -> Build:
    res = runner.invoke(
        app, ["release", "build", "--source", str(source), "--model-dir", str(models), "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    return load_build(out)


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    base = tmp_path_factory.mktemp("trees")
    a = _copy_tree(base / "a")
    b = _copy_tree(base / "deeper" / "install" / "b")
    models = base / "models"
    shutil.copytree(ensure_model(), models)
    # different mtimes and a different creation order must not matter
    for i, path in enumerate(sorted(b.rglob("*.py"), reverse=True)):
        os.utime(path, (1_000_000 + i, 1_000_000 + i))
    return a, b, models


def test_two_builds_in_different_directories_give_the_same_digest(
    trees: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    a, b, models = trees
    one = _build(a, models, tmp_path / "one.json")
    two = _build(b, models, tmp_path / "two.json")
    assert one.manifest_digest == two.manifest_digest
    assert (tmp_path / "one.json").read_bytes() == (tmp_path / "two.json").read_bytes()
    # without --source it is the digest the enclave computes at boot from the installed package
    from enclavia.enclave.boot import EnclaveConfig, load_models, manifest_for

    installed = _build(PKG, models, tmp_path / "installed.json")
    booted = manifest_for(EnclaveConfig(models, tmp_path / "sim"), load_models(models))
    assert installed.manifest_digest == booted.digest()


@pytest.mark.parametrize(
    "relpath", ["crypto/aead.py", "errors.py", "attestation/roots/__init__.py", "channel.py", "problem.py"]
)
def test_any_changed_file_changes_the_digest(
    trees: tuple[Path, Path, Path], tmp_path: Path, relpath: str
) -> None:
    a, _, models = trees
    base = _build(a, models, tmp_path / "base.json").manifest_digest
    changed = _copy_tree(tmp_path / "c")
    target = changed / relpath
    assert target.exists()
    target.write_bytes(target.read_bytes() + b"\n# one more line\n")
    assert _build(changed, models, tmp_path / "changed.json").manifest_digest != base


def test_an_added_file_or_a_changed_model_changes_the_digest(
    trees: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    a, _, models = trees
    base = _build(a, models, tmp_path / "base.json").manifest_digest
    added = _copy_tree(tmp_path / "c")
    (added / "inference" / "extra.py").write_text("X = 1\n")
    # Not imported by anything the entry point reaches: outside the closure (the start check refuses it
    # should it be loaded anyway: tests/unit/test_measured_closure.py).
    assert _build(added, models, tmp_path / "unused.json").manifest_digest == base
    init = added / "inference" / "__init__.py"
    init.write_text(init.read_text() + "from enclavia.inference import extra  # noqa: F401\n")
    assert _build(added, models, tmp_path / "added.json").manifest_digest != base
    other_models = tmp_path / "models"
    shutil.copytree(models, other_models)
    art = other_models / "clinical-risk.json"
    doc = json.loads(art.read_text())
    doc["intercept"][0] += 1.0
    art.write_text(json.dumps(doc))
    assert _build(a, other_models, tmp_path / "m.json").manifest_digest != base


def test_build_document_is_checked_on_load(trees: tuple[Path, Path, Path], tmp_path: Path) -> None:
    a, _, models = trees
    build = _build(a, models, tmp_path / "b.json")
    doc = build.to_json()
    doc["manifest_digest"] = "00" * 48
    with pytest.raises(ReleaseRecordInvalidError):
        parse_build(json.dumps(doc).encode())
    doc = build.to_json()
    doc["manifest"]["files"]["enclavia/errors.py"] = "11" * 32
    with pytest.raises(ReleaseRecordInvalidError):
        parse_build(json.dumps(doc).encode())
    with pytest.raises(ReleaseRecordInvalidError):
        parse_build(b"[]")


def test_tcb_report(trees: tuple[Path, Path, Path]) -> None:
    a, _, models = trees
    res = runner.invoke(app, ["release", "build", "--source", str(a), "--model-dir", str(models), "--tcb"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    paths = {f["path"] for f in report["files"]}
    assert "enclavia/crypto/hpke.py" in paths
    assert not any(p.startswith(("enclavia/host/", "enclavia/client/", "enclavia/release/")) for p in paths)
    assert report["enclavia_lines"] == sum(
        (a / p.removeprefix("enclavia/")).read_bytes().count(b"\n") for p in paths if p.endswith(".py")
    )
    names = {d["name"] for d in report["third_party"]}
    assert "cryptography" in names
    assert all(d["version"] for d in report["third_party"])


# -- measurements --------------------------------------------------------------------------------


def test_measure_simulated_is_the_manifest_digest(trees: tuple[Path, Path, Path], tmp_path: Path) -> None:
    a, _, models = trees
    out = tmp_path / "b.json"
    build = _build(a, models, out)
    res = runner.invoke(app, ["release", "measure", "--build", str(out), "--tee", "simulated"])
    assert res.exit_code == 0, res.output
    measured = load_build(out)
    assert measured.measurements["simulated"] == {"measurement": build.manifest_digest.hex()}
    # the recorded values are exactly a policy reference entry
    values, _ = measure_simulated(build.manifest_digest)
    policy = parse_policy(
        "policy_id: p\nrevision: 1\nprofile: dev\nreference_values:\n  simulated:\n"
        f"    - name: r\n      measurement: '{values['measurement']}'\n"
    )
    assert policy.references_for(Tee.SIMULATED)[0].name == "r"


def test_measure_nitro_from_describe_eif(tmp_path: Path) -> None:
    values, inputs = measure_nitro(describe_eif_json().encode())
    assert values == {"pcrs": {"0": "a1" * 48, "1": "b2" * 48, "2": "c3" * 48}}
    assert inputs["image_name"] == "enclavia"
    parse_policy(
        "policy_id: p\nrevision: 1\nreference_values:\n  nitro:\n    - name: n\n      pcrs: "
        + json.dumps(values["pcrs"])
        + "\n"
    )
    with pytest.raises(ReleaseRecordInvalidError):
        measure_nitro(describe_eif_json(pcr0="00" * 48).encode())  # debug image
    with pytest.raises(ReleaseRecordInvalidError):
        measure_nitro(describe_eif_json(pcr1="b2" * 47).encode())
    with pytest.raises(ReleaseRecordInvalidError):
        measure_nitro(b'{"Measurements": {}}')
    with pytest.raises(ReleaseRecordInvalidError):
        measure_nitro(b"not json")


def test_measure_tdx() -> None:
    values, _ = measure_tdx({"mrtd": "ab" * 48, "rtmr0": "cd" * 48})
    assert values == {"mrtd": "ab" * 48, "rtmr0": "cd" * 48}
    with pytest.raises(ReleaseRecordInvalidError):
        measure_tdx({"mrtd": "ab" * 32})
    with pytest.raises(ValueError):
        measure_tdx({"rtmr0": "ab" * 48})
    with pytest.raises(ValueError):
        measure_tdx({"mrtd": "ab" * 48, "mrseamx": "ab" * 48})


def test_measure_sev_snp_with_synthetic_inputs(tmp_path: Path) -> None:
    """Synthetic OVMF (see tests/release/synthetic.py): no real firmware is in the repo."""
    ovmf = tmp_path / "OVMF.fd"
    ovmf.write_bytes(synthetic_ovmf())
    kernel, initrd = tmp_path / "vmlinuz", tmp_path / "initrd"
    kernel.write_bytes(b"kernel image")
    initrd.write_bytes(b"initrd image")
    args = {"ovmf": ovmf, "vcpus": 2, "vcpu_type": "EPYC-Milan", "kernel": kernel, "initrd": initrd}
    one, inputs = measure_sev_snp(**args, append="console=ttyS0")  # type: ignore[arg-type]
    again, _ = measure_sev_snp(**args, append="console=ttyS0")  # type: ignore[arg-type]
    assert one == again and len(bytes.fromhex(one["measurement"])) == 48
    assert inputs["kernel_sha256"] and inputs["vcpu_type"] == "EPYC-Milan"
    # each input is measured
    assert measure_sev_snp(**args, append="console=ttyS1")[0] != one  # type: ignore[arg-type]
    assert measure_sev_snp(**{**args, "vcpus": 4}, append="console=ttyS0")[0] != one  # type: ignore[arg-type]
    initrd.write_bytes(b"initrd image 2")
    assert measure_sev_snp(**args, append="console=ttyS0")[0] != one  # type: ignore[arg-type]
    # same value as the sev-snp-measure command-line tool
    tool = Path(sys.executable).parent / "sev-snp-measure"
    out = subprocess.run(
        [str(tool), "--mode", "snp", "--vcpus", "2", "--vcpu-type", "EPYC-Milan", "--ovmf", str(ovmf),
         "--kernel", str(kernel), "--initrd", str(initrd), "--append", "console=ttyS0"],
        check=True, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert out.stdout.strip() == measure_sev_snp(**args, append="console=ttyS0")[0]["measurement"]  # type: ignore[arg-type]
    with pytest.raises(ReleaseRecordInvalidError):
        bad = tmp_path / "bad.fd"
        bad.write_bytes(b"\x00" * 4096)
        measure_sev_snp(ovmf=bad, vcpus=1, vcpu_type="EPYC-Milan")
    with pytest.raises(ValueError):
        measure_sev_snp(ovmf=ovmf, vcpus=1)


def test_measure_cli_sev_snp_and_nitro(trees: tuple[Path, Path, Path], tmp_path: Path) -> None:
    a, _, models = trees
    out = tmp_path / "b.json"
    _build(a, models, out)
    ovmf = tmp_path / "OVMF.fd"
    ovmf.write_bytes(synthetic_ovmf())
    eif = tmp_path / "eif.json"
    eif.write_text(describe_eif_json())
    res = runner.invoke(
        app,
        ["release", "measure", "--build", str(out), "--tee", "sev-snp", "--ovmf", str(ovmf),
         "--vcpus", "4", "--vcpu-type", "EPYC-Genoa"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app, ["release", "measure", "--build", str(out), "--tee", "nitro", "--eif-json", str(eif)]
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app, ["release", "measure", "--build", str(out), "--tee", "tdx", "--mrtd", "ab" * 48,
              "--rtmr", "rtmr1=" + "cd" * 48],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    build = load_build(out)
    assert set(build.measurements) == {"sev-snp", "nitro", "tdx"}
    assert build.measurement_inputs["sev-snp"]["vcpus"] == 4
    res = runner.invoke(app, ["release", "measure", "--build", str(out), "--tee", "sev-snp"])
    assert res.exit_code == 2
