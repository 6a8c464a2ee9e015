"""Simulated evidence wire format.

evidence   = CBOR array [payload: bstr, signature: bstr .size 64]
payload    = CBOR map {"format": "enclavia-sim-v1", "measurement": bstr .size 48,
                       "report_data": bstr .size 64, "timestamp_ms": uint, "debug": bool,
                       "platform_key": bstr .size 32}
signature  = Ed25519(platform_key, SIGNATURE_CONTEXT || payload)
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import cbor2

from enclavia.errors import EvidenceFormatError

FORMAT = "enclavia-sim-v1"
SIGNATURE_CONTEXT = b"enclavia-sim-evidence-v1\x00"
MAX_EVIDENCE_LEN = 4096
MEASUREMENT_LEN = 48
REPORT_DATA_LEN = 64
PLATFORM_KEY_LEN = 32
SIGNATURE_LEN = 64
_KEYS = {"format", "measurement", "report_data", "timestamp_ms", "debug", "platform_key"}


@dataclass(frozen=True)
class SimulatedReport:
    measurement: bytes
    report_data: bytes
    timestamp_ms: int
    debug: bool
    platform_key: bytes

    def encode(self) -> bytes:
        return cbor2.dumps(
            {
                "format": FORMAT,
                "measurement": self.measurement,
                "report_data": self.report_data,
                "timestamp_ms": self.timestamp_ms,
                "debug": self.debug,
                "platform_key": self.platform_key,
            },
            canonical=True,
        )


@dataclass(frozen=True)
class SimulatedEvidence:
    payload: bytes
    report: SimulatedReport
    signature: bytes

    def encode(self) -> bytes:
        return cbor2.dumps([self.payload, self.signature])


def _bytes(m: dict[str, Any], key: str, length: int) -> bytes:
    v = m.get(key)
    if not isinstance(v, bytes) or len(v) != length:
        raise EvidenceFormatError("simulated evidence field has the wrong type or length")
    return v


def _loads(data: bytes) -> Any:
    """Exactly one CBOR item and nothing after it (cbor2.loads ignores trailing bytes)."""
    fp = io.BytesIO(data)
    try:
        obj = cbor2.CBORDecoder(fp).decode()
    except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError, RecursionError, MemoryError):
        raise EvidenceFormatError("simulated evidence is not valid CBOR") from None
    if fp.tell() != len(data):
        raise EvidenceFormatError("trailing bytes after simulated evidence")
    return obj


def parse_report(payload: bytes) -> SimulatedReport:
    m = _loads(payload)
    if not isinstance(m, dict) or set(m) != _KEYS or m["format"] != FORMAT:
        raise EvidenceFormatError("simulated report has the wrong shape")
    ts = m["timestamp_ms"]
    if not isinstance(ts, int) or isinstance(ts, bool) or not 0 <= ts < 2**63:
        raise EvidenceFormatError("simulated report timestamp invalid")
    if not isinstance(m["debug"], bool):
        raise EvidenceFormatError("simulated report debug flag invalid")
    return SimulatedReport(
        measurement=_bytes(m, "measurement", MEASUREMENT_LEN),
        report_data=_bytes(m, "report_data", REPORT_DATA_LEN),
        timestamp_ms=ts,
        debug=m["debug"],
        platform_key=_bytes(m, "platform_key", PLATFORM_KEY_LEN),
    )


def parse_evidence(data: bytes) -> SimulatedEvidence:
    if not isinstance(data, bytes) or len(data) > MAX_EVIDENCE_LEN:
        raise EvidenceFormatError("simulated evidence too large")
    outer = _loads(data)
    if not isinstance(outer, list) or len(outer) != 2:
        raise EvidenceFormatError("simulated evidence is not a 2-element array")
    payload, signature = outer
    if not isinstance(payload, bytes) or not isinstance(signature, bytes) or len(signature) != SIGNATURE_LEN:
        raise EvidenceFormatError("simulated evidence elements have the wrong type or length")
    return SimulatedEvidence(payload=payload, report=parse_report(payload), signature=signature)
