"""Intel TDX DCAP quote wire format (Intel TDX DCAP Quoting Library API, appendix A), parsed exactly.

::

    quote v4 = header(48) || TD report body(584, TDREPORT10) || u32 sig_len || signature data
    quote v5 = header(48) || u16 body_type || u32 body_size || body || u32 sig_len || signature data
               body_type 2: TD report 1.0 (584)
               body_type 3: TD report 1.5 (648 = 584 + TEE_TCB_SVN2(16) + MRSERVICETD(48))

    header   = u16 version || u16 att_key_type (2 = ECDSA-256-with-P-256) || u32 tee_type (0x81 = TDX)
               || u16 reserved || u16 reserved || qe_vendor_id(16) || user_data(20)
    TD report 1.0 = TEE_TCB_SVN(16) MRSEAM(48) MRSIGNERSEAM(48) SEAMATTRIBUTES(8) TDATTRIBUTES(8) XFAM(8)
                    MRTD(48) MRCONFIGID(48) MROWNER(48) MROWNERCONFIG(48) RTMR0..3(4x48) REPORTDATA(64)
    signature data = quote signature(64, r||s) || attestation public key(64, x||y)
                     || u16 cert_type (6) || u32 cert_size || QE report certification data(cert_size)
    QE report certification data = QE report(384) || QE report signature(64) || u16 auth_len || auth data
                     || u16 cert_type (5) || u32 cert_size || PCK certificate chain (PEM, leaf first)

All integers little-endian. Every length is checked against the bytes actually present; the structure must be
consumed exactly. Quote-generation services commonly hand back a fixed-size buffer, so bytes after the
declared end are accepted only if every one of them is zero (they are not signed and are dropped before
verification).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from enclavia.attestation.pem import pem_certificates_cached
from enclavia.errors import EvidenceFormatError

MAX_QUOTE_LEN = 64 * 1024
HEADER_LEN = 48
TD10_BODY_LEN = 584
TD15_BODY_LEN = 648
V5_DESCRIPTOR_LEN = 6
BODY_TYPE_TD10 = 2
BODY_TYPE_TD15 = 3
TEE_TYPE_SGX = 0x00000000
TEE_TYPE_TDX = 0x00000081
ATT_KEY_TYPE_ECDSA_P256 = 2
CERT_TYPE_QE_REPORT = 6
CERT_TYPE_PCK_CHAIN = 5
QE_REPORT_LEN = 384
SIGNATURE_LEN = 64
ATTESTATION_KEY_LEN = 64
INTEL_QE_VENDOR_ID = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")
MR_LEN = 48
REPORT_DATA_LEN = 64

TD_ATTRIBUTE_DEBUG = 1 << 0  # TUD.DEBUG: the TD runs in debug mode; the host can read and write its memory
TD_ATTRIBUTE_SEPT_VE_DISABLE = 1 << 28
TD_ATTRIBUTE_PKS = 1 << 30
TD_ATTRIBUTE_KL = 1 << 31
TD_ATTRIBUTE_PERFMON = 1 << 63


@dataclass(frozen=True)
class QuoteHeader:
    version: int
    att_key_type: int
    tee_type: int
    reserved: bytes  # 4 bytes: QE SVN / PCE SVN in SGX v3, reserved in TDX v4/v5
    qe_vendor_id: bytes
    user_data: bytes


@dataclass(frozen=True)
class TdReport:
    """TD report body (TDREPORT10, or TD report 1.5 when ``tee_tcb_svn2`` and ``mr_service_td`` are set)."""

    tee_tcb_svn: bytes
    mr_seam: bytes
    mr_signer_seam: bytes
    seam_attributes: bytes
    td_attributes: bytes
    xfam: bytes
    mr_td: bytes
    mr_config_id: bytes
    mr_owner: bytes
    mr_owner_config: bytes
    rtmr: tuple[bytes, bytes, bytes, bytes]
    report_data: bytes
    tee_tcb_svn2: bytes | None = None
    mr_service_td: bytes | None = None

    @property
    def td_attributes_int(self) -> int:
        return int.from_bytes(self.td_attributes, "little")

    @property
    def debug(self) -> bool:
        return bool(self.td_attributes_int & TD_ATTRIBUTE_DEBUG)


@dataclass(frozen=True)
class QeCertificationData:
    qe_report: bytes
    qe_report_signature: bytes
    qe_auth_data: bytes
    pck_chain_pem: bytes
    pck_chain_der: tuple[bytes, ...]


@dataclass(frozen=True)
class TdxQuote:
    header: QuoteHeader
    body_type: int
    report: TdReport
    signature: bytes
    attestation_key: bytes
    certification: QeCertificationData
    raw: bytes  # exactly the declared structure, padding removed: what is handed to the DCAP verifier
    signed_len: int  # header (+ v5 body descriptor) + body: the bytes the attestation key signs
    padding_len: int

    @property
    def signed_bytes(self) -> bytes:
        return self.raw[: self.signed_len]


class _Reader:
    def __init__(self, data: bytes, start: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = start
        self.end = len(data) if end is None else end

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise EvidenceFormatError(f"TDX quote truncated in {what}")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u16(self, what: str) -> int:
        return int(struct.unpack("<H", self.take(2, what))[0])

    def u32(self, what: str) -> int:
        return int(struct.unpack("<I", self.take(4, what))[0])


def parse_header(data: bytes) -> QuoteHeader:
    if len(data) != HEADER_LEN:
        raise EvidenceFormatError("TDX quote header must be 48 bytes")
    version, akt, tee = struct.unpack_from("<HHI", data, 0)
    return QuoteHeader(
        version=version,
        att_key_type=akt,
        tee_type=tee,
        reserved=data[8:12],
        qe_vendor_id=data[12:28],
        user_data=data[28:48],
    )


def parse_td_report(body: bytes, body_type: int) -> TdReport:
    expected = {BODY_TYPE_TD10: TD10_BODY_LEN, BODY_TYPE_TD15: TD15_BODY_LEN}.get(body_type)
    if expected is None:
        raise EvidenceFormatError("unsupported TD report body type")
    if len(body) != expected:
        raise EvidenceFormatError("TD report body has the wrong length")
    r = _Reader(body)
    tee_tcb_svn = r.take(16, "TEE_TCB_SVN")
    mr_seam = r.take(MR_LEN, "MRSEAM")
    mr_signer_seam = r.take(MR_LEN, "MRSIGNERSEAM")
    seam_attributes = r.take(8, "SEAMATTRIBUTES")
    td_attributes = r.take(8, "TDATTRIBUTES")
    xfam = r.take(8, "XFAM")
    mr_td = r.take(MR_LEN, "MRTD")
    mr_config_id = r.take(MR_LEN, "MRCONFIGID")
    mr_owner = r.take(MR_LEN, "MROWNER")
    mr_owner_config = r.take(MR_LEN, "MROWNERCONFIG")
    rtmr = (
        r.take(MR_LEN, "RTMR0"),
        r.take(MR_LEN, "RTMR1"),
        r.take(MR_LEN, "RTMR2"),
        r.take(MR_LEN, "RTMR3"),
    )
    report_data = r.take(REPORT_DATA_LEN, "REPORTDATA")
    svn2 = service_td = None
    if body_type == BODY_TYPE_TD15:
        svn2 = r.take(16, "TEE_TCB_SVN2")
        service_td = r.take(MR_LEN, "MRSERVICETD")
    if r.pos != len(body):  # pragma: no cover - guaranteed by the length check above
        raise EvidenceFormatError("TD report body not consumed exactly")
    return TdReport(
        tee_tcb_svn=tee_tcb_svn,
        mr_seam=mr_seam,
        mr_signer_seam=mr_signer_seam,
        seam_attributes=seam_attributes,
        td_attributes=td_attributes,
        xfam=xfam,
        mr_td=mr_td,
        mr_config_id=mr_config_id,
        mr_owner=mr_owner,
        mr_owner_config=mr_owner_config,
        rtmr=rtmr,
        report_data=report_data,
        tee_tcb_svn2=svn2,
        mr_service_td=service_td,
    )


def _parse_certification(data: bytes) -> QeCertificationData:
    r = _Reader(data)
    qe_report = r.take(QE_REPORT_LEN, "QE report")
    qe_sig = r.take(SIGNATURE_LEN, "QE report signature")
    auth_len = r.u16("QE auth data length")
    auth = r.take(auth_len, "QE auth data")
    if r.u16("PCK certification data type") != CERT_TYPE_PCK_CHAIN:
        raise EvidenceFormatError("TDX quote does not carry a PCK certificate chain (type 5)")
    chain_len = r.u32("PCK chain length")
    chain = r.take(chain_len, "PCK chain")
    if r.pos != len(data):
        raise EvidenceFormatError("TDX QE certification data has trailing bytes")
    chain_der = pem_certificates_cached(chain)
    if len(chain_der) < 2:
        raise EvidenceFormatError("TDX PCK chain too short")
    return QeCertificationData(
        qe_report=qe_report,
        qe_report_signature=qe_sig,
        qe_auth_data=auth,
        pck_chain_pem=chain,
        pck_chain_der=chain_der,
    )


def parse_quote(data: bytes) -> TdxQuote:
    """Bytes to a typed TDX quote; EvidenceFormatError for anything but exactly a v4/v5 TDX quote."""
    if not isinstance(data, bytes):
        raise TypeError("quote must be bytes")
    if len(data) > MAX_QUOTE_LEN:
        raise EvidenceFormatError("TDX quote too large")
    r = _Reader(data)
    header = parse_header(r.take(HEADER_LEN, "header"))
    if header.tee_type != TEE_TYPE_TDX:
        raise EvidenceFormatError("quote is not a TDX quote (TEE type)")
    if header.version == 4:
        body_type = BODY_TYPE_TD10
        body = r.take(TD10_BODY_LEN, "TD report body")
    elif header.version == 5:
        body_type = r.u16("body type")
        body_size = r.u32("body size")
        expected = {BODY_TYPE_TD10: TD10_BODY_LEN, BODY_TYPE_TD15: TD15_BODY_LEN}.get(body_type)
        if expected is None:
            raise EvidenceFormatError("unsupported TD report body type")
        if body_size != expected:
            raise EvidenceFormatError("TD report body size does not match its type")
        body = r.take(body_size, "TD report body")
    else:
        raise EvidenceFormatError("unsupported TDX quote version")
    if header.att_key_type != ATT_KEY_TYPE_ECDSA_P256:
        raise EvidenceFormatError("unsupported attestation key type")
    report = parse_td_report(body, body_type)
    signed_len = r.pos
    sig_len = r.u32("signature data length")
    sig_start = r.pos
    sig = _Reader(data, sig_start, sig_start + sig_len)
    if sig.end > len(data):
        raise EvidenceFormatError("TDX quote truncated in signature data")
    signature = sig.take(SIGNATURE_LEN, "quote signature")
    att_key = sig.take(ATTESTATION_KEY_LEN, "attestation key")
    if sig.u16("certification data type") != CERT_TYPE_QE_REPORT:
        raise EvidenceFormatError("TDX quote certification data is not QE report certification data (type 6)")
    cert_len = sig.u32("certification data length")
    cert = sig.take(cert_len, "certification data")
    if sig.pos != sig.end:
        raise EvidenceFormatError("TDX signature data has trailing bytes")
    certification = _parse_certification(cert)
    end = sig.end
    padding = data[end:]
    if padding.count(0) != len(padding):
        raise EvidenceFormatError("TDX quote has trailing bytes after its declared end")
    return TdxQuote(
        header=header,
        body_type=body_type,
        report=report,
        signature=signature,
        attestation_key=att_key,
        certification=certification,
        raw=data[:end],
        signed_len=signed_len,
        padding_len=len(padding),
    )
