"""Small synthetic inputs for platform measurement tests (no real firmware is shipped in the repo).

``synthetic_ovmf`` lays out just enough of an OVMF image for sev-snp-measure: the GUIDed footer table
(reset block, SEV metadata pointer, SEV hash table) and an SEV metadata block with one section of each
type. It is not bootable firmware; it only exercises the measurement path end to end.
"""

from __future__ import annotations

import struct
import uuid

FOOTER_GUID = "96b582de-1fb2-45f7-baea-a366c55a082d"
RESET_GUID = "00f771de-1a7e-4fcb-890e-68c77e2fb44e"
META_GUID = "dc886566-984a-4798-a75e-5585a7bf67cc"
HASH_TABLE_GUID = "7255371f-3a3b-4b04-927b-1da6efa8d454"
PAGE = 0x1000


def _entry(guid: str, data: bytes) -> bytes:
    return data + struct.pack("<H", len(data) + 18) + uuid.UUID(guid).bytes_le


def synthetic_ovmf(pages: int = 4, fill: int = 0x90) -> bytes:
    size = pages * PAGE
    meta_items = [
        (0x800000, PAGE, 1),  # SNP_SEC_MEM
        (0x801000, PAGE, 2),  # SNP_SECRETS
        (0x802000, PAGE, 3),  # CPUID
        (0x803000, PAGE, 0x10),  # SNP_KERNEL_HASHES
    ]
    meta = b"ASEV" + struct.pack("<III", 16 + 12 * len(meta_items), 1, len(meta_items))
    meta += b"".join(struct.pack("<III", *item) for item in meta_items)
    meta_offset = PAGE  # the metadata block starts one page into the image
    meta_from_end = size - meta_offset
    table = (
        _entry(RESET_GUID, struct.pack("<I", 0xFFFFF000))
        + _entry(META_GUID, struct.pack("<I", meta_from_end))
        + _entry(HASH_TABLE_GUID, struct.pack("<II", 0x803000, PAGE))
    )
    footer = struct.pack("<H", len(table) + 18) + uuid.UUID(FOOTER_GUID).bytes_le
    tail = table + footer + bytes(32)
    body = bytearray([fill]) * size
    body[meta_offset : meta_offset + len(meta)] = meta
    body[size - len(tail) :] = tail
    return bytes(body)


def describe_eif_json(pcr0: str = "a1" * 48, pcr1: str = "b2" * 48, pcr2: str = "c3" * 48) -> str:
    """The shape `nitro-cli describe-eif` prints (values synthetic)."""
    return (
        "{\n"
        '  "EifVersion": 4,\n'
        '  "Measurements": {\n'
        '    "HashAlgorithm": "Sha384 { ... }",\n'
        f'    "PCR0": "{pcr0}",\n'
        f'    "PCR1": "{pcr1}",\n'
        f'    "PCR2": "{pcr2}"\n'
        "  },\n"
        '  "IsSigned": false,\n'
        '  "CheckCRC": true,\n'
        '  "ImageName": "enclavia",\n'
        '  "ImageVersion": "0.1.0",\n'
        '  "Metadata": {}\n'
        "}\n"
    )
