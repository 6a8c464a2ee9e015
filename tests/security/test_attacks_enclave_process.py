"""The host operator controls the environment and arguments of `enclavia serve`: none of it may reach the
enclave process (issue 13, point 3), and code the manifest does not cover stops the enclave (point 1).

Each attack runs against real processes: `enclavia serve` and the enclave it supervises, or the enclave
entry point started by hand the way a host that ignores the fixed launch would start it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import enclavia
from enclavia import channel, launch
from enclavia.client.sdk import Client
from enclavia.policy.document import parse_policy
from tests.support import Served, ensure_model, start_served

pytestmark = pytest.mark.slow

HOSTILE = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "LD_PRELOAD", "PYTHONINSPECT")


@dataclass
class Hostile:
    served: Served
    markers: Path


def _hook_dir(tmp: Path) -> tuple[Path, Path]:
    """A PYTHONPATH directory whose sitecustomize.py records every process that runs it."""
    hooks, markers = tmp / "hooks", tmp / "markers"
    hooks.mkdir()
    markers.mkdir()
    marker = f"os.path.join({str(markers)!r}, str(os.getpid()))"
    code = f"import os, sys\nopen({marker}, 'w').write(' '.join(sys.argv))\n"
    (hooks / "sitecustomize.py").write_text(code)
    (hooks / "startup.py").write_text(code)
    return hooks, markers


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    tmp = Path(tmp_path_factory.mktemp("hostile"))
    hooks, markers = _hook_dir(tmp)
    env = {
        "PYTHONPATH": str(hooks),
        "PYTHONSTARTUP": str(hooks / "startup.py"),
        "PYTHONINSPECT": "1",
        # The real prefix: the host process itself must still start; the enclave must not see it at all.
        "PYTHONHOME": f"{sys.base_prefix}:{sys.base_exec_prefix}",
        "LD_PRELOAD": str(tmp / "libhostile.so"),  # missing: ld.so warns and goes on; the name must not pass
        "ENCLAVIA_NOT_ALLOWED": "x",
    }
    served = start_served(tmp / "home", env=env)
    yield Hostile(served, markers)
    served.stop()


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = [item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item]
    return {k.decode(): v.decode(errors="replace") for k, v in pairs}


def test_the_attack_is_live_in_the_host(hostile: Hostile) -> None:
    # The host process ran the sitecustomize hook: the environment really carried the attack.
    assert (hostile.markers / str(hostile.served.proc.pid)).exists()


def test_no_hostile_variable_reaches_the_enclave_process(hostile: Hostile) -> None:
    pid = hostile.served.enclave_pid()
    env = _environ(pid)
    for name in (*HOSTILE, "ENCLAVIA_NOT_ALLOWED"):
        assert name not in env, name
    assert set(env) <= launch.ENV_ALLOW | launch.ENV_SET_BY_ENCLAVE
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert cmdline[1:3] == [b"-I", b"-B"]


def test_sitecustomize_never_runs_in_the_enclave(hostile: Hostile) -> None:
    pid = hostile.served.enclave_pid()
    assert not (hostile.markers / str(pid)).exists()
    ran = [p.read_text() for p in hostile.markers.iterdir()]
    assert not any(launch.ENTRY_MODULE in argv for argv in ran)


def test_the_attested_measurement_is_the_clean_one(hostile: Hostile) -> None:
    with Client(hostile.served.url, parse_policy(hostile.served.policy_text)) as client:
        enclave = client.attest()
    assert enclave.result.affirming
    assert enclave.bundle.manifest.config["process"] == launch.measured()


def _run_entry(tmp: Path, cmd_prefix: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    from enclavia.tee.simulated import init_platform_key

    init_platform_key(tmp / "sim")
    args = [
        "--socket",
        str(tmp / "e.sock"),
        "--model-dir",
        str(ensure_model()),
        "--sim-dir",
        str(tmp / "sim"),
    ]
    return subprocess.run(
        [*cmd_prefix, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def _refusal(done: subprocess.CompletedProcess[str]) -> dict[str, str]:
    assert done.returncode == channel.EXIT_REFUSED, done.stderr[-2000:]
    events = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert not [e for e in events if e["event"] == "enclave.ready"]
    (refused,) = [e for e in events if e["event"] == "enclave.refused"]
    return refused


def test_an_enclave_started_without_isolated_mode_refuses(tmp_path: Path) -> None:
    done = _run_entry(tmp_path, [sys.executable, "-m", launch.ENTRY_MODULE], dict(os.environ))
    refused = _refusal(done)
    assert refused["error_code"] == "enclave.unclean_process"
    assert "not_isolated" in refused["detail"]


def test_an_enclave_given_a_variable_outside_the_allow_list_refuses(tmp_path: Path) -> None:
    env = {"LD_PRELOAD": str(tmp_path / "libmissing.so"), "PYTHONPATH": str(tmp_path / "hooks")}
    done = _run_entry(tmp_path, launch.enclave_command(sys.executable, []), env)
    refused = _refusal(done)
    assert refused["error_code"] == "enclave.unclean_process"
    assert refused["detail"] == "environment_not_allow_listed"
    assert str(tmp_path) not in json.dumps(refused)  # names a category, never a value


def test_an_unmeasured_module_loaded_at_boot_stops_the_enclave(tmp_path: Path) -> None:
    """A copy of the package whose boot imports a module by a name the code does not spell (the AST
    closure cannot see it): the loaded-module start check refuses before anything is served."""
    copy = tmp_path / "src"
    shutil.copytree(
        Path(enclavia.__file__).parent, copy / "enclavia", ignore=shutil.ignore_patterns("__pycache__")
    )
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "hostile_helper.py").write_text("VALUE = 1\n")
    boot = copy / "enclavia" / "enclave" / "boot.py"
    boot.write_text(
        boot.read_text()
        + f"\nimport importlib as _il, sys as _sys\n_sys.path.append({str(outside)!r})\n"
        + "_il.import_module('hostile' + '_helper')\n"
    )
    runner = (
        f"import sys, runpy; sys.path.insert(0, {str(copy)!r}); "
        "sys.argv[0] = 'enclave'; runpy.run_module('enclavia.enclave.main', run_name='__main__')"
    )
    done = _run_entry(tmp_path, [sys.executable, *launch.INTERPRETER_FLAGS, "-c", runner], {})
    refused = _refusal(done)
    assert refused["error_code"] == "enclave.unmeasured_code"
    assert "hostile_helper" in refused["detail"]
