"""Synthetic Nitro documents and SEV-SNP reports signed by throw-away test PKIs.

Real vendor vectors come first (tests/conformance); these cover what no public vector has: TCB mismatches,
Turin and v3/v5 layouts with signatures, VLEK/VCEK confusion on one chip, ES256 headers with valid signatures.
Nothing here is trusted by default: every test passes the test root explicitly (``root_pem`` / ``ark_pem``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

NOT_BEFORE = datetime(2024, 1, 1, tzinfo=UTC)
NOT_AFTER = datetime(2034, 1, 1, tzinfo=UTC)
NOW = datetime(2025, 6, 1, tzinfo=UTC)

_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _amd_name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Engineering"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.LOCALITY_NAME, "Santa Clara"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "CA"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Advanced Micro Devices"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: Any,
    *,
    not_before: datetime = NOT_BEFORE,
    not_after: datetime = NOT_AFTER,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )


def _ca(b: x509.CertificateBuilder, path_length: int | None) -> x509.CertificateBuilder:
    return b.add_extension(
        x509.BasicConstraints(ca=True, path_length=path_length), critical=True
    ).add_extension(
        x509.KeyUsage(
            digital_signature=False,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=True,
            crl_sign=True,
            encipher_only=False,
            decipher_only=False,
        ),
        critical=True,
    )


def der_int(n: int) -> bytes:
    body = n.to_bytes(max(1, (n.bit_length() + 8) // 8), "big")
    return b"\x02" + bytes([len(body)]) + body


def der_ia5(s: str) -> bytes:
    return b"\x16" + bytes([len(s)]) + s.encode()


# --- AMD -----------------------------------------------------------------------------------------------


def tcb_bytes(product: str, *, bl: int, tee: int, snp: int, ucode: int, fmc: int = 0) -> bytes:
    if product == "Turin":
        return bytes([fmc, bl, tee, snp, 0, 0, 0, ucode])
    return bytes([bl, tee, 0, 0, 0, 0, snp, ucode])


@dataclass
class FakeAmd:
    """A fake AMD PKI for one product: ARK -> ASK (VCEKs) and ARK -> ASVK (VLEKs)."""

    product: str
    ark_key: rsa.RSAPrivateKey
    ark: x509.Certificate
    ask_key: rsa.RSAPrivateKey
    ask: x509.Certificate
    asvk_key: rsa.RSAPrivateKey
    asvk: x509.Certificate
    _keys: dict[str, ec.EllipticCurvePrivateKey] = field(default_factory=dict)

    @property
    def ark_pem(self) -> bytes:
        return pem(self.ark)

    @property
    def vcek_chain_pem(self) -> bytes:
        return pem(self.ask) + pem(self.ark)

    @property
    def vlek_chain_pem(self) -> bytes:
        return pem(self.asvk) + pem(self.ark)

    def endorsement_key(
        self,
        *,
        kind: str = "VCEK",
        tcb: dict[str, int],
        hwid: bytes | None = None,
        product_name: str | None = None,
        not_before: datetime = NOT_BEFORE,
        not_after: datetime = NOT_AFTER,
        key: ec.EllipticCurvePrivateKey | None = None,
        issuer_key: rsa.RSAPrivateKey | None = None,
        extra: list[x509.ExtensionType] | None = None,
    ) -> tuple[bytes, ec.EllipticCurvePrivateKey]:
        key = key or ec.generate_private_key(ec.SECP384R1())
        issuer = self.ask if kind == "VCEK" else self.asvk
        ikey = issuer_key or (self.ask_key if kind == "VCEK" else self.asvk_key)
        b = _builder(
            _amd_name(f"SEV-{kind}"),
            issuer.subject,
            key.public_key(),
            not_before=not_before,
            not_after=not_after,
        )
        ext = [
            ("1.3.6.1.4.1.3704.1.1", der_int(0)),
            (
                "1.3.6.1.4.1.3704.1.2",
                der_ia5(product_name or self.product + ("-B0" if kind == "VCEK" else "")),
            ),
            ("1.3.6.1.4.1.3704.1.3.1", der_int(tcb["bl"])),
            ("1.3.6.1.4.1.3704.1.3.2", der_int(tcb["tee"])),
            ("1.3.6.1.4.1.3704.1.3.3", der_int(tcb["snp"])),
            ("1.3.6.1.4.1.3704.1.3.8", der_int(tcb["ucode"])),
        ]
        if self.product == "Turin":
            ext.append(("1.3.6.1.4.1.3704.1.3.9", der_int(tcb.get("fmc", 0))))
        if kind == "VCEK" and hwid is not None:
            ext.append(("1.3.6.1.4.1.3704.1.4", hwid))
        if kind == "VLEK":
            ext.append(("1.3.6.1.4.1.3704.1.5", der_ia5("CN=test-csp.example")))
        for oid, value in ext:
            b = b.add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value), critical=False)
        for e in extra or []:
            b = b.add_extension(e, critical=True)
        cert = b.sign(ikey, hashes.SHA384(), rsa_padding=_PSS)
        return der(cert), key


def make_amd(product: str = "Milan", *, bits: int = 2048) -> FakeAmd:
    ark_key = rsa.generate_private_key(65537, bits)
    ark = _ca(_builder(_amd_name(f"ARK-{product}"), _amd_name(f"ARK-{product}"), ark_key.public_key()), None)
    ark_c = ark.sign(ark_key, hashes.SHA384(), rsa_padding=_PSS)
    ask_key = rsa.generate_private_key(65537, bits)
    ask_c = _ca(_builder(_amd_name(f"SEV-{product}"), ark_c.subject, ask_key.public_key()), 0).sign(
        ark_key, hashes.SHA384(), rsa_padding=_PSS
    )
    asvk_key = rsa.generate_private_key(65537, bits)
    asvk_c = _ca(_builder(_amd_name(f"SEV-VLEK-{product}"), ark_c.subject, asvk_key.public_key()), 0).sign(
        ark_key, hashes.SHA384(), rsa_padding=_PSS
    )
    return FakeAmd(product, ark_key, ark_c, ask_key, ask_c, asvk_key, asvk_c)


def build_report(
    key: ec.EllipticCurvePrivateKey | None,
    *,
    version: int = 2,
    policy: int = 0x30000,
    vmpl: int = 0,
    signing_key: int = 0,
    mask_chip_key: bool = False,
    author_key_en: bool = False,
    report_data: bytes = bytes(64),
    measurement: bytes = b"\x11" * 48,
    host_data: bytes = bytes(32),
    id_key_digest: bytes = bytes(48),
    reported_tcb: bytes = bytes(8),
    current_tcb: bytes | None = None,
    committed_tcb: bytes | None = None,
    launch_tcb: bytes | None = None,
    chip_id: bytes = bytes(64),
    cpuid: tuple[int, int, int] = (0x19, 0x01, 0x01),
    mit: tuple[int, int] = (0, 0),
    sig_algo: int = 1,
    corrupt: dict[int, int] | None = None,
) -> bytes:
    b = bytearray(0x4A0)
    b[0x000:0x004] = version.to_bytes(4, "little")
    b[0x008:0x010] = policy.to_bytes(8, "little")
    b[0x030:0x034] = vmpl.to_bytes(4, "little")
    b[0x034:0x038] = sig_algo.to_bytes(4, "little")
    b[0x038:0x040] = current_tcb if current_tcb is not None else reported_tcb
    b[0x040:0x048] = (1).to_bytes(8, "little")
    b[0x048:0x04C] = (int(author_key_en) | int(mask_chip_key) << 1 | signing_key << 2).to_bytes(4, "little")
    b[0x050:0x090] = report_data
    b[0x090:0x0C0] = measurement
    b[0x0C0:0x0E0] = host_data
    b[0x0E0:0x110] = id_key_digest
    b[0x140:0x160] = b"\x42" * 32
    b[0x180:0x188] = reported_tcb
    if version >= 3:
        b[0x188], b[0x189], b[0x18A] = cpuid
    b[0x1A0:0x1E0] = chip_id
    b[0x1E0:0x1E8] = committed_tcb if committed_tcb is not None else reported_tcb
    b[0x1E8:0x1EB] = bytes([4, 55, 1])
    b[0x1EC:0x1EF] = bytes([4, 55, 1])
    b[0x1F0:0x1F8] = launch_tcb if launch_tcb is not None else reported_tcb
    if version >= 4:
        b[0x1F8:0x200] = mit[0].to_bytes(8, "little")
        b[0x200:0x208] = mit[1].to_bytes(8, "little")
    for off, val in (corrupt or {}).items():
        b[off] = val
    if key is not None:
        r, s = decode_dss_signature(key.sign(bytes(b[:0x2A0]), ec.ECDSA(hashes.SHA384())))
        b[0x2A0:0x2E8] = r.to_bytes(72, "little")
        b[0x2E8:0x330] = s.to_bytes(72, "little")
    return bytes(b)


def cert_table(entries: list[tuple[str, bytes]]) -> bytes:
    """configfs-tsm auxblob layout: entries, zero terminator, then the certificates."""
    import uuid

    header_len = 24 * (len(entries) + 1)
    head = b""
    body = b""
    for guid, blob in entries:
        head += (
            uuid.UUID(guid).bytes
            + (header_len + len(body)).to_bytes(4, "little")
            + len(blob).to_bytes(4, "little")
        )
        body += blob
    return head + bytes(24) + body


# --- Nitro ---------------------------------------------------------------------------------------------


@dataclass
class FakeNitro:
    root_key: ec.EllipticCurvePrivateKey
    root: x509.Certificate
    inter_key: ec.EllipticCurvePrivateKey
    inter: x509.Certificate

    @property
    def root_pem(self) -> bytes:
        return pem(self.root)

    def leaf(
        self,
        *,
        curve: ec.EllipticCurve | None = None,
        not_before: datetime = NOT_BEFORE,
        not_after: datetime = NOT_AFTER,
        ca: bool = False,
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(curve or ec.SECP384R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "i-test-enc0.test.aws")])
        b = _builder(name, self.inter.subject, key.public_key(), not_before=not_before, not_after=not_after)
        b = b.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        return b.sign(self.inter_key, hashes.SHA384()), key

    def document(
        self,
        *,
        pcrs: dict[int, bytes] | None = None,
        user_data: bytes | None = None,
        nonce: bytes | None = b"nonce",
        public_key: bytes | None = None,
        timestamp_ms: int = int(NOW.timestamp() * 1000),
        alg: int = -35,
        protected: bytes | None = None,
        leaf: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
        extra: dict[str, Any] | None = None,
        tagged: bool = False,
        cabundle: list[bytes] | None = None,
    ) -> bytes:
        cert, key = leaf or self.leaf()
        payload_map: dict[str, Any] = {
            "module_id": "i-test-enc0",
            "digest": "SHA384",
            "timestamp": timestamp_ms,
            "pcrs": pcrs if pcrs is not None else {i: bytes([i + 1]) * 48 for i in range(16)},
            "certificate": der(cert),
            "cabundle": cabundle if cabundle is not None else [der(self.root), der(self.inter)],
            "public_key": public_key,
            "user_data": user_data,
            "nonce": nonce,
        }
        payload_map.update(extra or {})
        payload = cbor2.dumps(payload_map)
        prot = protected if protected is not None else cbor2.dumps({1: alg})
        sig_structure = cbor2.dumps(["Signature1", prot, b"", payload])
        hash_alg = hashes.SHA384() if isinstance(key.curve, ec.SECP384R1) else hashes.SHA256()
        r, s = decode_dss_signature(key.sign(sig_structure, ec.ECDSA(hash_alg)))
        n = (key.curve.key_size + 7) // 8
        sig = r.to_bytes(n, "big") + s.to_bytes(n, "big")
        doc = cbor2.dumps([prot, {}, payload, sig])
        return b"\xd2" + doc if tagged else doc


def make_nitro() -> FakeNitro:
    root_key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test.nitro-enclaves")])
    root = _ca(_builder(name, name, root_key.public_key()), None).sign(root_key, hashes.SHA384())
    inter_key = ec.generate_private_key(ec.SECP384R1())
    iname = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "zone.test.nitro-enclaves")])
    inter = _ca(_builder(iname, name, inter_key.public_key()), 0).sign(root_key, hashes.SHA384())
    return FakeNitro(root_key, root, inter_key, inter)


# --- SOURCE.md expectations ----------------------------------------------------------------------------

_BULLET = re.compile(r"^- ([^:]+): `([^`]*)`\s*$")


def source_sections(path: Path) -> dict[str, dict[str, str]]:
    """``## <file> ...`` sections of a SOURCE.md and their ``- key: `value``` bullets."""
    out: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            name = line[3:].split()[0]
            current = out.setdefault(name, {})
            continue
        m = _BULLET.match(line)
        if m and current is not None:
            current[m.group(1).strip()] = m.group(2)
    return out


def iso(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def shifted(t: datetime, **kw: float) -> datetime:
    return t + timedelta(**kw)
