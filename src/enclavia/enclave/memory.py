"""The enclave's memory size: parse it, enforce it, report it, and refuse models that will not fit.

A Nitro enclave or a confidential VM has a fixed memory size; the simulated enclave gets one too
(``enclavia serve --enclave-memory 512MiB``). How the limit is enforced, in order of preference:

``cgroup_v2``
    ``memory.max`` (and ``memory.swap.max = 0``) on a child of a delegated cgroup v2 directory named by
    ``ENCLAVIA_ENCLAVE_CGROUP``. Counts resident memory and page cache, like a real enclave's RAM. Used when
    that directory exists and accepts the child (mode ``auto`` or ``cgroup``).
``rlimit_data`` (the default elsewhere)
    ``RLIMIT_DATA``: private writable memory (heap, arrays, weights read into memory, KV caches, thread
    stacks). Over the limit, allocations fail (``MemoryError`` in Python, an allocator error in torch or
    llama.cpp), so a request fails with ``enclave.memory_exhausted`` instead of the process being killed.
    Code pages of shared libraries are not counted; the start check counts them (see ``need``).
``rlimit_as``
    ``RLIMIT_AS``: address space. Only on request: torch maps far more than it touches (the embedding model
    needs about 1.1 GiB of address space for 0.6 GiB resident), so an address-space limit refuses models that
    would fit an enclave of that size.

Before any model is loaded, :func:`check_fits` compares the estimated need with the limit and raises
:class:`~enclavia.errors.ModelTooLargeError` naming both; the estimate is the memory this process uses now
(measured: interpreter and enclave code) plus, per runtime, a fixed cost and, per artifact, its size times a
factor, both measured by ``benchmarks/memory_budget.py --calibrate`` (x86-64 Linux, CPython 3.11, one
BLAS/OpenMP thread). The enclave pins BLAS and OpenMP pools to one thread before numpy loads
(:data:`THREAD_ENV`): their per-thread buffers would otherwise make private memory grow with the host's core
count. ``enclavia fit`` measures the real peak under the limit.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import re
import resource
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from enclavia.errors import ModelTooLargeError

MIB: Final = 1 << 20
CGROUP_ENV: Final = "ENCLAVIA_ENCLAVE_CGROUP"
MODES: Final = ("auto", "cgroup", "rlimit-data", "rlimit-as")
THREAD_ENV: Final = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
# Headroom on top of the estimate for request working memory (batches, parsing, crypto buffers).
HEADROOM: Final = 1.10

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?i?B?)?\s*$", re.IGNORECASE)
_UNITS: Final = {
    "": MIB,  # a bare number is MiB, as nitro-cli's --memory
    "b": 1,
    "k": 1 << 10,
    "kib": 1 << 10,
    "kb": 1000,
    "m": MIB,
    "mib": MIB,
    "mb": 1000**2,
    "g": 1 << 30,
    "gib": 1 << 30,
    "gb": 1000**3,
    "t": 1 << 40,
    "tib": 1 << 40,
    "tb": 1000**4,
}


def parse_size(text: str) -> int:
    """``512MiB``, ``1.5GiB``, ``800M`` (binary), ``800MB`` (decimal), ``512`` (MiB) -> bytes."""
    m = _SIZE.match(text)
    if m is None:
        raise ValueError("memory size must look like 512MiB, 2GiB or 800MB")
    factor = _UNITS.get((m.group(2) or "").lower())
    if factor is None:
        raise ValueError("unknown memory unit")
    value = int(float(m.group(1)) * factor)
    if value < 16 * MIB:
        raise ValueError("memory size must be at least 16 MiB")
    return value


def mib(n: int) -> float:
    return round(n / MIB, 1)


# -- reading usage -------------------------------------------------------------------------------


@dataclass(frozen=True)
class MemoryStatus:
    """From /proc/<pid>/status, in bytes: resident now and at peak, private data, address space."""

    rss: int
    peak_rss: int
    data: int
    vm_size: int
    vm_peak: int


def read_status(pid: int | str = "self") -> MemoryStatus:
    fields: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in {"VmRSS", "VmHWM", "VmData", "VmSize", "VmPeak"}:
                fields[key] = int(value.split()[0]) * 1024
    return MemoryStatus(
        rss=fields.get("VmRSS", 0),
        peak_rss=fields.get("VmHWM", 0),
        data=fields.get("VmData", 0),
        vm_size=fields.get("VmSize", 0),
        vm_peak=fields.get("VmPeak", 0),
    )


# -- enforcing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Enforcement:
    """How the limit is held. ``reason`` is a fixed code: why the cgroup was not used (or ``ok``)."""

    mechanism: str  # "cgroup_v2", "rlimit_data", "rlimit_as" or "none"
    limit: int  # bytes; 0 when no limit is configured
    reason: str
    cgroup: Path | None = None

    def usage(self) -> int:
        """The quantity the limit applies to, now."""
        if self.mechanism == "cgroup_v2" and self.cgroup is not None:
            with contextlib.suppress(OSError, ValueError):
                return int((self.cgroup / "memory.current").read_text())
        status = read_status()
        if self.mechanism == "rlimit_as":
            return status.vm_size
        if self.mechanism == "rlimit_data":
            return status.data
        return status.rss


NO_LIMIT: Final = Enforcement("none", 0, "not_configured")

M_ARENA_MAX: Final = -8


def _limit_malloc_arenas() -> None:
    """Two glibc malloc arenas instead of eight per core: less reserved and fragmented memory per thread."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(M_ARENA_MAX, 2)


def _cgroup_child(parent: Path, limit: int) -> Path:
    if "memory" not in (parent / "cgroup.controllers").read_text().split():
        raise PermissionError("memory controller not delegated")
    control = parent / "cgroup.subtree_control"
    if "memory" not in control.read_text().split():
        control.write_text("+memory")
    child = parent / f"enclavia-enclave-{os.getpid()}"
    child.mkdir(exist_ok=True)
    (child / "memory.max").write_text(str(limit))
    with contextlib.suppress(OSError):
        (child / "memory.swap.max").write_text("0")
    (child / "cgroup.procs").write_text(str(os.getpid()))
    return child


def enforce(limit: int | None, mode: str = "auto", cgroup_parent: str | None = None) -> Enforcement:
    """Apply ``limit`` (bytes) to this process. Call in the enclave process before loading models."""
    if mode not in MODES:
        raise ValueError("unknown memory enforcement mode")
    if not limit:
        return NO_LIMIT
    _limit_malloc_arenas()
    reason = "not_requested"
    parent = cgroup_parent if cgroup_parent is not None else os.environ.get(CGROUP_ENV)
    if mode in {"auto", "cgroup"}:
        if not parent:
            reason = "no_delegated_cgroup"
        else:
            try:
                child = _cgroup_child(Path(parent), limit)
                return Enforcement("cgroup_v2", limit, "ok", child)
            except PermissionError:
                reason = "eperm"
            except OSError:
                reason = "unavailable"
        if mode == "cgroup":
            raise PermissionError("cgroup v2 memory limit requested but not permitted")
    which = resource.RLIMIT_AS if mode == "rlimit-as" else resource.RLIMIT_DATA
    resource.setrlimit(which, (limit, limit))
    return Enforcement("rlimit_as" if mode == "rlimit-as" else "rlimit_data", limit, reason)


def planned(limit: int | None, mode: str = "auto") -> Enforcement:
    """The limit as the start check counts it, before it is applied (no side effects). A cgroup counts
    resident memory, which the check already takes as the larger of resident and private, as for the data
    rlimit; only the address-space mode counts differently."""
    if mode not in MODES:
        raise ValueError("unknown memory enforcement mode")
    if not limit:
        return NO_LIMIT
    return Enforcement("rlimit_as" if mode == "rlimit-as" else "rlimit_data", limit, "planned")


def pin_thread_pools(env: dict[str, str] | None = None) -> None:
    """One BLAS/OpenMP thread unless configured: must run before numpy or torch is imported."""
    target = os.environ if env is None else env
    for var in THREAD_ENV:
        target.setdefault(var, "1")


# -- estimating ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cost:
    """Bytes of resident, private (data) and address-space memory."""

    rss: int
    data: int
    vas: int

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.rss + other.rss, self.data + other.data, self.vas + other.vas)


def _mib(rss: float, data: float, vas: float) -> Cost:
    return Cost(int(rss * MIB), int(data * MIB), int(vas * MIB))


# Measured import cost of each runtime over a classifier-only enclave (MiB resident, private, address space;
# `benchmarks/memory_budget.py --calibrate`, x86-64 Linux, CPython 3.11, one BLAS/OpenMP thread).
RUNTIME_COST: Final = {
    "torch": _mib(233, 120, 474),
    "transformers": _mib(31, 24, 41),
    "spacy": _mib(63, 36, 91),
    "presidio": _mib(155, 163, 237),
    "llama.cpp": _mib(18, 1, 25),
}


@dataclass(frozen=True)
class Factor:
    """Memory per artifact byte (resident, private, address space) while loading and serving a request."""

    rss: float
    data: float
    vas: float

    def of(self, size: int) -> Cost:
        return Cost(int(self.rss * size), int(self.data * size), int(self.vas * size))


# Same calibration, per artifact byte, peak while loading and answering a representative request: linear JSON
# is parsed into Python floats first (about 6x); safetensors weights are copied into torch tensors; the spaCy
# model directory unpacks into vectors and tables; GGUF weights are read into memory (no mmap) plus a
# 2048-token KV cache.
ARTIFACT_FACTOR: Final = {
    "linear": Factor(6.0, 6.0, 6.0),
    # +1.15 since the files are read once into memory and loaded from those bytes (issue 13): peak measured
    # 545 MiB against 439 MiB with the memory-mapped load, for a 92 MB model directory
    "embeddings": Factor(4.1, 4.45, 8.05),
    "ner": Factor(3.6, 2.7, 2.7),
    "gguf": Factor(1.4, 1.95, 2.5),
}
RUNTIMES_FOR: Final = {
    "linear": (),
    "embeddings": ("torch", "transformers"),
    "ner": ("torch", "spacy", "presidio"),  # thinc imports torch when it is installed
    "gguf": ("llama.cpp",),
}


@dataclass(frozen=True)
class Artifact:
    name: str
    kind: str  # a key of ARTIFACT_FACTOR
    size: int  # bytes on disk


@dataclass(frozen=True)
class Need:
    baseline: Cost  # measured now: interpreter, enclave code, numpy
    runtimes: Cost
    artifacts: Cost

    @property
    def total(self) -> Cost:
        return self.baseline + self.runtimes + self.artifacts

    def counted(self, mechanism: str) -> int:
        """The need in the units the limit is held in, with headroom. Resident and private memory both
        count for the data rlimit and cgroups (resident includes library code a real enclave holds)."""
        t = self.total
        raw = t.vas if mechanism == "rlimit_as" else max(t.rss, t.data)
        return int(raw * HEADROOM)


def _tree_size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def artifacts_for(
    model_dir: Path, *, embeddings: bool, classification: bool, chat_model: Path | None
) -> list[Artifact]:
    """The artifacts an enclave with this configuration loads, with their sizes (no loading)."""
    found: list[Artifact] = []
    if model_dir.is_dir():
        for path in sorted(model_dir.iterdir()):
            if path.suffix == ".json" or path.name.endswith(".json.sealed"):
                found.append(Artifact(path.name, "linear", path.stat().st_size))
    if embeddings:
        from enclavia.inference.embeddings import MODEL_ID
        from enclavia.inference.embeddings import model_dir as emb_dir

        found.append(Artifact(MODEL_ID, "embeddings", _tree_size(emb_dir())))
    if classification:
        from enclavia.protect.detect import NER_MODEL_ID, ner_model_dir

        found.append(Artifact(NER_MODEL_ID, "ner", _tree_size(ner_model_dir())))
    if chat_model is not None:
        found.append(Artifact(chat_model.name, "gguf", chat_model.stat().st_size))
    return found


def estimate(artifacts: Sequence[Artifact], baseline: MemoryStatus | None = None) -> Need:
    now = baseline or read_status()
    runtimes: set[str] = set()
    load = Cost(0, 0, 0)
    for a in artifacts:
        runtimes.update(RUNTIMES_FOR[a.kind])
        load = load + ARTIFACT_FACTOR[a.kind].of(a.size)
    fixed = Cost(0, 0, 0)
    for name in sorted(runtimes):
        fixed = fixed + RUNTIME_COST[name]
    return Need(Cost(now.rss, now.data, now.vm_size), fixed, load)


def check_fits(enforcement: Enforcement, artifacts: Iterable[Artifact]) -> Need:
    """Raise ModelTooLargeError (need and limit in bytes) before loading anything that will not fit."""
    need = estimate(list(artifacts))
    if enforcement.limit and need.counted(enforcement.mechanism) > enforcement.limit:
        raise ModelTooLargeError(need.counted(enforcement.mechanism), enforcement.limit)
    return need


# -- metrics -------------------------------------------------------------------------------------


def register_metrics(registry: object, enforcement: Enforcement) -> None:
    """Gauges read from /proc/self/status at scrape time, and the configured limit."""
    from prometheus_client import CollectorRegistry, Gauge

    if not isinstance(registry, CollectorRegistry):
        raise TypeError("registry must be a prometheus CollectorRegistry")
    Gauge(
        "enclavia_enclave_memory_rss_bytes", "Enclave resident memory now (VmRSS)", registry=registry
    ).set_function(lambda: read_status().rss)
    Gauge(
        "enclavia_enclave_memory_peak_rss_bytes", "Enclave resident memory at peak (VmHWM)", registry=registry
    ).set_function(lambda: read_status().peak_rss)
    Gauge(
        "enclavia_enclave_memory_usage_bytes",
        "Enclave memory as the limit counts it (private data, address space or cgroup usage)",
        registry=registry,
    ).set_function(enforcement.usage)
    Gauge(
        "enclavia_enclave_memory_limit_bytes",
        "Configured enclave memory size (0: none) and how it is enforced",
        ["mechanism"],
        registry=registry,
    ).labels(enforcement.mechanism).set(enforcement.limit)
