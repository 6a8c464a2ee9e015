"""Synthetic NVIDIA-shaped SPDM evidence under a test root, for cases real vectors cannot give (expired
certificates, Blackwell chip names, chosen nonces for composition)."""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID


@dataclass
class SynthGpu:
    root_pem: bytes
    chain_pem: bytes
    key: ec.EllipticCurvePrivateKey

    def report(
        self,
        nonce: bytes,
        measurements: dict[int, bytes] | None = None,
        driver: bytes = b"550.90.07\x00",
        vbios: bytes = bytes.fromhex("009f009601000000"),
    ) -> bytes:
        measurements = measurements or {i: bytes([i]) * 48 for i in range(1, 5)}
        request = bytes([0x11, 0xE0, 0x01, 0xFF]) + nonce + b"\x00"
        record = b""
        for index, value in measurements.items():
            dmtf = bytes([0x01]) + struct.pack("<H", len(value)) + value
            record += bytes([index, 0x01]) + struct.pack("<H", len(dmtf)) + dmtf
        opaque = struct.pack("<HH", 3, len(driver)) + driver + struct.pack("<HH", 6, len(vbios)) + vbios
        response = (
            bytes([0x11, 0x60, 0x00, 0x00, len(measurements)])
            + len(record).to_bytes(3, "little")
            + record
            + os.urandom(32)
            + struct.pack("<H", len(opaque))
            + opaque
        )
        der = self.key.sign(request + response, ec.ECDSA(hashes.SHA384()))
        r, s = decode_dss_signature(der)
        return request + response + r.to_bytes(48, "big") + s.to_bytes(48, "big")


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_gpu(
    chip: str = "GH100",
    *,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
) -> SynthGpu:
    now = datetime.now(UTC)
    nb = not_before or now - timedelta(days=1)
    na = not_after or now + timedelta(days=365)
    root_key = ec.generate_private_key(ec.SECP384R1())
    root = (
        x509.CertificateBuilder()
        .subject_name(_name("Test Device Identity CA"))
        .issuer_name(_name("Test Device Identity CA"))
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime(2020, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2099, 1, 1, tzinfo=UTC))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(root_key, hashes.SHA384())
    )
    brom_key = ec.generate_private_key(ec.SECP384R1())
    brom = (
        x509.CertificateBuilder()
        .subject_name(_name(f"{chip} A01 GSP BROM"))
        .issuer_name(root.subject)
        .public_key(brom_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime(2020, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2099, 1, 1, tzinfo=UTC))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(root_key, hashes.SHA384())
    )
    leaf_key = ec.generate_private_key(ec.SECP384R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name(f"{chip} A01 GSP FMC LF"))
        .issuer_name(brom.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(nb)
        .not_valid_after(na)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
        )
        .sign(brom_key, hashes.SHA384())
    )
    pem = serialization.Encoding.PEM
    return SynthGpu(
        root_pem=root.public_bytes(pem),
        chain_pem=leaf.public_bytes(pem) + brom.public_bytes(pem) + root.public_bytes(pem),
        key=leaf_key,
    )
