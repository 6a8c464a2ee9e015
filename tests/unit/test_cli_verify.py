"""`enclavia verify` over real vectors: exit 0 verified/allowed, 1 rejected (reason code), 2 usage, 3 missing
input file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from enclavia.cli.main import app
from enclavia.cli.verify import evidence_bytes

runner = CliRunner()
TDX_AT = "2025-06-20T00:00:00Z"
MRTD = "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7"
REPORT_DATA = (
    "9a9d48e7f6799642d3d1b34e1e5e1742d4bb02dd6ddd551862c1211d35c304f9"
    "eca3efdbb481601c163cf52493d6e44aed55d51ec39b7e518fadb92c2b523f20"
)
GPU_NONCE = "931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb"


def run(*args: str | Path) -> tuple[int, str]:
    result = runner.invoke(app, ["verify", *map(str, args)])
    return result.exit_code, result.output


@pytest.fixture
def tdx(vectors: Path) -> dict[str, Path]:
    d = vectors / "tdx" / "dcap-qvl"
    return {"quote": d / "tdx_quote", "col": d / "tdx_quote_collateral.json", "dir": d}


@pytest.fixture
def gpu(vectors: Path) -> dict[str, Path]:
    d = vectors / "nvidia" / "nvtrust"
    return {
        "report": d / "hopperAttestationReport.txt",
        "chain": d / "hopperCertChain.pem",
        "ppcie": d / "ppcie_gpu_evidence_8xH100.json",
    }


def _policy(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "policy.yaml"
    p.write_text("policy_id: cli-test\nrevision: 4\n" + body)
    return p


def test_tdx_verified(tdx: dict[str, Path]) -> None:
    code, out = run(tdx["quote"], "--tee", "tdx", "--collateral", tdx["col"], "--at", TDX_AT)
    assert code == 0, out
    assert f"VERIFIED tee=tdx measurement={MRTD}" in out


def test_tdx_json_claims(tdx: dict[str, Path]) -> None:
    code, out = run(tdx["quote"], "--tee", "tdx", "--collateral", tdx["col"], "--at", TDX_AT, "--json")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["tee"] == "tdx" and doc["measurement"] == MRTD
    assert doc["tcb"]["status"] == "UpToDate"
    assert doc["report_data"] == REPORT_DATA


def test_tdx_hex_text_evidence(tdx: dict[str, Path]) -> None:
    code, out = run(
        tdx["dir"] / "near_quote_hex.txt",
        "--tee",
        "tdx",
        "--collateral",
        tdx["dir"] / "near_quote_collateral.json",
        "--at",
        "2025-09-10T00:00:00Z",
    )
    assert code == 0, out


def test_tdx_policy_allowed_and_json_result(tdx: dict[str, Path], tmp_path: Path) -> None:
    pol = _policy(
        tmp_path, f"reference_values:\n  tdx: [{{name: td-1, unsafe_weak_pins: true, mrtd: '{MRTD}'}}]\n"
    )
    args = (tdx["quote"], "--tee", "tdx", "--collateral", tdx["col"], "--at", TDX_AT, "--policy", pol)
    code, out = run(*args, "--report-data", REPORT_DATA)
    assert code == 0, out
    assert "ALLOWED" in out and "entry=td-1" in out and "policy=cli-test@4" in out
    code, out = run(*args, "--json")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["status"] == "affirming" and doc["reference"] == "td-1" and doc["policy_revision"] == 4
    assert doc["claims"]["measurement"] == MRTD


@pytest.mark.parametrize(
    ("extra", "code_text"),
    [
        (["--at", "2025-08-01T00:00:00Z"], "attestation.collateral"),
        (["--at", TDX_AT, "--report-data", "00" * 64], "attestation.report_data_mismatch"),
    ],
)
def test_tdx_rejected(tdx: dict[str, Path], extra: list[str], code_text: str) -> None:
    code, out = run(tdx["quote"], "--tee", "tdx", "--collateral", tdx["col"], *extra)
    assert code == 1, out
    assert code_text in out


def test_tdx_rejected_by_policy(tdx: dict[str, Path], tmp_path: Path) -> None:
    pol = _policy(tmp_path, f"reference_values:\n  tdx: [{{unsafe_weak_pins: true, mrtd: '{'00' * 48}'}}]\n")
    code, out = run(tdx["quote"], "--tee", "tdx", "--collateral", tdx["col"], "--at", TDX_AT, "--policy", pol)
    assert code == 1 and "policy.measurement_not_allowed" in out
    pol = _policy(
        tmp_path,
        f"reference_values:\n  tdx: [{{"
        f"unsafe_weak_pins: true, mrtd: '{MRTD}', accepted_tcb_status: [OutOfDate]}}]\n",
    )
    code, out = run(
        tdx["quote"], "--tee", "tdx", "--collateral", tdx["col"], "--at", TDX_AT, "--policy", pol, "--json"
    )
    assert code == 1
    doc = json.loads(out)
    assert doc["verified"] is False and doc["reason"] == "attestation.tcb"


def test_outdated_and_wrong_tee(tdx: dict[str, Path]) -> None:
    d = tdx["dir"]
    code, out = run(
        d / "tdx_quote_outdated",
        "--tee",
        "tdx",
        "--collateral",
        d / "tdx_quote_outdated_collateral.json",
        "--at",
        "2026-03-01T00:00:00Z",
    )
    assert code == 1 and "attestation.tcb" in out
    code, out = run(
        d / "sgx_quote", "--tee", "tdx", "--collateral", d / "sgx_quote_collateral.json", "--at", TDX_AT
    )
    assert code == 1 and "attestation.malformed_evidence" in out


def test_nvidia(gpu: dict[str, Path], tmp_path: Path) -> None:
    base = (gpu["report"], "--tee", "nvidia", "--cert", gpu["chain"], "--at", "2025-01-01T00:00:00Z")
    code, out = run(*base, "--nonce", GPU_NONCE)
    assert code == 0, out
    code, out = run(*base, "--nonce", "00" * 32)
    assert code == 1 and "attestation.nonce_mismatch" in out
    code, out = run(gpu["report"], "--tee", "nvidia", "--at", "2025-01-01T00:00:00Z")
    assert code == 1 and "attestation.bad_chain" in out
    code, out = run(*base, "--json")
    m1 = json.loads(out)["measurements"]["M1"]
    strict = _policy(tmp_path, f"reference_values:\n  nvidia: [{{measurements: {{1: '{m1}'}}}}]\n")
    code, out = run(*base, "--policy", strict)
    assert code == 1 and "attestation.revocation_unknown" in out
    lenient = _policy(
        tmp_path,
        "requirements: {accept_revocation_unknown: true}\n"
        f"reference_values:\n  nvidia: [{{name: h100, measurements: {{1: '{m1}'}}}}]\n",
    )
    code, out = run(*base, "--policy", lenient)
    assert code == 0 and "entry=h100" in out


def test_nvidia_multi_gpu_json(gpu: dict[str, Path]) -> None:
    code, out = run(gpu["ppcie"], "--tee", "nvidia", "--at", "2025-01-01T00:00:00Z", "--json")
    assert code == 0, out
    doc = json.loads(out)
    assert isinstance(doc, list) and len(doc) == 8 and {d["details"]["arch"] for d in doc} == {"HOPPER"}
    code, out = run(gpu["ppcie"], "--tee", "nvidia")
    assert code == 0 and out.count("VERIFIED tee=nvidia") == 8


@pytest.mark.parametrize(
    "args",
    [
        ["{quote}", "--tee", "sgx"],
        ["{quote}", "--tee", "tdx", "--collateral", "{col}", "--at", "yesterday"],
        ["{quote}", "--tee", "tdx", "--collateral", "{col}", "--at", "2025-06-20T00:00:00"],
        ["{quote}", "--tee", "tdx", "--collateral", "{col}", "--report-data", "zz"],
        ["{quote}", "--tee", "tdx", "--collateral", "{col}", "--report-data", "00"],
        ["{quote}", "--tee", "tdx", "--collateral", "{col}", "--nonce", "xyz"],
        ["{quote}", "--tee", "tdx", "--collateral", "{col}", "--nonce", "00" * 32],
        ["{quote}", "--tee", "tdx", "--collateral", "{col}", "--cert", "{col}"],
        ["{quote}", "--tee", "tdx", "--collateral", "{col}", "--policy", "{col}"],
        ["{quote}", "--tee", "tdx", "--collateral", "{col}", "--sim-key", "00"],
        ["{quote}"],
    ],
)
def test_usage_errors(tdx: dict[str, Path], args: list[str]) -> None:
    filled = [a.format(quote=tdx["quote"], col=tdx["col"]) for a in args]
    code, out = run(*filled)
    assert code == 2, out


@pytest.mark.parametrize(
    ("args", "missing"),
    [
        (["missing-file", "--tee", "tdx"], "evidence file missing-file"),
        (["{quote}", "--tee", "tdx", "--collateral", "missing.json"], "collateral file missing.json"),
        (["{quote}", "--tee", "tdx", "--cert", "nope.pem"], "certificate file nope.pem"),
        (
            ["{quote}", "--tee", "tdx", "--collateral", "{col}", "--policy", "missing.yaml"],
            "policy file missing.yaml",
        ),
    ],
)
def test_missing_input_exits_3_naming_the_file(tdx: dict[str, Path], args: list[str], missing: str) -> None:
    code, out = run(*[a.format(quote=tdx["quote"], col=tdx["col"]) for a in args])
    assert code == 3, out
    assert f"cannot read {missing}: No such file or directory" in out


def test_evidence_bytes() -> None:
    assert evidence_bytes(b"0xABcd\n") == b"\xab\xcd"
    assert evidence_bytes(b" ab cd \n") == b"\xab\xcd"
    assert evidence_bytes(b"abc") == b"abc"
    assert evidence_bytes(b"\x04\x00\x02\x00") == b"\x04\x00\x02\x00"
    assert evidence_bytes(b'[{"a": 1}]') == b'[{"a": 1}]'
