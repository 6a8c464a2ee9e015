"""Every documented command runs: the `sh` blocks of README.md and docs/ (tests/docs/runner.py, ADR 0011)."""

from __future__ import annotations

import os
import socket
import textwrap
from pathlib import Path

import pytest

from tests.docs.runner import REPO, pages, parse, ports_in_use, run_page

PAGES = {p.relative_to(REPO).as_posix(): parse(p.read_text(encoding="utf-8")) for p in pages()}
SHELL_ALIASES = {"bash", "shell", "console", "shell-session", "zsh"}  # would silently escape the runner
RUNNABLE = sorted(name for name, blocks in PAGES.items() if any(b.runnable for b in blocks))


def _report(page: str, run_output: str, what: str) -> str:
    tail = "\n".join(run_output.splitlines()[-60:])
    return f"{page}: {what}\n--- last output ---\n{tail}"


@pytest.mark.slow
@pytest.mark.parametrize("page", RUNNABLE)
def test_page_runs(page: str, tmp_path: Path) -> None:
    busy = ports_in_use(PAGES[page])
    assert not busy, f"{page} starts services on 127.0.0.1 ports {busy}, where something already listens"
    run = run_page(PAGES[page], page, tmp_path)
    assert run.returncode == 0, _report(page, run.output, f"the block at {run.failed_block()} failed")
    assert "Traceback" not in run.output, _report(page, run.output, "a command printed a Python traceback")


def test_the_runner_has_pages_to_run() -> None:
    assert {"README.md", "docs/quickstart.md", "docs/releasing.md"} <= set(PAGES)
    assert len(RUNNABLE) >= 4


@pytest.mark.parametrize("page", sorted(PAGES))
def test_every_fence_says_what_it_holds(page: str) -> None:
    """A bare fence is neither run nor marked: each says `sh` (typed by a user), or `text`, `json`, ..."""
    bare = [b.line for b in PAGES[page] if not b.info]
    assert not bare, f"{page}: fences without an info string at lines {bare}"
    shells = [b.line for b in PAGES[page] if b.info in SHELL_ALIASES]
    assert not shells, f"{page}: commands go in `sh` blocks (run) or `text` (output), lines {shells}"


@pytest.mark.parametrize("page", sorted(PAGES))
def test_every_norun_gives_a_reason_and_precedes_a_sh_block(page: str) -> None:
    for b in PAGES[page]:
        if b.norun is not None:
            assert b.norun, f"{page}:{b.line}: norun without a reason"
            assert b.info == "sh", f"{page}:{b.line}: norun marks a {b.info!r} block, which never runs"


def test_parse_reads_info_norun_and_indented_fences() -> None:
    text = textwrap.dedent(
        """\
        intro
        ```sh
        echo one
        ```
        <!-- norun: needs real hardware -->
        ```sh
        nitro-cli describe-enclaves
        ```
        - a list item:
          ```text
          output
          ```
        ````sh
        cat <<'EOF'
        ```
        EOF
        if true; then
            echo indented
        fi
        ````
        """
    )
    blocks = parse(text)
    assert [(b.line, b.info, b.runnable) for b in blocks] == [
        (2, "sh", True),
        (6, "sh", False),
        (10, "text", False),
        (13, "sh", True),
    ]
    assert blocks[1].norun == "needs real hardware"
    assert blocks[2].body == "output"
    assert blocks[3].body == "cat <<'EOF'\n```\nEOF\nif true; then\n    echo indented\nfi"


def _page(text: str) -> list:  # type: ignore[type-arg]
    return parse(textwrap.dedent(text))


def test_a_failing_command_fails_the_page_and_names_its_block(tmp_path: Path) -> None:
    blocks = _page(
        """\
        ```sh
        export GREETING=hello
        ```
        ```sh
        test "$GREETING" = hello      # state carries from block to block
        false
        echo never
        ```
        """
    )
    run = run_page(blocks, "page.md", tmp_path)
    assert run.returncode == 1
    assert run.failed_block() == "page.md:4"
    assert "never" not in run.output


def test_a_failure_inside_a_pipeline_fails_the_page(tmp_path: Path) -> None:
    run = run_page(_page("```sh\nfalse | cat\n```\n"), "p.md", tmp_path)
    assert run.returncode != 0


def test_norun_and_text_blocks_do_not_run(tmp_path: Path) -> None:
    blocks = _page(
        """\
        <!-- norun: would fail here -->
        ```sh
        exit 7
        ```
        ```text
        exit 8
        ```
        ```sh
        echo ran-ok
        ```
        """
    )
    run = run_page(blocks, "p.md", tmp_path)
    assert run.returncode == 0, run.output
    assert "ran-ok" in run.output


def test_scratch_state_path_and_repo_variable(tmp_path: Path) -> None:
    blocks = _page(
        """\
        ```sh
        test "$(pwd)" != "$ENCLAVIA_REPO"
        test -f "$ENCLAVIA_REPO/pyproject.toml"
        command -v enclavia | grep -q "$(dirname "$(command -v python)")"
        touch made-here
        ```
        """
    )
    run = run_page(blocks, "p.md", tmp_path)
    assert run.returncode == 0, run.output
    assert (tmp_path / "work" / "made-here").exists()


def test_background_services_are_stopped_at_the_end(tmp_path: Path) -> None:
    blocks = _page(
        """\
        ```sh
        sleep 300 &
        echo $! > bg.pid
        ( setsid sleep 301 & echo $! > orphan.pid )
        ```
        """
    )
    run = run_page(blocks, "p.md", tmp_path)
    assert run.returncode == 0, run.output
    for name in ("bg.pid", "orphan.pid"):  # the second left its parent and its session: still found
        pid = int((tmp_path / "work" / name).read_text())
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_ports_in_use_sees_a_listener() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        blocks = _page(f"```sh\ncurl http://127.0.0.1:{port}/healthz\n```\n```text\n127.0.0.1:1\n```\n")
        assert ports_in_use(blocks) == [port]
    assert ports_in_use(blocks) == []


def test_a_page_past_its_time_fails(tmp_path: Path) -> None:
    run = run_page(_page("```sh\nsleep 30\n```\n"), "p.md", tmp_path, timeout_s=1)
    assert run.returncode == 124
    assert "ran past" in run.output
