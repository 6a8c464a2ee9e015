"""Verify an AMD SEV-SNP attestation report. Checklist; each step raises its own error."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import lru_cache

from enclavia.attestation.claims import Claims, Revocation, Tee
from enclavia.attestation.platforms.sevsnp.abi import (
    ARK_GUID,
    ASK_GUID,
    VCEK_GUID,
    VLEK_GUID,
    AttestationReport,
    Product,
    SigningKey,
    TcbVersion,
    parse_cert_table,
    parse_report,
)
from enclavia.attestation.roots import amd
from enclavia.crypto.pki import (
    Certificate,
    ChainCache,
    certificate_from_pem,
    check_crl,
    check_not_revoked,
    der_integer,
    der_octet_string,
    der_string,
    parse_certificate,
    parse_crl,
    pem_to_der,
    verify_chain,
    verify_ecdsa_p384_rs,
)
from enclavia.errors import (
    CertificateChainError,
    ChipMismatchError,
    CollateralError,
    EnclaviaError,
    SignatureInvalidError,
    TcbError,
    UntrustedRootError,
)

CHAIN_CONTEXT = "sev-snp"

# AMD VCEK/VLEK X.509 extensions (AMD "Versioned Chip Endorsement Key (VCEK) Certificate and KDS Interface
# Specification" 57230).
OID_PRODUCT_NAME = "1.3.6.1.4.1.3704.1.2"
OID_BL_SPL = "1.3.6.1.4.1.3704.1.3.1"
OID_TEE_SPL = "1.3.6.1.4.1.3704.1.3.2"
OID_SNP_SPL = "1.3.6.1.4.1.3704.1.3.3"
OID_UCODE_SPL = "1.3.6.1.4.1.3704.1.3.8"
OID_FMC_SPL = "1.3.6.1.4.1.3704.1.3.9"
OID_HWID = "1.3.6.1.4.1.3704.1.4"
OID_CSP_ID = "1.3.6.1.4.1.3704.1.5"

_KEY_CN = {SigningKey.VCEK: "SEV-VCEK", SigningKey.VLEK: "SEV-VLEK"}


def _pinned(product: Product) -> tuple[bytes, bytes, bytes]:
    """(ARK, ASK, ASVK) PEM for a product."""
    if product is Product.MILAN:
        return amd.ARK_MILAN_PEM, amd.ASK_MILAN_PEM, amd.ASVK_MILAN_PEM
    if product is Product.GENOA:
        return amd.ARK_GENOA_PEM, amd.ASK_GENOA_PEM, amd.ASVK_GENOA_PEM
    return amd.ARK_TURIN_PEM, amd.ASK_TURIN_PEM, amd.ASVK_TURIN_PEM


@lru_cache(maxsize=16)
def _pem_cert(pem: bytes) -> Certificate:
    # Pure function of an immutable input (a pinned PEM), memoized to keep PEM decoding off the hot path.
    return certificate_from_pem(pem)


def _intermediate_cn(kind: SigningKey, product: Product) -> str:
    return f"SEV-{product.value}" if kind is SigningKey.VCEK else f"SEV-VLEK-{product.value}"


def _product_of(cert: Certificate) -> Product:
    raw = cert.extension(OID_PRODUCT_NAME)
    if raw is None:
        raise CertificateChainError("endorsement key certificate has no product name")
    try:
        return Product.parse(der_string(raw))
    except ValueError:
        raise CertificateChainError("endorsement key certificate names an unknown product") from None


def _spl(cert: Certificate, oid: str) -> int:
    raw = cert.extension(oid)
    if raw is None:
        raise CertificateChainError("endorsement key certificate lacks a TCB extension")
    value = der_integer(raw)
    if not 0 <= value <= 0xFF:
        raise CertificateChainError("endorsement key certificate TCB value out of range")
    return value


def _hwid(cert: Certificate, product: Product) -> bytes:
    raw = cert.extension(OID_HWID)
    if raw is None:
        raise CertificateChainError("VCEK has no hardware id")
    want = 8 if product is Product.TURIN else 64
    if len(raw) == want:
        return raw
    # Some issued VCEKs wrap the id in an OCTET STRING; accept that form too, nothing else.
    inner = der_octet_string(raw)
    if len(inner) != want:
        raise CertificateChainError("VCEK hardware id has the wrong length")
    return inner


def _determine_product(
    report: AttestationReport, key_cert: Certificate, product: str | Product | None
) -> Product:
    """Every source that names a product must agree: the caller, the report's CPUID (v3+), the key
    certificate."""
    from_cert = _product_of(key_cert)
    if product is not None:
        try:
            wanted = product if isinstance(product, Product) else Product.parse(product)
        except ValueError:
            raise ValueError("product must be Milan, Genoa or Turin") from None
        if wanted is not from_cert:
            raise ChipMismatchError("endorsement key is for another product")
    from_cpuid = report.cpuid_product
    if from_cpuid is not None and from_cpuid is not from_cert:
        raise ChipMismatchError("report CPUID and endorsement key name different products")
    return from_cert


def _supplied_certificates(
    parse: Callable[[bytes], Certificate], chain_pem: bytes | None, table_certs: Sequence[bytes]
) -> list[Certificate]:
    ders = [*(pem_to_der(chain_pem) if chain_pem is not None else []), *table_certs]
    return [parse(der) for der in ders]


def _check_tcb(key_cert: Certificate, tcb: TcbVersion, product: Product) -> None:
    """The endorsement key was derived for exactly the TCB the report says signed it."""
    ok = (
        _spl(key_cert, OID_BL_SPL) == tcb.bootloader
        and _spl(key_cert, OID_TEE_SPL) == tcb.tee
        and _spl(key_cert, OID_SNP_SPL) == tcb.snp
        and _spl(key_cert, OID_UCODE_SPL) == tcb.microcode
    )
    if product is Product.TURIN:
        ok = _spl(key_cert, OID_FMC_SPL) == tcb.fmc and ok
    if not ok:
        raise TcbError("reported TCB does not match the endorsement key certificate")


def _verify_endorsement_chain(
    key_cert: Certificate,
    ark: Certificate,
    want_cn: str,
    supplied: Sequence[Certificate],
    bundled: Sequence[Certificate],
    *,
    now: datetime,
    cache: ChainCache | None,
) -> Certificate:
    """key <- intermediate <- ARK; returns the intermediate that chained. Supplied roots must be the pinned
    ARK. Intermediates are tried in order (supplied, then bundled); the first that chains wins, else the first
    error is raised."""
    for c in supplied:
        if c.self_issued and c.der != ark.der:
            raise UntrustedRootError("supplied AMD root is not the pinned ARK for this product")
    candidates: list[Certificate] = []
    for c in (*supplied, *bundled):
        if not c.self_issued and c.subject == key_cert.issuer and c not in candidates:
            candidates.append(c)
    if not candidates:
        raise CertificateChainError("no AMD signing key certificate issues this endorsement key")
    first_error: EnclaviaError | None = None
    for inter in candidates:
        if inter.subject_common_name != want_cn:
            first_error = first_error or CertificateChainError("endorsement key chain is of the wrong kind")
            continue
        try:
            verify_chain([key_cert, inter], ark, now=now, cache=cache, context=CHAIN_CONTEXT)
        except EnclaviaError as exc:
            first_error = first_error or exc
            continue
        return inter
    assert first_error is not None
    raise first_error


def verify(
    report: bytes,
    *,
    now: datetime,
    vcek_der: bytes | None = None,
    chain_pem: bytes | None = None,
    aux: bytes | None = None,
    product: str | None = None,
    cache: ChainCache | None = None,
    ark_pem: bytes | None = None,
    crl_der: bytes | None = None,
) -> Claims:
    """Verify a SEV-SNP report at time ``now`` and return its claims.

    ``vcek_der``: the VCEK or VLEK certificate (DER). ``aux``: the extended report's certificate table (used
    when ``vcek_der`` is not given, and for its ASK/ASVK). ``chain_pem``: ASK/ASVK (+ ARK) as AMD KDS serves
    them; optional, the AMD intermediates are bundled. ``product``: Milan, Genoa or Turin, checked against the
    certificate and the report. ``crl_der``: AMD's CRL for the product (KDS ``.../crl``, signed by the ARK);
    when given and current, a revoked ASK/ASVK is refused and the claims say revocation was checked.
    ``ark_pem`` replaces the pinned ARK (tests and not-yet-bundled products only).
    Binding of report_data to a nonce and key configuration is checked by appraisal.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    # 1. Parse: exact length, version 2..5, ECDSA P-384 algorithm, reserved fields zero.
    rep = parse_report(report)
    if rep.signing_key is SigningKey.NONE:
        raise SignatureInvalidError("report is not signed")
    parse: Callable[[bytes], Certificate] = cache.certificate if cache is not None else parse_certificate
    # 2. Endorsement key certificate: given, or from the extended report's certificate table.
    table = parse_cert_table(aux) if aux else None
    table_key = None
    if table is not None:
        table_key = table.get(VCEK_GUID if rep.signing_key is SigningKey.VCEK else VLEK_GUID)
    key_der = vcek_der if vcek_der is not None else table_key
    if key_der is None:
        raise CollateralError("no VCEK/VLEK certificate for this report")
    if vcek_der is not None and table_key is not None and not hmac.compare_digest(vcek_der, table_key):
        raise CollateralError("given endorsement key differs from the certificate table")
    key_cert = parse(key_der)
    # 3. The key kind matches the report: a VLEK report is never checked with a VCEK, nor the reverse.
    if key_cert.subject_common_name != _KEY_CN[rep.signing_key]:
        raise CertificateChainError("endorsement key kind does not match the report's signing key")
    # 4. Product: caller, report CPUID (v3+) and certificate agree; it selects the pinned ARK and TCB layout.
    prod = _determine_product(rep, key_cert, product)
    ark_default, ask_pem, asvk_pem = _pinned(prod)
    ark = _pem_cert(ark_pem if ark_pem is not None else ark_default)
    # 5. Chain: key <- ASK (VCEK) or ASVK (VLEK) <- pinned ARK, RSA-PSS SHA-384, each valid at ``now``.
    table_certs = [d for d in (table.get(ASK_GUID), table.get(ARK_GUID)) if d] if table else []
    supplied = _supplied_certificates(parse, chain_pem, table_certs)
    bundled: list[Certificate] = []
    if ark_pem is None:
        bundled.append(_pem_cert(ask_pem if rep.signing_key is SigningKey.VCEK else asvk_pem))
    inter = _verify_endorsement_chain(
        key_cert, ark, _intermediate_cn(rep.signing_key, prod), supplied, bundled, now=now, cache=cache
    )
    # 6. Revocation, when the caller supplies AMD's CRL: signed by the ARK, current at ``now``, and the
    #    ASK/ASVK not listed. (VCEKs and VLEKs are not revoked by serial: they all carry serial 0.)
    revocation = Revocation.UNKNOWN
    if crl_der is not None:
        crl = parse_crl(crl_der)
        check_crl(crl, ark, now)
        check_not_revoked(crl, inter)
        revocation = Revocation.CHECKED
    # 7. TCB: the certificate's SPL extensions equal REPORTED_TCB (the TCB the key was derived for).
    reported = TcbVersion.decode(rep.reported_tcb, prod)
    _check_tcb(key_cert, reported, prod)
    # 8. Chip: a VCEK's hwID equals CHIP_ID (Turin: first 8 bytes, rest zero), unless the host masked CHIP_ID.
    if rep.signing_key is SigningKey.VCEK and not rep.mask_chip_key:
        hwid = _hwid(key_cert, prod)
        expected = hwid + bytes(64 - len(hwid))
        if not hmac.compare_digest(rep.chip_id, expected):
            raise ChipMismatchError()
    # 9. Report signature: ECDSA P-384/SHA-384 over bytes 0x000..0x29F with the VCEK/VLEK key.
    verify_ecdsa_p384_rs(key_cert, rep.signature_r, rep.signature_s, rep.signed_bytes)
    # 10. Claims.
    return _claims(rep, prod, key_cert, reported, revocation)


def _claims(
    rep: AttestationReport, prod: Product, key_cert: Certificate, reported: TcbVersion, revocation: Revocation
) -> Claims:
    details: dict[str, object] = {
        "version": rep.version,
        "product": prod.value,
        "signing_key": rep.signing_key.name,
        "vmpl": rep.vmpl,
        "guest_svn": rep.guest_svn,
        "policy": rep.policy.raw,
        "policy_bits": rep.policy.as_dict(),
        "platform_info": rep.platform_info.raw,
        "platform_info_bits": rep.platform_info.as_dict(),
        "author_key_en": rep.author_key_en,
        "mask_chip_key": rep.mask_chip_key,
        "chip_id": rep.chip_id,
        "family_id": rep.family_id,
        "image_id": rep.image_id,
        "host_data": rep.host_data,
        "id_key_digest": rep.id_key_digest,
        "author_key_digest": rep.author_key_digest,
        "report_id": rep.report_id,
        "report_id_ma": rep.report_id_ma,
        "current_tcb": TcbVersion.decode(rep.current_tcb, prod).as_dict(),
        "committed_tcb": TcbVersion.decode(rep.committed_tcb, prod).as_dict(),
        "launch_tcb": TcbVersion.decode(rep.launch_tcb, prod).as_dict(),
        "current_version": f"{rep.current_major}.{rep.current_minor}.{rep.current_build}",
        "committed_version": f"{rep.committed_major}.{rep.committed_minor}.{rep.committed_build}",
        "endorsement_key_sha256": key_cert.sha256.hex(),
    }
    if rep.cpuid_fam_id is not None:
        details["cpuid"] = {"family": rep.cpuid_fam_id, "model": rep.cpuid_mod_id, "stepping": rep.cpuid_step}
    if rep.launch_mit_vector is not None:
        details["launch_mit_vector"] = rep.launch_mit_vector
        details["current_mit_vector"] = rep.current_mit_vector
    csp = key_cert.extension(OID_CSP_ID)
    if csp is not None and rep.signing_key is SigningKey.VLEK:
        details["csp_id"] = der_string(csp)
    return Claims(
        tee=Tee.SEV_SNP,
        measurement=rep.measurement,
        measurements={"MEASUREMENT": rep.measurement},
        report_data=rep.report_data,
        debug=rep.policy.debug,
        issued_at=None,  # the report carries no time: freshness comes from the nonce in report_data
        tcb=reported.as_dict(),
        details=details,
        # Without a CRL nothing is consulted offline (docs/attestation.md): policy must accept UNKNOWN.
        revocation=revocation,
    )
