"""Helpers shared by integration tests: run `enclavia serve` as a real separate process."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
MODEL_DIR = REPO / "build" / "models"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_model() -> Path:
    path = MODEL_DIR / "clinical-risk.json"
    if not path.exists():
        from enclavia.inference.training import write_artifact

        write_artifact(path)
    return MODEL_DIR


@dataclass
class Served:
    url: str
    home: Path
    proc: subprocess.Popen[bytes]
    log_path: Path
    policy_text: str
    platform_key: bytes

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def enclave_pid(self) -> int:
        """The enclave process: the host's child running enclavia.enclave.main."""
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmd = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == self.proc.pid and b"enclavia.enclave.main" in cmd:
                return int(entry.name)
        raise LookupError("enclave process not found")

    def wait_healthy(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("host exited:\n" + self.logs()[-3000:])
            try:
                if httpx.get(self.url + "/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError("host not healthy")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def chat_model_path() -> Path:
    """The bundled GGUF chat model, assembled once per checkout under build/ (digest-checked)."""
    from enclavia.inference.chat import bundled_model_path

    return bundled_model_path(REPO / "build" / "gguf")


def start_served(
    home: Path,
    *,
    embeddings: bool = False,
    classification: Path | None = None,
    chat: bool = False,
    extra_args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> Served:
    from enclavia.cli.core import dev_policy_text
    from enclavia.enclave.boot import EnclaveConfig, load_models, manifest_for
    from enclavia.tee.simulated import init_platform_key

    model_dir = ensure_model()
    pub = init_platform_key(home / "sim")
    chat_model = chat_model_path() if chat else None
    manifest = manifest_for(
        EnclaveConfig(
            model_dir,
            home / "sim",
            embeddings=embeddings,
            classification=classification,
            chat_model=chat_model,
        ),
        load_models(model_dir),
    )
    port = free_port()
    log_path = home / "serve.log"
    env = {**os.environ, "ENCLAVIA_HOME": str(home), **(env or {})}
    cmd = [
        sys.executable,
        "-m",
        "enclavia.cli.main",
        "serve",
        "--listen",
        f"127.0.0.1:{port}",
        "--model-dir",
        str(model_dir),
        "--state-dir",
        str(home),
        *(["--embeddings"] if embeddings else []),
        *(["--classification", str(classification)] if classification else []),
        *(["--chat-model", str(chat_model)] if chat_model else []),
        *extra_args,
    ]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    served = Served(
        url=f"http://127.0.0.1:{port}",
        home=home,
        proc=proc,
        log_path=log_path,
        policy_text=dev_policy_text(manifest.digest().hex(), pub.hex()),
        platform_key=pub,
    )
    (home / "dev-policy.yaml").write_text(served.policy_text)
    served.wait_healthy()
    return served


def process_memory_contains(pid: int, needle: bytes) -> bool:
    """Scan every readable mapping of a process (needs ptrace rights: root or same user)."""
    maps = Path(f"/proc/{pid}/maps").read_text().splitlines()
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for line in maps:
            parts = line.split()
            if "r" not in parts[1] or (
                len(parts) > 5 and parts[5] in {"[vvar]", "[vsyscall]", "[vvar_vclock]"}
            ):
                continue
            start, end = (int(x, 16) for x in parts[0].split("-"))
            try:
                mem.seek(start)
                chunk = mem.read(end - start)
            except (OSError, ValueError, OverflowError):
                continue
            if chunk and needle in chunk:
                return True
    return False


SECRETISH = re.compile(r"canary-[0-9a-f]{32}")
