"""Release and log commands name what is wrong: the missing file (exit 3), the bad argument (exit 2), the
unreachable URL (exit 3), and a refusal's detail beside its code (exit 1), so two causes never read alike."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from enclavia.cli.exits import EXIT_REJECTED, EXIT_UNAVAILABLE, EXIT_USAGE
from enclavia.cli.main import app

runner = CliRunner()


def run(*args: str | Path) -> tuple[int, str]:
    res = runner.invoke(app, [str(a) for a in args])
    return res.exit_code, res.output


@pytest.fixture
def build(tmp_path: Path) -> Path:
    out = tmp_path / "build.json"
    code, output = run("release", "build", "--model-dir", tmp_path / "no-models", "--out", out)
    assert code == 0, output
    return out


def test_missing_ovmf_and_short_mrtd_are_distinct(build: Path, tmp_path: Path) -> None:
    ovmf = tmp_path / "OVMF.fd"
    code, out = run("release", "measure", "--build", build, "--tee", "sev-snp", "--ovmf", ovmf,
                    "--vcpus", "4", "--vcpu-type", "EPYC-Genoa")  # fmt: skip
    assert code == EXIT_UNAVAILABLE
    assert f"cannot read --ovmf file {ovmf}: No such file or directory" in out
    code, out = run("release", "measure", "--build", build, "--tee", "tdx", "--mrtd", "abcd")
    assert code == EXIT_USAGE
    assert "--mrtd must be 48 bytes (96 hex digits), got 2" in out
    code, out = run("release", "measure", "--build", build, "--tee", "tdx", "--mrtd", "ab" * 48,
                    "--rtmr", "rtmr2=zz")  # fmt: skip
    assert code == EXIT_USAGE and "--rtmr rtmr2 is not hex" in out
    assert "record_invalid" not in out


def test_missing_build_file_is_named(tmp_path: Path) -> None:
    code, out = run("release", "measure", "--build", tmp_path / "nope.json", "--tee", "simulated")
    assert code == EXIT_UNAVAILABLE and "cannot read --build file" in out and "nope.json" in out


def test_log_serve_without_its_key_names_the_path_and_how_to_make_it(tmp_path: Path) -> None:
    key = tmp_path / "keys" / "log.key"
    code, out = run("log", "serve", "--key", key)
    assert code == EXIT_UNAVAILABLE
    assert f"no --key (log key) file {key}: create it with `enclavia release keygen --out {key}`" in out


def test_a_key_file_that_is_not_a_key_is_a_usage_error(build: Path, tmp_path: Path) -> None:
    bad = tmp_path / "not-a-key.pem"
    bad.write_text("hello\n")
    code, out = run("release", "sign", "--build", build, "--version", "1.0.0", "--commit", "a" * 40,
                    "--key", bad, "--out", tmp_path / "r.json")  # fmt: skip
    assert code == EXIT_USAGE and f"--key {bad} is not an Ed25519 private key" in out


def test_unreachable_log_is_exit_3_naming_the_url(build: Path, tmp_path: Path) -> None:
    key = tmp_path / "release.key"
    assert run("release", "keygen", "--out", key)[0] == 0
    assert run("release", "measure", "--build", build, "--tee", "simulated")[0] == 0
    release = tmp_path / "release.json"
    code, out = run("release", "sign", "--build", build, "--version", "1.0.0", "--commit", "a" * 40,
                    "--key", key, "--out", release)  # fmt: skip
    assert code == 0, out
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    code, out = run("log", "append", "--url", url, "--release", release)
    assert code == EXIT_UNAVAILABLE and f"cannot reach the transparency log at {url}" in out
    other = tmp_path / "other.key"
    assert run("release", "keygen", "--out", other)[0] == 0
    code, out = run("release", "verify", "--release", release, "--release-key", f"{other}.pub")
    assert code == EXIT_REJECTED
    assert "REFUSED: release.bad_signature (" in out  # the code and its fixed detail
