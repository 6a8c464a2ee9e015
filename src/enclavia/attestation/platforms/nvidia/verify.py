"""Verify NVIDIA GPU (Hopper, Blackwell) SPDM attestation evidence at a given time. Checklist; each step
raises its own error.

What is not checked here, and why: revocation (NVIDIA publishes device-certificate status only through its
online OCSP service; claims say ``Revocation.UNKNOWN`` and the policy must accept that explicitly), and RIM
comparison (reference measurements are pinned per index in the policy instead of fetched from NVIDIA's RIM
service).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

from enclavia.attestation.claims import Claims, Revocation, Tee
from enclavia.attestation.platforms.nvidia.abi import NONCE_LEN, GpuAttestationReport, parse_report
from enclavia.attestation.roots.nvidia import NVIDIA_DEVICE_IDENTITY_CA_PEM
from enclavia.crypto.pki import (
    Certificate,
    ChainCache,
    certificate_from_pem,
    load_pem_certificates,
    verify_chain,
    verify_ecdsa_p384,
)
from enclavia.errors import (
    CertificateChainError,
    EvidenceFormatError,
    NonceMismatchError,
)

MAX_CHAIN_PEM_LEN = 64 * 1024
MAX_EVIDENCE_LIST_LEN = 4 << 20
MAX_GPUS = 16
KEY_USAGE_DIGITAL_SIGNATURE = 0


class GpuArchitecture(StrEnum):
    HOPPER = "HOPPER"
    BLACKWELL = "BLACKWELL"


# Chip names in the device certificates (leaf "GH100 A01 GSP FMC LF", BROM "GB100 A01 GSP BROM", ...).
_ARCH_PREFIXES: tuple[tuple[str, GpuArchitecture], ...] = (
    ("GH1", GpuArchitecture.HOPPER),
    ("GB1", GpuArchitecture.BLACKWELL),
    ("GB2", GpuArchitecture.BLACKWELL),
)


def architecture_of(leaf: Certificate) -> GpuArchitecture:
    cn = leaf.subject_common_name or ""
    for prefix, arch in _ARCH_PREFIXES:
        if cn.startswith(prefix):
            return arch
    raise EvidenceFormatError("GPU architecture not supported")


def _chain(cert_chain_pem: bytes, root: Certificate) -> list[Certificate]:
    if not isinstance(cert_chain_pem, bytes):
        raise TypeError("cert_chain_pem must be bytes")
    if len(cert_chain_pem) > MAX_CHAIN_PEM_LEN:
        raise CertificateChainError("GPU certificate chain too large")
    certs = load_pem_certificates(cert_chain_pem)
    if certs and certs[-1].der == root.der:
        certs = certs[:-1]  # the bundle carries the root; what counts is the pinned one
    if not certs:
        raise CertificateChainError("GPU certificate chain has no device certificate")
    return certs


def claims_from_report(
    report: GpuAttestationReport, chain: Sequence[Certificate], arch: GpuArchitecture
) -> Claims:
    """The claims a verified report makes. Pure mapping, no checks: call only on verified evidence."""
    resp = report.response
    measurements = {f"M{b.index}": b.value for b in resp.blocks}
    opaque = {
        f.name: f.value for f in resp.opaque_fields if f.name not in ("driver_version", "vbios_version")
    }
    tcb: dict[str, object] = {}
    if resp.driver_version is not None:
        tcb["driver_version"] = resp.driver_version
    if resp.vbios_version is not None:
        tcb["vbios_version"] = resp.vbios_version
    device = chain[1] if len(chain) > 1 else chain[0]  # BROM certificate: one per physical GPU
    return Claims(
        tee=Tee.NVIDIA,
        # Digest over the whole signed measurement record: one value that changes when any block does.
        measurement=hashlib.sha384(resp.record).digest(),
        measurements=measurements,
        report_data=b"",  # SPDM carries no report_data; the binding is the requester nonce (see compose)
        debug=False,  # SPDM evidence has no debug flag; debug firmware measures differently (pin indices)
        issued_at=None,
        tcb=tcb,
        details={
            "arch": str(arch),
            "spdm_version": f"{resp.version >> 4}.{resp.version & 0xF}",
            "device_id": device.sha256.hex(),
            "device_model": device.subject_common_name or "",
            "responder_nonce": resp.nonce,
            "measurement_types": {f"M{b.index}": b.value_type for b in resp.blocks},
            "opaque": opaque,
        },
        revocation=Revocation.UNKNOWN,  # no offline source: NVIDIA device revocation is online OCSP only
        nonce=report.request.nonce,
    )


def verify(
    report: bytes,
    *,
    cert_chain_pem: bytes,
    nonce: bytes | None,
    now: datetime,
    root_pem: bytes = NVIDIA_DEVICE_IDENTITY_CA_PEM,
    cache: ChainCache | None = None,
) -> Claims:
    """Verify one GPU's SPDM report with its device certificate chain at ``now``.

    ``nonce``: the 32-byte nonce the verifier (or the composition rule) expects in the request; None skips the
    comparison here and leaves ``claims.nonce`` for the caller to bind (``compose`` does).
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if nonce is not None and (not isinstance(nonce, bytes) or len(nonce) != NONCE_LEN):
        raise ValueError("nonce must be 32 bytes")
    # 1. Parse exactly: SPDM 1.1 GET_MEASUREMENTS request (signature, all measurements) || MEASUREMENTS
    #    response; blocks, opaque TLVs and signature consumed with no byte left over.
    rep = parse_report(report)
    # 2. Device chain (leaf first) verifies to the pinned NVIDIA Device Identity CA, every certificate valid
    #    at ``now``, CA flags and path lengths honoured.
    root = certificate_from_pem(root_pem)
    chain = _chain(cert_chain_pem, root)
    verify_chain(chain, root, now=now, cache=cache, context="nvidia-device")
    leaf = chain[0]
    ku = leaf.key_usage
    if ku is not None and KEY_USAGE_DIGITAL_SIGNATURE not in ku:
        raise CertificateChainError("GPU leaf key may not sign")
    # 3. The SPDM signature (ECDSA P-384, SHA-384 over request || response minus signature) by the leaf key.
    verify_ecdsa_p384(leaf, rep.response.signature, rep.signed_bytes, encoding="raw")
    # 4. Freshness: the signed requester nonce is the one expected.
    if nonce is not None and not hmac.compare_digest(rep.request.nonce, nonce):
        raise NonceMismatchError()
    # 5. Architecture from the certified chip name (Hopper GH1xx, Blackwell GB1xx/GB2xx).
    arch = architecture_of(leaf)
    # 6. Claims; revocation is UNKNOWN and left to policy (requirements.accept_revocation_unknown).
    return claims_from_report(rep, chain, arch)


def _b64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise EvidenceFormatError(f"GPU evidence {what} missing")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise EvidenceFormatError(f"GPU evidence {what} is not base64") from None


def verify_evidence_list(
    data: bytes,
    *,
    nonce: bytes | None,
    now: datetime,
    root_pem: bytes = NVIDIA_DEVICE_IDENTITY_CA_PEM,
    cache: ChainCache | None = None,
) -> tuple[Claims, ...]:
    """Verify a JSON list of per-GPU evidence as NVIDIA's attestation SDK emits it (e.g. an 8xH100
    protected-PCIe system): ``[{arch, nonce, evidence: b64 SPDM, certificate: b64 PEM chain, driver_version?,
    vbios_version?, version?}, ...]``.

    Each entry is verified on its own; then all must share one requester nonce (the expected one, if given),
    the unsigned JSON fields must agree with the signed ones, and no device may appear twice.
    """
    if len(data) > MAX_EVIDENCE_LIST_LEN:
        raise EvidenceFormatError("GPU evidence list too large")
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise EvidenceFormatError("GPU evidence list is not JSON") from None
    if not isinstance(doc, list) or not 1 <= len(doc) <= MAX_GPUS:
        raise EvidenceFormatError("GPU evidence list must be a non-empty JSON array")
    out: list[Claims] = []
    for entry in doc:
        if not isinstance(entry, dict):
            raise EvidenceFormatError("GPU evidence entry must be an object")
        if set(entry) - {
            "arch",
            "nonce",
            "evidence",
            "certificate",
            "driver_version",
            "vbios_version",
            "version",
        }:
            raise EvidenceFormatError("unknown field in GPU evidence entry")
        claims = verify(
            _b64(entry.get("evidence"), "report"),
            cert_chain_pem=_b64(entry.get("certificate"), "certificate"),
            nonce=nonce,
            now=now,
            root_pem=root_pem,
            cache=cache,
        )
        # The JSON fields are not signed: they must say what the signed report says.
        if str(entry.get("arch", "")).upper() != claims.details["arch"]:
            raise EvidenceFormatError("GPU evidence arch does not match the certified chip")
        stated = entry.get("nonce")
        if not isinstance(stated, str) or stated.lower() != (claims.nonce or b"").hex():
            raise NonceMismatchError("GPU evidence nonce field does not match the signed request")
        for key in ("driver_version", "vbios_version"):
            if key in entry and str(entry[key]).upper() != str(claims.tcb.get(key, "")).upper():
                raise EvidenceFormatError("GPU evidence version field does not match the signed report")
        out.append(claims)
    if len({c.nonce for c in out}) != 1:
        raise NonceMismatchError("GPUs in one evidence list answered different nonces")
    if len({c.details["device_id"] for c in out}) != len(out):
        raise EvidenceFormatError("the same GPU appears twice in the evidence list")
    return tuple(out)
