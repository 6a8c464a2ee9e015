"""Run one page's script in bash, then stop every process the page started.

Usage: python page_shell.py SCRIPT TIMEOUT_S. This process becomes a child subreaper (Linux prctl), so
whatever the page starts in the background (`enclavia serve ... &`, and the enclave that serve spawns) stays
our descendant even when its parent exits; at the end all descendants get SIGTERM, then SIGKILL. Exit
status: the script's, or 124 when it ran past TIMEOUT_S.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
TERM_GRACE_S = 10.0


def descendants(root: int) -> list[int]:
    parent: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # exited meanwhile
        # pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ')'
        parent[int(stat.parent.name)] = int(text.rpartition(")")[2].split()[1])
    found, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        children = [p for p, pp in parent.items() if pp == pid]
        found += children
        frontier += children
    return found


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def stop_descendants() -> None:
    me = os.getpid()
    _signal_all(descendants(me), signal.SIGTERM)
    deadline = time.monotonic() + TERM_GRACE_S
    while descendants(me) and time.monotonic() < deadline:
        _reap()
        time.sleep(0.1)
    while left := descendants(me):
        _signal_all(left, signal.SIGKILL)
        _reap()
        time.sleep(0.05)


def main() -> int:
    script, timeout_s = sys.argv[1], float(sys.argv[2])
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    proc = subprocess.Popen(["bash", "--noprofile", "--norc", script])
    try:
        rc = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        print(f"\n@@ docs-runner: page ran past {timeout_s:.0f} s", file=sys.stderr, flush=True)
        proc.kill()
        proc.wait()
        rc = 124
    stop_descendants()
    return rc


if __name__ == "__main__":
    sys.exit(main())
