"""Process hardening for the simulated enclave: not dumpable, no network namespace access."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from dataclasses import dataclass

PR_SET_DUMPABLE = 4
PR_GET_DUMPABLE = 3
CLONE_NEWNET = 0x40000000


@dataclass(frozen=True)
class HardeningReport:
    dumpable: bool
    netns: str  # "isolated" or "shared"
    reason: str  # why netns is shared, as a fixed code


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def harden() -> HardeningReport:
    libc = _libc()
    libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    dumpable = bool(libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0))
    netns, reason = "shared", "disabled"
    if os.environ.get("ENCLAVIA_NO_NETNS") != "1":
        if libc.unshare(CLONE_NEWNET) == 0:
            netns, reason = "isolated", "ok"
        else:
            reason = {1: "eperm", 22: "einval", 38: "enosys"}.get(ctypes.get_errno(), "errno")
    return HardeningReport(dumpable=dumpable, netns=netns, reason=reason)
