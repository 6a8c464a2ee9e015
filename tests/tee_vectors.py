"""Loading the TDX and NVIDIA vectors and the expectations their SOURCE.md states (parsed, not retyped)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path


def read_evidence(path: Path) -> bytes:
    """Binary file, or hex text (optionally 0x-prefixed) as several vectors ship."""
    raw = path.read_bytes()
    try:
        text = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        return raw
    if text.startswith(("0x", "0X")):
        text = text[2:]
    try:
        return bytes.fromhex(text)
    except ValueError:
        return raw


@dataclass(frozen=True)
class TdxCase:
    file: str
    collateral: str
    fields: dict[str, str]
    at: datetime
    ok: bool
    status: str | None
    advisories: list[str]
    error: str | None


_BULLET = re.compile(r"^- ([^:]+): `([^`]*)`\s*$")
_DCAP = re.compile(r"^- dcap-qvl [0-9.]+ verify\(quote, collateral, ([0-9TZ:-]+)\): `(.*)`\s*$")


def tdx_cases(vectors: Path) -> list[TdxCase]:
    text = (vectors / "tdx" / "dcap-qvl" / "SOURCE.md").read_text()
    cases = []
    for section in text.split("\n## ")[1:]:
        lines = section.splitlines()
        title = lines[0]
        file = title.split()[0]
        m = re.search(r"\+ (\S+\.json)", title)
        collateral = (
            m.group(1) if m else "tdx_quote_collateral.json"
        )  # SOURCE.md: same FMSPC, same collateral
        fields: dict[str, str] = {}
        at = None
        outcome = ""
        for line in lines[1:]:
            d = _DCAP.match(line)
            if d:
                at = datetime.fromisoformat(d.group(1))
                outcome = d.group(2)
                continue
            b = _BULLET.match(line)
            if b:
                fields[b.group(1).strip()] = b.group(2)
        assert at is not None, file
        ok = outcome.startswith("OK")
        status = advisories = error = None
        if ok:
            sm = re.search(r"status (\w+) advisories \[(.*)\]", outcome)
            assert sm
            status = sm.group(1)
            advisories = [a.strip().strip("'") for a in sm.group(2).split(",") if a.strip()]
        else:
            error = outcome.split("Verification failed: ", 1)[-1]
        cases.append(TdxCase(file, collateral, fields, at, ok, status, advisories or [], error))
    return cases


def nvidia_dir(vectors: Path) -> Path:
    return vectors / "nvidia" / "nvtrust"


def nvidia_sample_expectations(vectors: Path) -> dict[str, str]:
    """The ``- key   value`` lines of the hopperAttestationReport section."""
    text = (nvidia_dir(vectors) / "SOURCE.md").read_text()
    section = text.split("## hopperAttestationReport.txt", 1)[1].split("\n## ", 1)[0]
    out = {}
    for line in section.splitlines():
        m = re.match(r"^- (\w+)\s+(.+?)\s*$", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def nvidia_ppcie_nonce(vectors: Path) -> str:
    text = (nvidia_dir(vectors) / "SOURCE.md").read_text()
    m = re.search(r'JSON "nonce" field\s+([0-9a-f]{64})', text)
    assert m
    return m.group(1)
