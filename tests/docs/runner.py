"""The docs runner: every `sh` block of README.md and docs/**/*.md runs, in page order, in one bash per page.

Convention (ADR 0011): a command a user is meant to type goes in a fenced block with info string `sh`; output
and illustrations use `text` (or the language they show). A `sh` block whose line just before the fence is
`<!-- norun: <reason> -->` is not run (real hardware, cloud accounts, clusters, `make test` itself).

Each page runs in a fresh scratch directory (the cwd, and HOME beside it), with the virtualenv's bin first on
PATH (so `enclavia` is the one under test) and the repository path in $ENCLAVIA_REPO for commands that need
its files. Every block runs under `set -euo pipefail`: the first failing command fails the page, and the
report names the block's line. Processes the page starts in the background are stopped when it ends.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PAGE_SHELL = Path(__file__).with_name("page_shell.py")
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)")
NORUN = re.compile(r"^\s*<!--\s*norun:\s*(?P<reason>.*?)\s*-->\s*$")
MARK = "@@ docs-runner block"
LOOPBACK_PORT = re.compile(r"127\.0\.0\.1:(\d{2,5})\b")


@dataclass(frozen=True)
class Block:
    line: int  # 1-based line of the opening fence
    info: str
    body: str
    norun: str | None  # the reason, when the line before the fence is a norun marker

    @property
    def runnable(self) -> bool:
        return self.info == "sh" and self.norun is None


def parse(text: str) -> list[Block]:
    """Fenced blocks in order (CommonMark fences: ``` or ~~~, closed by the same run or longer)."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        fence, indent = m["fence"], len(m["indent"])
        close = re.compile(rf"^\s*{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        end = next((j for j in range(i + 1, len(lines)) if close.match(lines[j])), len(lines))
        body = "\n".join(_dedent(line, indent) for line in lines[i + 1 : end])
        prev = NORUN.match(lines[i - 1]) if i > 0 else None
        blocks.append(Block(line=i + 1, info=m["info"], body=body, norun=prev["reason"] if prev else None))
        i = end + 1
    return blocks


def _dedent(line: str, indent: int) -> str:
    """Inside a fence indented by a list item, each line loses up to that much leading space (CommonMark)."""
    n = len(line) - len(line.lstrip(" "))
    return line[min(n, indent) :]


def pages() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def script_for(blocks: list[Block], page: str) -> str:
    parts = ["set -euo pipefail"]
    for b in blocks:
        if b.runnable:
            parts.append(f"printf '\\n{MARK} %s:%d\\n' {page!r} {b.line} >&2")
            parts.append(b.body)
    parts.append(f"printf '\\n{MARK} end\\n' >&2")
    return "\n".join(parts) + "\n"


@dataclass(frozen=True)
class PageRun:
    returncode: int
    output: str

    def failed_block(self) -> str | None:
        marks = [line for line in self.output.splitlines() if line.startswith(MARK)]
        if self.returncode == 0:
            return None
        return marks[-1].removeprefix(MARK).strip() if marks else "before the first block"


def page_env(scratch: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENCLAVIA_", "PYTEST_"))}
    venv_bin = str(Path(sys.executable).parent)
    env.update(
        PATH=f"{venv_bin}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}",
        HOME=str(scratch / "home"),
        ENCLAVIA_REPO=str(REPO),
        PYTHONUNBUFFERED="1",
    )
    return env


def ports_in_use(blocks: list[Block]) -> list[int]:
    """Loopback ports the page's commands name that something already listens on (it would answer for us)."""
    busy = []
    for port in sorted({int(p) for b in blocks if b.runnable for p in LOOPBACK_PORT.findall(b.body)}):
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                busy.append(port)
    return busy


def run_page(blocks: list[Block], page: str, scratch: Path, timeout_s: float = 300.0) -> PageRun:
    work = scratch / "work"
    work.mkdir(parents=True)
    (scratch / "home").mkdir()
    script = scratch / "page.sh"
    script.write_text(script_for(blocks, page), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, str(PAGE_SHELL), str(script), str(timeout_s)],
        cwd=work,
        env=page_env(scratch),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=timeout_s + 60,
        check=False,
    )
    return PageRun(proc.returncode, proc.stdout.decode("utf-8", "replace"))
