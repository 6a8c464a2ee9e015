"""How the enclave process is started: fixed interpreter flags and an allow-listed environment.

Shared by the host supervisor (which builds the command) and the enclave (which checks, before anything else
runs, that it was started this way, and measures the flags and the allow-list into its manifest). The host is
the adversary here: its environment can carry ``PYTHONPATH`` with a ``sitecustomize.py``, ``PYTHONHOME``,
``PYTHONSTARTUP``, ``LD_PRELOAD``. Isolated mode (``-I``) makes the interpreter ignore every ``PYTHON*``
variable, the user site directory and the current directory; the allow-list drops everything else that is not
an operational setting of the enclave itself (tracing export, the delegated cgroup, thread pool sizes).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Final, Protocol

ENTRY_MODULE: Final = "enclavia.enclave.main"
# -I: isolated (implies -E: no PYTHON* variables, -s: no user site, -P: no script or cwd on sys.path).
# -B: write no .pyc files into the (host-writable) install.
INTERPRETER_FLAGS: Final = ("-I", "-B")
# Names the enclave reads (operational settings, no code paths) and locale/time basics. Nothing else crosses.
ENV_ALLOW: Final = frozenset(
    {
        "ENCLAVIA_TRACE_EXPORT",
        "ENCLAVIA_ENCLAVE_CGROUP",
        "ENCLAVIA_NO_NETNS",
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
        "NUMEXPR_NUM_THREADS",
        "VECLIB_MAXIMUM_THREADS",
        "LANG",
        "LC_ALL",
        "LC_CTYPE",  # also set by the interpreter itself (PEP 538 locale coercion)
        "TZ",
    }
)
# Set by the enclave itself before any model library loads (enclavia.inference.embeddings, memory pinning).
ENV_SET_BY_ENCLAVE: Final = frozenset({"HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"})


class InterpreterFlags(Protocol):
    """The parts of ``sys.flags`` the start check reads."""

    @property
    def isolated(self) -> int: ...
    @property
    def ignore_environment(self) -> int: ...
    @property
    def no_user_site(self) -> int: ...
    @property
    def dont_write_bytecode(self) -> int: ...


def enclave_command(python: str, args: Sequence[str]) -> list[str]:
    return [python, *INTERPRETER_FLAGS, "-m", ENTRY_MODULE, *args]


def enclave_env(env: Mapping[str, str]) -> dict[str, str]:
    """The environment the enclave process gets: only allow-listed names from ``env``."""
    return {k: v for k, v in env.items() if k in ENV_ALLOW}


def measured() -> dict[str, object]:
    """The launch settings as they go into the manifest's configuration."""
    return {"entry": ENTRY_MODULE, "flags": list(INTERPRETER_FLAGS), "env_allow": sorted(ENV_ALLOW)}


def violations(flags: InterpreterFlags, env_names: Iterable[str]) -> list[str]:
    """What in this process differs from the fixed launch: fixed category names, never values."""
    out = []
    if not (flags.isolated and flags.ignore_environment and flags.no_user_site):
        out.append("not_isolated")
    if not flags.dont_write_bytecode:
        out.append("writes_bytecode")
    if any(name not in ENV_ALLOW | ENV_SET_BY_ENCLAVE for name in env_names):
        out.append("environment_not_allow_listed")
    return out
