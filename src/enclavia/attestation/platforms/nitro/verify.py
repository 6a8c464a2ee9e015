"""Verify an AWS Nitro attestation document. Checklist; each step raises its own error."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

from enclavia.attestation.claims import Claims, Revocation, Tee
from enclavia.attestation.platforms.nitro.abi import PCR_LEN, parse_cose_sign1
from enclavia.attestation.roots.aws import AWS_NITRO_ROOT_G1_PEM
from enclavia.crypto.pki import (
    Certificate,
    ChainCache,
    certificate_from_pem,
    parse_certificate,
    verify_chain,
    verify_ecdsa_p384,
)
from enclavia.errors import CertificateChainError, UntrustedRootError

CHAIN_CONTEXT = "nitro"
_ZERO_PCR = bytes(PCR_LEN)


@lru_cache(maxsize=8)
def _root(root_pem: bytes) -> Certificate:
    # Pure function of an immutable input (the pinned PEM), memoized to keep PEM decoding off the hot path.
    return certificate_from_pem(root_pem)


def verify(
    document: bytes,
    *,
    now: datetime,
    root_pem: bytes = AWS_NITRO_ROOT_G1_PEM,
    cache: ChainCache | None = None,
) -> Claims:
    """Verify a Nitro COSE_Sign1 attestation document at time ``now`` and return its claims.

    Binding (user_data against the expected report_data, nonce freshness, age) is checked by appraisal.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    # 1. Parse: COSE_Sign1 (tag 18 or untagged), protected header exactly {alg: ES384}, document fields with
    #    AWS's types and lengths.
    cose = parse_cose_sign1(document)
    doc = cose.document
    parse = cache.certificate if cache is not None else parse_certificate
    # 2. Certificates: the leaf, the bundle (root first, as AWS orders it) and the pinned root.
    leaf = parse(doc.certificate)
    bundle = [parse(der) for der in doc.cabundle]
    root = _root(root_pem)
    # 3. cabundle[0] is the pinned root, byte for byte.
    if bundle[0].der != root.der:
        raise UntrustedRootError("cabundle does not start at the pinned AWS Nitro root")
    # 4. Chain leaf <- cabundle[n-1] <- ... <- cabundle[1] <- root: names, signatures, CA constraints, every
    #    certificate valid at ``now`` (leaf certificates live about three hours).
    verify_chain([leaf, *reversed(bundle[1:])], root, now=now, cache=cache, context=CHAIN_CONTEXT)
    ku = leaf.key_usage
    if ku is not None and 0 not in ku:
        raise CertificateChainError("leaf certificate may not sign")
    # 5. COSE signature: ES384 (raw r||s) over Sig_structure with the leaf key (P-384 required).
    verify_ecdsa_p384(leaf, cose.signature, cose.sig_structure(), encoding="raw")
    # 6. Claims. PCR0 is the enclave image; debug-mode enclaves report PCR0..2 as zeros.
    debug = all(doc.pcrs[i] == _ZERO_PCR for i in (0, 1, 2))
    return Claims(
        tee=Tee.NITRO,
        measurement=doc.pcrs[0],
        measurements={f"PCR{i}": v for i, v in sorted(doc.pcrs.items())},
        report_data=doc.user_data if doc.user_data is not None else b"",
        debug=debug,
        issued_at=datetime.fromtimestamp(doc.timestamp_ms / 1000, tz=UTC),
        details={
            "module_id": doc.module_id,
            "digest": doc.digest,
            "timestamp_ms": doc.timestamp_ms,
            "public_key": doc.public_key,
            "user_data": doc.user_data,
            "leaf_certificate_sha256": leaf.sha256.hex(),
        },
        # No revocation source is consulted offline (see docs/attestation.md): policy must accept UNKNOWN.
        revocation=Revocation.UNKNOWN,
        nonce=doc.nonce,
    )
