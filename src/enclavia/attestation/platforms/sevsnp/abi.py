"""AMD SEV-SNP ATTESTATION_REPORT (SEV-SNP Firmware ABI Specification 56860, table "ATTESTATION_REPORT"),
report versions 2 to 5, and the extended-report certificate table (GHCB spec 56421, as configfs-tsm's
``auxblob`` returns it).

All integers are little-endian. 1184 (0x4A0) bytes; the signature covers 0x000..0x29F::

    0x000 VERSION u32 (2..5)        0x004 GUEST_SVN u32           0x008 POLICY u64
    0x010 FAMILY_ID [16]            0x020 IMAGE_ID [16]           0x030 VMPL u32 (0..3)
    0x034 SIGNATURE_ALGO u32 (1)    0x038 CURRENT_TCB [8]         0x040 PLATFORM_INFO u64
    0x048 key info u32: bit 0 AUTHOR_KEY_EN, bit 1 MASK_CHIP_KEY, bits 4:2 SIGNING_KEY (0 VCEK, 1 VLEK,
          7 none), bits 31:5 MBZ                                  0x04C reserved, MBZ
    0x050 REPORT_DATA [64]          0x090 MEASUREMENT [48]        0x0C0 HOST_DATA [32]
    0x0E0 ID_KEY_DIGEST [48]        0x110 AUTHOR_KEY_DIGEST [48]  0x140 REPORT_ID [32]
    0x160 REPORT_ID_MA [32]         0x180 REPORTED_TCB [8]
    0x188 CPUID_FAM_ID, 0x189 CPUID_MOD_ID, 0x18A CPUID_STEP (v3+; MBZ in v2)   0x18B..0x19F MBZ
    0x1A0 CHIP_ID [64] (Turin: 8-byte id then zeros; zeros when MASK_CHIP_KEY)
    0x1E0 COMMITTED_TCB [8]         0x1E8 CURRENT_BUILD, _MINOR, _MAJOR, 0x1EB MBZ
    0x1EC COMMITTED_BUILD, _MINOR, _MAJOR, 0x1EF MBZ          0x1F0 LAUNCH_TCB [8]
    0x1F8 LAUNCH_MIT_VECTOR u64, 0x200 CURRENT_MIT_VECTOR u64 (v4+; MBZ before)   0x208..0x29F MBZ
    0x2A0 SIGNATURE: R [72] LE, S [72] LE, 0x330..0x49F MBZ

GUEST POLICY bits: 7:0 ABI_MINOR, 15:8 ABI_MAJOR, 16 SMT, 17 reserved (must be 1), 18 MIGRATE_MA, 19 DEBUG,
20 SINGLE_SOCKET, 21 CXL_ALLOW, 22 MEM_AES_256_XTS, 23 RAPL_DIS, 24 CIPHERTEXT_HIDING, 25 PAGE_SWAP_DISABLE,
63:26 MBZ.

TCB_VERSION is eight bytes whose layout depends on the product: Milan and Genoa: [BOOT_LOADER, TEE, 0, 0, 0,
0, SNP, MICROCODE]; Turin: [FMC, BOOT_LOADER, TEE, SNP, 0, 0, 0, MICROCODE]. A v2 report does not say which
product made it, so TCB fields are decoded only once the product is known (:meth:`TcbVersion.decode`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from types import MappingProxyType

from enclavia.errors import EvidenceFormatError

REPORT_LEN = 0x4A0
SIGNED_LEN = 0x2A0
MIN_VERSION = 2
MAX_VERSION = 5
SIG_ALGO_ECDSA_P384_SHA384 = 1
COMPONENT_LEN = 72  # r and s, little-endian, zero-padded

MAX_AUX_LEN = 256 * 1024
MAX_CERT_TABLE_ENTRIES = 32
CERT_TABLE_ENTRY_LEN = 24

VCEK_GUID = uuid.UUID("63da758d-e664-4564-adc5-f4b93be8accd")
VLEK_GUID = uuid.UUID("a8074bc2-a25a-483e-aae6-39c045a0b8a1")
ASK_GUID = uuid.UUID("4ab7b379-bbac-4fe4-a02f-05aef327c782")  # also carries the ASVK with a VLEK
ARK_GUID = uuid.UUID("c0b406a4-a803-4952-9743-3fb6014cd0ae")


class Product(StrEnum):
    MILAN = "Milan"
    GENOA = "Genoa"
    TURIN = "Turin"

    @classmethod
    def parse(cls, name: str) -> Product:
        """``Milan``, ``milan``, ``Milan-B0`` (VCEK productName) ... -> Product; ValueError otherwise."""
        base = name.split("-", 1)[0].strip().lower()
        for p in cls:
            if p.value.lower() == base:
                return p
        raise ValueError("unknown SEV-SNP product")

    @classmethod
    def from_cpuid(cls, family: int, model: int) -> Product | None:
        """Product from the CPUID family/model a v3+ report carries; None when not one we know."""
        if family == 0x19:
            if model <= 0x0F:
                return cls.MILAN
            if 0x10 <= model <= 0x1F or 0xA0 <= model <= 0xAF:
                return cls.GENOA
        if family == 0x1A and model <= 0x1F:
            return cls.TURIN
        return None


class SigningKey(IntEnum):
    VCEK = 0
    VLEK = 1
    NONE = 7


@dataclass(frozen=True)
class GuestPolicy:
    raw: int
    abi_minor: int
    abi_major: int
    smt: bool
    migrate_ma: bool
    debug: bool
    single_socket: bool
    cxl_allow: bool
    mem_aes_256_xts: bool
    rapl_dis: bool
    ciphertext_hiding: bool
    page_swap_disable: bool

    @classmethod
    def decode(cls, raw: int) -> GuestPolicy:
        if not raw >> 17 & 1:
            raise EvidenceFormatError("guest policy bit 17 must be set")
        if raw >> 26:
            raise EvidenceFormatError("guest policy reserved bits set")
        return cls(
            raw=raw,
            abi_minor=raw & 0xFF,
            abi_major=raw >> 8 & 0xFF,
            smt=bool(raw >> 16 & 1),
            migrate_ma=bool(raw >> 18 & 1),
            debug=bool(raw >> 19 & 1),
            single_socket=bool(raw >> 20 & 1),
            cxl_allow=bool(raw >> 21 & 1),
            mem_aes_256_xts=bool(raw >> 22 & 1),
            rapl_dis=bool(raw >> 23 & 1),
            ciphertext_hiding=bool(raw >> 24 & 1),
            page_swap_disable=bool(raw >> 25 & 1),
        )

    def as_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "raw"}


@dataclass(frozen=True)
class PlatformInfo:
    """PLATFORM_INFO. Bits above the ones named here are informational and not rejected (new firmware adds
    them); they stay visible in ``raw``."""

    raw: int
    smt_enabled: bool
    tsme_enabled: bool
    ecc_enabled: bool
    rapl_disabled: bool
    ciphertext_hiding_enabled: bool
    alias_check_complete: bool

    @classmethod
    def decode(cls, raw: int) -> PlatformInfo:
        return cls(
            raw=raw,
            smt_enabled=bool(raw & 1),
            tsme_enabled=bool(raw >> 1 & 1),
            ecc_enabled=bool(raw >> 2 & 1),
            rapl_disabled=bool(raw >> 3 & 1),
            ciphertext_hiding_enabled=bool(raw >> 4 & 1),
            alias_check_complete=bool(raw >> 5 & 1),
        )

    def as_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "raw"}


@dataclass(frozen=True)
class TcbVersion:
    raw: bytes
    bootloader: int
    tee: int
    snp: int
    microcode: int
    fmc: int | None = None

    @classmethod
    def decode(cls, raw: bytes, product: Product) -> TcbVersion:
        """Decode per product; reserved bytes must be zero."""
        if len(raw) != 8:
            raise EvidenceFormatError("TCB_VERSION must be 8 bytes")
        if product is Product.TURIN:
            if any(raw[4:7]):
                raise EvidenceFormatError("TCB_VERSION reserved bytes set")
            return cls(raw=raw, fmc=raw[0], bootloader=raw[1], tee=raw[2], snp=raw[3], microcode=raw[7])
        if any(raw[2:6]):
            raise EvidenceFormatError("TCB_VERSION reserved bytes set")
        return cls(raw=raw, bootloader=raw[0], tee=raw[1], snp=raw[6], microcode=raw[7])

    def as_dict(self) -> dict[str, int]:
        d = {"bootloader": self.bootloader, "tee": self.tee, "snp": self.snp, "microcode": self.microcode}
        if self.fmc is not None:
            d["fmc"] = self.fmc
        return d


@dataclass(frozen=True)
class AttestationReport:
    """One parsed, length-checked report. TCB fields stay raw until the product is known."""

    raw: bytes
    version: int
    guest_svn: int
    policy: GuestPolicy
    family_id: bytes
    image_id: bytes
    vmpl: int
    signature_algo: int
    current_tcb: bytes
    platform_info: PlatformInfo
    author_key_en: bool
    mask_chip_key: bool
    signing_key: SigningKey
    report_data: bytes
    measurement: bytes
    host_data: bytes
    id_key_digest: bytes
    author_key_digest: bytes
    report_id: bytes
    report_id_ma: bytes
    reported_tcb: bytes
    cpuid_fam_id: int | None
    cpuid_mod_id: int | None
    cpuid_step: int | None
    chip_id: bytes
    committed_tcb: bytes
    current_build: int
    current_minor: int
    current_major: int
    committed_build: int
    committed_minor: int
    committed_major: int
    launch_tcb: bytes
    launch_mit_vector: int | None
    current_mit_vector: int | None
    signature_r: int
    signature_s: int

    @property
    def signed_bytes(self) -> bytes:
        return self.raw[:SIGNED_LEN]

    @property
    def cpuid_product(self) -> Product | None:
        if self.cpuid_fam_id is None or self.cpuid_mod_id is None:
            return None
        return Product.from_cpuid(self.cpuid_fam_id, self.cpuid_mod_id)


def _u32(b: bytes, off: int) -> int:
    return int.from_bytes(b[off : off + 4], "little")


def _u64(b: bytes, off: int) -> int:
    return int.from_bytes(b[off : off + 8], "little")


def _mbz(b: bytes, lo: int, hi: int) -> None:
    if any(b[lo:hi]):
        raise EvidenceFormatError("report reserved field is not zero")


def parse_report(data: bytes) -> AttestationReport:
    """Parse exactly 1184 bytes; refuse unknown versions, algorithms, signing keys, non-zero reserved."""
    if not isinstance(data, bytes):
        raise TypeError("report must be bytes")
    if len(data) != REPORT_LEN:
        raise EvidenceFormatError("SEV-SNP report must be 1184 bytes")
    version = _u32(data, 0x000)
    if not MIN_VERSION <= version <= MAX_VERSION:
        raise EvidenceFormatError("SEV-SNP report version not supported")
    sig_algo = _u32(data, 0x034)
    if sig_algo != SIG_ALGO_ECDSA_P384_SHA384:
        raise EvidenceFormatError("SEV-SNP signature algorithm must be ECDSA P-384 with SHA-384")
    vmpl = _u32(data, 0x030)
    if vmpl > 3:
        raise EvidenceFormatError("VMPL out of range")
    key_info = _u32(data, 0x048)
    if key_info >> 5:
        raise EvidenceFormatError("key info reserved bits set")
    try:
        signing_key = SigningKey(key_info >> 2 & 7)
    except ValueError:
        raise EvidenceFormatError("signing key selector reserved") from None
    mask_chip_key = bool(key_info >> 1 & 1)
    _mbz(data, 0x04C, 0x050)
    if version >= 3:
        cpuid: tuple[int | None, int | None, int | None] = (data[0x188], data[0x189], data[0x18A])
        _mbz(data, 0x18B, 0x1A0)
    else:
        cpuid = (None, None, None)
        _mbz(data, 0x188, 0x1A0)
    chip_id = data[0x1A0:0x1E0]
    if mask_chip_key and any(chip_id):
        raise EvidenceFormatError("CHIP_ID must be zero when masked")
    _mbz(data, 0x1EB, 0x1EC)
    _mbz(data, 0x1EF, 0x1F0)
    if version >= 4:
        launch_mit: int | None = _u64(data, 0x1F8)
        current_mit: int | None = _u64(data, 0x200)
        _mbz(data, 0x208, SIGNED_LEN)
    else:
        launch_mit = current_mit = None
        _mbz(data, 0x1F8, SIGNED_LEN)
    _mbz(data, SIGNED_LEN + 2 * COMPONENT_LEN, REPORT_LEN)
    r = int.from_bytes(data[SIGNED_LEN : SIGNED_LEN + COMPONENT_LEN], "little")
    s = int.from_bytes(data[SIGNED_LEN + COMPONENT_LEN : SIGNED_LEN + 2 * COMPONENT_LEN], "little")
    return AttestationReport(
        raw=data,
        version=version,
        guest_svn=_u32(data, 0x004),
        policy=GuestPolicy.decode(_u64(data, 0x008)),
        family_id=data[0x010:0x020],
        image_id=data[0x020:0x030],
        vmpl=vmpl,
        signature_algo=sig_algo,
        current_tcb=data[0x038:0x040],
        platform_info=PlatformInfo.decode(_u64(data, 0x040)),
        author_key_en=bool(key_info & 1),
        mask_chip_key=mask_chip_key,
        signing_key=signing_key,
        report_data=data[0x050:0x090],
        measurement=data[0x090:0x0C0],
        host_data=data[0x0C0:0x0E0],
        id_key_digest=data[0x0E0:0x110],
        author_key_digest=data[0x110:0x140],
        report_id=data[0x140:0x160],
        report_id_ma=data[0x160:0x180],
        reported_tcb=data[0x180:0x188],
        cpuid_fam_id=cpuid[0],
        cpuid_mod_id=cpuid[1],
        cpuid_step=cpuid[2],
        chip_id=chip_id,
        committed_tcb=data[0x1E0:0x1E8],
        current_build=data[0x1E8],
        current_minor=data[0x1E9],
        current_major=data[0x1EA],
        committed_build=data[0x1EC],
        committed_minor=data[0x1ED],
        committed_major=data[0x1EE],
        launch_tcb=data[0x1F0:0x1F8],
        launch_mit_vector=launch_mit,
        current_mit_vector=current_mit,
        signature_r=r,
        signature_s=s,
    )


@dataclass(frozen=True)
class CertTable:
    """GUID -> certificate bytes, from the extended report's certificate table."""

    entries: Mapping[uuid.UUID, bytes]

    def __post_init__(self) -> None:
        object.__setattr__(self, "entries", MappingProxyType(dict(self.entries)))

    def get(self, guid: uuid.UUID) -> bytes | None:
        return self.entries.get(guid)


def parse_cert_table(aux: bytes) -> CertTable:
    """Entries of 16-byte GUID (RFC 4122 byte order) + u32 offset + u32 length, ended by an all-zero entry;
    offsets are from the start of the table and must point past the entries. Duplicate GUIDs are refused;
    unknown GUIDs are kept but not used."""
    if not isinstance(aux, bytes):
        raise TypeError("certificate table must be bytes")
    if len(aux) > MAX_AUX_LEN:
        raise EvidenceFormatError("certificate table too large")
    headers: list[tuple[uuid.UUID, int, int]] = []
    pos = 0
    while True:
        if pos + CERT_TABLE_ENTRY_LEN > len(aux):
            raise EvidenceFormatError("certificate table not terminated")
        entry = aux[pos : pos + CERT_TABLE_ENTRY_LEN]
        pos += CERT_TABLE_ENTRY_LEN
        if not any(entry):
            break
        if not any(entry[:16]):
            raise EvidenceFormatError("certificate table entry has a zero GUID")
        if len(headers) >= MAX_CERT_TABLE_ENTRIES:
            raise EvidenceFormatError("certificate table has too many entries")
        headers.append((uuid.UUID(bytes=entry[:16]), _u32(entry, 16), _u32(entry, 20)))
    out: dict[uuid.UUID, bytes] = {}
    for guid, offset, length in headers:
        if guid in out:
            raise EvidenceFormatError("certificate table has a duplicate GUID")
        if length == 0 or offset < pos or offset + length > len(aux):
            raise EvidenceFormatError("certificate table entry out of bounds")
        out[guid] = aux[offset : offset + length]
    return CertTable(entries=out)
