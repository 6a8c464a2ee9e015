"""One entry point over every platform verifier: evidence bytes plus what the platform needs beside them.

Inputs each platform takes (anything else given is misuse and raises ValueError, so a caller never believes an
input was checked when it was ignored):

=========  ===========================================  =========================================
tee        certificates / collateral / aux              nonce
=========  ===========================================  =========================================
simulated  none                                         copied into the claims (binding: report_data)
nitro      none (the document carries its cabundle)     compared with the document's signed nonce
sev-snp    VCEK/VLEK first (DER or PEM), then ASK/ARK;  not accepted (bind it through report_data)
           aux = extended-report certificate table
tdx        collateral = DCAP collateral JSON (required)  not accepted (bind it through report_data)
nvidia     the device chain (PEM/DER, leaf first);      compared with the signed SPDM requester nonce
           a JSON evidence list carries its own
=========  ===========================================  =========================================
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from datetime import datetime

from enclavia.attestation.claims import Claims, Tee
from enclavia.attestation.pem import certificates_to_der, der_to_pem, is_pem
from enclavia.crypto.pki import ChainCache
from enclavia.errors import CertificateChainError, CollateralError, EvidenceFormatError, NonceMismatchError


def _no(what: str, value: object, tee: Tee) -> None:
    if value:
        raise ValueError(f"{tee} evidence takes no {what}")


def _is_json_list(evidence: bytes) -> bool:
    return evidence.lstrip()[:1] == b"["


def verify_evidence_all(
    tee: Tee,
    evidence: bytes,
    *,
    now: datetime,
    certificates: Sequence[bytes] = (),
    collateral: bytes | None = None,
    aux: bytes | None = None,
    nonce: bytes | None = None,
    trusted_simulated_keys: Sequence[bytes] = (),
    cache: ChainCache | None = None,
) -> tuple[Claims, ...]:
    """Like :func:`verify_evidence`, but a multi-GPU NVIDIA evidence list gives one Claims per GPU."""
    if tee is Tee.NVIDIA and isinstance(evidence, bytes) and _is_json_list(evidence):
        from enclavia.attestation.platforms.nvidia.verify import verify_evidence_list

        _no("certificates", certificates, tee)
        _no("collateral", collateral, tee)
        _no("aux", aux, tee)
        return verify_evidence_list(evidence, nonce=nonce, now=now, cache=cache)
    return (
        verify_evidence(
            tee,
            evidence,
            now=now,
            certificates=certificates,
            collateral=collateral,
            aux=aux,
            nonce=nonce,
            trusted_simulated_keys=trusted_simulated_keys,
            cache=cache,
        ),
    )


def verify_evidence(
    tee: Tee,
    evidence: bytes,
    *,
    now: datetime,
    certificates: Sequence[bytes] = (),
    collateral: bytes | None = None,
    aux: bytes | None = None,
    nonce: bytes | None = None,
    trusted_simulated_keys: Sequence[bytes] = (),
    cache: ChainCache | None = None,
) -> Claims:
    """Verify ``evidence`` for ``tee`` at ``now`` (signatures, chains to pinned roots, freshness inputs);
    return its claims or raise the platform's specific error. Appraisal (policy) is a separate step."""
    tee = Tee(tee)
    if not isinstance(evidence, bytes):
        raise TypeError("evidence must be bytes")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    certificates = tuple(certificates)
    if tee is Tee.SIMULATED:
        from enclavia.attestation.platforms.simulated.verify import verify as verify_simulated

        _no("certificates", certificates, tee)
        _no("collateral", collateral, tee)
        _no("aux", aux, tee)
        return verify_simulated(evidence, trusted_platform_keys=tuple(trusted_simulated_keys), nonce=nonce)
    _no("simulated platform keys", tuple(trusted_simulated_keys), tee)
    if tee is Tee.NITRO:
        from enclavia.attestation.platforms.nitro.verify import verify as verify_nitro

        _no("certificates", certificates, tee)
        _no("collateral", collateral, tee)
        _no("aux", aux, tee)
        claims = verify_nitro(evidence, now=now, cache=cache)
        if nonce is not None and (claims.nonce is None or not hmac.compare_digest(claims.nonce, nonce)):
            raise NonceMismatchError()
        return claims
    if tee is Tee.SEV_SNP:
        from enclavia.attestation.platforms.sevsnp.verify import verify as verify_snp

        _no("collateral", collateral, tee)
        _no("nonce (bind it through report_data)", nonce, tee)
        ders = certificates_to_der(certificates)
        vcek = ders[0] if ders else None
        chain = b"".join(der_to_pem(d) for d in ders[1:]) or None
        return verify_snp(evidence, now=now, vcek_der=vcek, chain_pem=chain, aux=aux, cache=cache)
    if tee is Tee.TDX:
        from enclavia.attestation.platforms.tdx.verify import verify as verify_tdx

        _no("certificates (the quote carries its PCK chain)", certificates, tee)
        _no("aux", aux, tee)
        _no("nonce (bind it through report_data)", nonce, tee)
        if collateral is None:
            raise CollateralError("TDX verification needs DCAP collateral")
        return verify_tdx(evidence, collateral=collateral, now=now)
    if tee is Tee.NVIDIA:
        from enclavia.attestation.platforms.nvidia.verify import verify as verify_gpu

        _no("collateral", collateral, tee)
        _no("aux", aux, tee)
        if _is_json_list(evidence):
            claims_list = verify_evidence_all(tee, evidence, now=now, nonce=nonce, cache=cache)
            if len(claims_list) != 1:
                raise EvidenceFormatError("evidence list holds several GPUs: use verify_evidence_all")
            return claims_list[0]
        if not certificates:
            raise CertificateChainError("GPU evidence needs its device certificate chain")
        pem = b"".join(c if is_pem(c) else der_to_pem(c) for c in certificates)
        return verify_gpu(evidence, cert_chain_pem=pem, nonce=nonce, now=now, cache=cache)
    raise ValueError("unknown TEE")  # pragma: no cover - Tee() above rejects anything else
