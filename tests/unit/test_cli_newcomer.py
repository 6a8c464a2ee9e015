"""What a newcomer needs at hand: `--version`, a valid input for each bundled model, errors that name the
missing file, the bad argument or the unreachable URL, and the documented exit codes (enclavia.cli.exits)."""

from __future__ import annotations

import json
import socket
from importlib.metadata import version
from pathlib import Path

import pytest
from typer.testing import CliRunner

import enclavia
from enclavia.cli.core import dev_policy_text
from enclavia.cli.exits import EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE
from enclavia.cli.main import app
from enclavia.inference.chat import BUNDLED_MODEL_ID
from enclavia.inference.embeddings import MODEL_ID as EMBEDDING_ID
from enclavia.inference.linear import LinearClassifier
from enclavia.inference.training import write_artifact

runner = CliRunner()


def run(*args: str | Path, stdin: str | None = None) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args], input=stdin)
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("models")
    write_artifact(d / "clinical-risk.json")
    return d


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    p = tmp_path / "policy.yaml"
    p.write_text(dev_policy_text("ab" * 48, "cd" * 32), encoding="utf-8")
    return p


@pytest.fixture
def closed_url() -> str:
    with socket.socket() as s:  # bound, never listening: connections are refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_version_is_the_installed_distribution() -> None:
    code, out = run("--version")
    assert code == EXIT_OK
    assert out.strip() == f"enclavia {version('enclavia')}" == f"enclavia {enclavia.__version__}"


def test_model_example_is_a_valid_input_for_the_classifier(model_dir: Path) -> None:
    code, out = run("model", "example", "clinical-risk", "--model-dir", model_dir)
    assert code == EXIT_OK, out
    features = json.loads(out)["features"]
    model = LinearClassifier((model_dir / "clinical-risk.json").read_bytes())
    assert list(features) == list(model.feature_names) and len(features) == 30
    assert model.predict(features).label in model.classes


@pytest.mark.parametrize(("name", "field"), [(EMBEDDING_ID, "input"), (BUNDLED_MODEL_ID, "messages")])
def test_model_example_for_the_bundled_openai_models(name: str, field: str) -> None:
    code, out = run("model", "example", name)
    assert code == EXIT_OK, out
    body = json.loads(out)
    assert body["model"] == name and body[field]


def test_model_example_of_an_untrained_model_names_the_file(tmp_path: Path) -> None:
    code, out = run("model", "example", "clinical-risk", "--model-dir", tmp_path)
    assert code == EXIT_UNAVAILABLE
    assert f"{tmp_path / 'clinical-risk.json'} does not exist" in out
    assert "enclavia model train" in out


def test_model_example_refuses_a_path_as_a_name() -> None:
    code, out = run("model", "example", "../etc/passwd")
    assert code == EXIT_USAGE and "not a file name" in out


def test_predict_with_a_missing_input_names_the_file(policy: Path, closed_url: str) -> None:
    code, out = run("predict", closed_url, "clinical-risk", "--input", "no-such.json", "--policy", policy)
    assert code == EXIT_UNAVAILABLE
    assert "cannot read input file no-such.json: No such file or directory" in out


def test_predict_with_bad_json_names_the_argument_and_the_way_out(policy: Path, closed_url: str) -> None:
    code, out = run("predict", closed_url, "clinical-risk", "--input", "-", "--policy", policy, stdin="{oops")
    assert code == EXIT_USAGE
    assert "--input - is not JSON (line 1, column 2)" in out
    assert "enclavia model example clinical-risk" in out


@pytest.mark.parametrize("command", ["attest", "predict"])
def test_unreachable_host_is_exit_3_naming_the_url(command: str, policy: Path, closed_url: str) -> None:
    extra = ["clinical-risk", "--input", "-"] if command == "predict" else []
    code, out = run(command, closed_url, *extra, "--policy", policy, stdin='{"features": {}}')
    assert code == EXIT_UNAVAILABLE, out
    assert f"cannot reach the enclave host at {closed_url}" in out
    assert "REJECTED" not in out  # unreachable is not untrusted


def test_missing_policy_names_the_file(tmp_path: Path, closed_url: str) -> None:
    code, out = run("attest", closed_url, "--policy", tmp_path / "nope.yaml")
    assert code == EXIT_UNAVAILABLE
    assert f"cannot read policy file {tmp_path / 'nope.yaml'}" in out


def test_evidence_report_names_a_missing_deployment_file(tmp_path: Path) -> None:
    key = tmp_path / "report.key"
    assert run("evidence", "keygen", "--out", key)[0] == EXIT_OK
    code, out = run("evidence", "report", "--out", tmp_path / "r", "--deployment", "deploy/deployment.yaml",
                    "--signing-key", key)  # fmt: skip
    assert code == EXIT_UNAVAILABLE
    assert "cannot read --deployment file deploy/deployment.yaml: No such file or directory" in out


def test_evidence_report_with_an_unreachable_broker_names_it(tmp_path: Path, closed_url: str) -> None:
    key = tmp_path / "report.key"
    assert run("evidence", "keygen", "--out", key)[0] == EXIT_OK
    dep = tmp_path / "deployment.yaml"
    dep.write_text(f"name: t\ntee: simulated\nbroker: {{url: '{closed_url}'}}\n", encoding="utf-8")
    token = tmp_path / "admin.token"
    token.write_text("t" * 32, encoding="utf-8")
    code, out = run("evidence", "report", "--out", tmp_path / "r", "--deployment", dep, "--signing-key", key,
                    "--admin-token-file", token)  # fmt: skip
    assert code == EXIT_UNAVAILABLE, out
    assert f"cannot reach the broker at {closed_url}" in out
    assert "Traceback" not in out


def test_a_missing_admin_token_file_is_named(tmp_path: Path, closed_url: str) -> None:
    code, out = run("policy", "show", "--broker", closed_url, "--admin-token-file", tmp_path / "t")
    assert code == EXIT_UNAVAILABLE and f"cannot read --admin-token-file file {tmp_path / 't'}" in out


def test_an_unreachable_broker_is_not_a_refusal(tmp_path: Path, closed_url: str) -> None:
    token = tmp_path / "admin.token"
    token.write_text("t" * 32, encoding="utf-8")
    code, out = run("policy", "show", "--broker", closed_url, "--admin-token-file", token)
    assert code == EXIT_UNAVAILABLE and f"cannot reach the broker at {closed_url}" in out


def test_sim_policy_before_sim_init_names_the_key_and_the_command(tmp_path: Path) -> None:
    code, out = run("sim", "policy", "--dir", tmp_path / "sim", "--out", tmp_path / "p.yaml")
    assert code == EXIT_UNAVAILABLE
    assert f"no simulated platform key file {tmp_path / 'sim' / 'platform_key.pem'}" in out
    assert "enclavia sim init" in out


@pytest.mark.parametrize("command", [["sim", "policy"], ["serve"]])
def test_a_missing_classification_manifest_is_named(command: list[str], tmp_path: Path) -> None:
    assert run("sim", "init", "--dir", tmp_path / "sim")[0] == EXIT_OK
    extra = ["--dir", tmp_path / "sim"] if command[0] == "sim" else ["--state-dir", tmp_path]
    code, out = run(*command, *extra, "--classification", tmp_path / "nope.yaml")
    assert code == EXIT_UNAVAILABLE and f"no --classification file {tmp_path / 'nope.yaml'}" in out


def test_an_invalid_classification_manifest_is_a_usage_error(tmp_path: Path) -> None:
    assert run("sim", "init", "--dir", tmp_path / "sim")[0] == EXIT_OK
    bad = tmp_path / "bad.yaml"
    bad.write_text("classes: 3\n", encoding="utf-8")
    code, out = run(
        "sim", "policy", "--dir", tmp_path / "sim", "--out", tmp_path / "p.yaml", "--classification", bad
    )
    assert code == EXIT_USAGE and f"--classification {bad}:" in out


@pytest.mark.parametrize(
    "args",
    [["policy", "check", "nope.yaml"], ["evidence", "diagram", "--deployment", "nope.yaml"]],
)
def test_other_commands_name_their_missing_file(args: list[str]) -> None:
    code, out = run(*args)
    assert code == EXIT_UNAVAILABLE and "nope.yaml: No such file or directory" in out


def test_model_train_into_an_unwritable_place_names_it() -> None:
    code, out = run("model", "train", "--out", "/proc/no-such-dir/x.json")
    assert code == EXIT_UNAVAILABLE and "cannot write --out /proc/no-such-dir/x.json" in out


def test_a_bad_argument_is_named(policy: Path, closed_url: str) -> None:
    code, out = run("attest", closed_url, "--policy", policy, "--nonce", "zz")
    assert code == EXIT_USAGE and "--nonce must be hex" in out
