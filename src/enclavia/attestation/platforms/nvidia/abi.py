"""NVIDIA GPU attestation report: an SPDM 1.1 GET_MEASUREMENTS request followed by its MEASUREMENTS response
(DMTF DSP0274 1.1, sections 10.11-10.12), parsed exactly.

::

    report   = request(37) || response
    request  = 0x11 || 0xE0 || param1 (0x01: signature requested) || param2 (0xFF: all measurements)
               || nonce(32) || slot_id(1)
    response = 0x11 || 0x60 || param1 || param2 (slot) || number_of_blocks(1) || record_len(3, LE)
               || measurement record(record_len) || nonce(32) || u16 opaque_len || opaque data(opaque_len)
               || signature(96: ECDSA P-384 r||s over SHA-384(request || response without the signature))
    measurement block = index(1) || spec(1, 0x01: DMTF) || u16 size || DMTF value
    DMTF value        = type(1: bit 7 raw bit stream, bits 0-6 kind) || u16 value_size || value(value_size)
    NVIDIA opaque data = (u16 type || u16 size || value(size))*   (driver version, VBIOS version, ...)

All integers little-endian. Every length is checked against the bytes present; the report must be consumed
exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

from enclavia.errors import EvidenceFormatError

MAX_REPORT_LEN = 64 * 1024
SPDM_VERSION_11 = 0x11
GET_MEASUREMENTS = 0xE0
MEASUREMENTS = 0x60
REQUEST_LEN = 37
NONCE_LEN = 32
SIGNATURE_LEN = 96  # ECDSA P-384 r||s
PARAM1_SIGNATURE_REQUESTED = 0x01
PARAM2_ALL_MEASUREMENTS = 0xFF
MEASUREMENT_SPEC_DMTF = 0x01
MAX_OPAQUE_LEN = 1024  # DSP0274 1.1: OpaqueLength shall not exceed 1024

OPAQUE_FIELD_NAMES: dict[int, str] = {
    1: "cert_issuer_name",
    2: "cert_authority_key_identifier",
    3: "driver_version",
    4: "gpu_info",
    5: "sku",
    6: "vbios_version",
    7: "manufacturer_id",
    8: "tamper_detection",
    9: "smc",
    10: "vpr",
    11: "nvdec0_status",
    12: "msrscnt",
    13: "cprinfo",
    14: "board_id",
    15: "chip_sku",
    16: "chip_sku_mod",
    17: "project",
    18: "project_sku",
    19: "project_sku_mod",
    20: "fwid",
    21: "protected_pcie_status",
    22: "switch_pdi",
    23: "floorswept_ports",
    24: "position_id",
    25: "lock_switch_status",
    32: "gpu_link_conn",
    33: "sys_enable_status",
    34: "opaque_data_version",
    35: "chip_info",
}
OPAQUE_DRIVER_VERSION = 3
OPAQUE_VBIOS_VERSION = 6


@dataclass(frozen=True)
class SpdmGetMeasurementsRequest:
    version: int
    param1: int
    param2: int
    nonce: bytes
    slot_id: int


@dataclass(frozen=True)
class MeasurementBlock:
    index: int
    value_type: int  # DMTFSpecMeasurementValueType bits 0-6
    raw_bit_stream: bool  # bit 7: value is the raw data rather than a digest
    value: bytes


@dataclass(frozen=True)
class OpaqueField:
    type: int
    value: bytes

    @property
    def name(self) -> str:
        return OPAQUE_FIELD_NAMES.get(self.type, f"type_{self.type}")


@dataclass(frozen=True)
class SpdmMeasurementsResponse:
    version: int
    param1: int
    param2: int
    record: bytes
    blocks: tuple[MeasurementBlock, ...]
    nonce: bytes
    opaque: bytes
    opaque_fields: tuple[OpaqueField, ...]
    signature: bytes

    def opaque_value(self, field_type: int) -> bytes | None:
        for f in self.opaque_fields:
            if f.type == field_type:
                return f.value
        return None

    @property
    def driver_version(self) -> str | None:
        raw = self.opaque_value(OPAQUE_DRIVER_VERSION)
        if raw is None:
            return None
        try:
            return raw.rstrip(b"\x00").decode("ascii")
        except UnicodeDecodeError:
            raise EvidenceFormatError("GPU driver version is not ASCII") from None

    @property
    def vbios_version(self) -> str | None:
        """As NVIDIA prints it: ``96.00.9F.00.01`` from the 8-byte little-endian field."""
        raw = self.opaque_value(OPAQUE_VBIOS_VERSION)
        if raw is None:
            return None
        if len(raw) != 8:
            raise EvidenceFormatError("GPU VBIOS version field has the wrong length")
        value = int.from_bytes(raw, "little")
        low = f"{value & 0xFFFFFFFF:08X}"
        high = (value >> 32) & 0xFF
        return f"{low[0:2]}.{low[2:4]}.{low[4:6]}.{low[6:8]}.{high:02X}"


@dataclass(frozen=True)
class GpuAttestationReport:
    request: SpdmGetMeasurementsRequest
    response: SpdmMeasurementsResponse
    signed_bytes: bytes  # request || response without the signature

    @property
    def measurements(self) -> dict[int, bytes]:
        return {b.index: b.value for b in self.response.blocks}


class _Reader:
    def __init__(self, data: bytes, start: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = start
        self.end = len(data) if end is None else end

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise EvidenceFormatError(f"GPU attestation report truncated in {what}")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def u16(self, what: str) -> int:
        return int.from_bytes(self.take(2, what), "little")

    def u24(self, what: str) -> int:
        return int.from_bytes(self.take(3, what), "little")


def parse_request(data: bytes) -> SpdmGetMeasurementsRequest:
    if len(data) != REQUEST_LEN:
        raise EvidenceFormatError("SPDM GET_MEASUREMENTS request must be 37 bytes")
    if data[0] != SPDM_VERSION_11:
        raise EvidenceFormatError("unsupported SPDM version")
    if data[1] != GET_MEASUREMENTS:
        raise EvidenceFormatError("not an SPDM GET_MEASUREMENTS request")
    if data[2] != PARAM1_SIGNATURE_REQUESTED:
        raise EvidenceFormatError("SPDM request did not ask for a signature")
    if data[3] != PARAM2_ALL_MEASUREMENTS:
        raise EvidenceFormatError("SPDM request did not ask for all measurements")
    slot = data[36]
    if slot & 0xF0:
        raise EvidenceFormatError("SPDM slot id out of range")
    return SpdmGetMeasurementsRequest(
        version=data[0], param1=data[2], param2=data[3], nonce=data[4:36], slot_id=slot
    )


def _parse_record(record: bytes, count: int) -> tuple[MeasurementBlock, ...]:
    r = _Reader(record)
    blocks: list[MeasurementBlock] = []
    seen: set[int] = set()
    while r.pos < r.end:
        index = r.u8("measurement index")
        spec = r.u8("measurement specification")
        size = r.u16("measurement size")
        body = _Reader(r.take(size, "measurement"))
        if index in (0, 0xFF) or index in seen:
            raise EvidenceFormatError("SPDM measurement index invalid or repeated")
        if spec != MEASUREMENT_SPEC_DMTF:
            raise EvidenceFormatError("SPDM measurement is not in DMTF format")
        kind = body.u8("DMTF value type")
        value = body.take(body.u16("DMTF value size"), "DMTF value")
        if body.pos != body.end:
            raise EvidenceFormatError("SPDM measurement block has trailing bytes")
        seen.add(index)
        blocks.append(
            MeasurementBlock(
                index=index, value_type=kind & 0x7F, raw_bit_stream=bool(kind & 0x80), value=value
            )
        )
    if len(blocks) != count:
        raise EvidenceFormatError("SPDM measurement block count does not match")
    return tuple(blocks)


def _parse_opaque(opaque: bytes) -> tuple[OpaqueField, ...]:
    r = _Reader(opaque)
    fields: list[OpaqueField] = []
    while r.pos < r.end:
        t = r.u16("opaque field type")
        fields.append(OpaqueField(type=t, value=r.take(r.u16("opaque field size"), "opaque field")))
    return tuple(fields)


def parse_report(data: bytes) -> GpuAttestationReport:
    """Bytes to a typed report; EvidenceFormatError on anything that is not exactly request || response."""
    if not isinstance(data, bytes):
        raise TypeError("report must be bytes")
    if len(data) > MAX_REPORT_LEN:
        raise EvidenceFormatError("GPU attestation report too large")
    if len(data) < REQUEST_LEN:
        raise EvidenceFormatError("GPU attestation report truncated in request")
    request = parse_request(data[:REQUEST_LEN])
    r = _Reader(data, REQUEST_LEN)
    version = r.u8("response version")
    if version != request.version:
        raise EvidenceFormatError("SPDM response version differs from the request")
    if r.u8("response code") != MEASUREMENTS:
        raise EvidenceFormatError("not an SPDM MEASUREMENTS response")
    param1 = r.u8("response param1")
    param2 = r.u8("response param2")
    if param2 & 0x0F != request.slot_id:
        raise EvidenceFormatError("SPDM response slot differs from the request")
    count = r.u8("number of blocks")
    record = r.take(r.u24("record length"), "measurement record")
    blocks = _parse_record(record, count)
    nonce = r.take(NONCE_LEN, "responder nonce")
    opaque_len = r.u16("opaque length")
    if opaque_len > MAX_OPAQUE_LEN:
        raise EvidenceFormatError("SPDM opaque data too long")
    opaque = r.take(opaque_len, "opaque data")
    fields = _parse_opaque(opaque)
    signed_end = r.pos
    signature = r.take(SIGNATURE_LEN, "signature")
    if r.pos != len(data):
        raise EvidenceFormatError("GPU attestation report has trailing bytes")
    response = SpdmMeasurementsResponse(
        version=version,
        param1=param1,
        param2=param2,
        record=record,
        blocks=blocks,
        nonce=nonce,
        opaque=opaque,
        opaque_fields=fields,
        signature=signature,
    )
    return GpuAttestationReport(request=request, response=response, signed_bytes=data[:signed_end])
