"""Simulated TEE attester: a software platform key signs (measurement, report_data, time).

DEV ONLY. Anyone who can read the platform key file can forge evidence; the simulated TEE shows the
protocol, not hardware isolation. Production policies refuse it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from enclavia.attestation.claims import Tee
from enclavia.attestation.platforms.simulated.abi import (
    SIGNATURE_CONTEXT,
    SimulatedEvidence,
    SimulatedReport,
)
from enclavia.crypto.signing import SigningKey
from enclavia.tee.base import Evidence

PLATFORM_KEY_FILE = "platform_key.pem"
DEV_WARNING = (
    "simulated TEE platform key: DEVELOPMENT ONLY. It is a software key on this machine; anyone who can "
    "read it can forge evidence. No production policy accepts it."
)


def init_platform_key(sim_dir: Path, *, force: bool = False) -> bytes:
    """Create the software platform key (0600) and return its public key."""
    sim_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = sim_dir / PLATFORM_KEY_FILE
    if path.exists() and not force:
        return load_platform_key(sim_dir).public_bytes
    key = SigningKey.generate()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.to_pem())
    return key.public_bytes


def load_platform_key(sim_dir: Path) -> SigningKey:
    path = sim_dir / PLATFORM_KEY_FILE
    if not path.is_file():
        raise FileNotFoundError("simulated platform key missing: run `enclavia sim init`")
    return SigningKey.from_pem(path.read_bytes())


@dataclass
class SimulatedAttester:
    platform_key: SigningKey
    measurement: bytes
    debug: bool = False
    clock: Callable[[], float] = time.time
    tee: Tee = Tee.SIMULATED

    def attest(self, report_data: bytes) -> Evidence:
        if len(report_data) != 64:
            raise ValueError("report_data must be 64 bytes")
        report = SimulatedReport(
            measurement=self.measurement,
            report_data=report_data,
            timestamp_ms=int(self.clock() * 1000),
            debug=self.debug,
            platform_key=self.platform_key.public_bytes,
        )
        payload = report.encode()
        signature = self.platform_key.sign(SIGNATURE_CONTEXT + payload)
        ev = SimulatedEvidence(payload=payload, report=report, signature=signature)
        return Evidence(tee=Tee.SIMULATED, evidence=ev.encode(), certificates=(report.platform_key,))
