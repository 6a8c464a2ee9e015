"""Verify an Intel TDX DCAP quote (v4 or v5) against collateral, at a given time. Checklist; each step raises
its own error.

Cryptographic verification of the quote (attestation-key signature over header and body, QE report signature
by the PCK key, QE report binding of the attestation key, PCK chain to the Intel SGX Root CA, PCK and root CA
CRLs, TCB info and QE identity signatures and validity windows, TCB level matching) is done by dcap-qvl; the
claims come from this package's own parser (``abi``), never from dcap-qvl's output shape.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from types import MappingProxyType
from typing import Any

import dcap_qvl

from enclavia.attestation.claims import Claims, Revocation, Tee
from enclavia.attestation.pem import pem_certificates_cached
from enclavia.attestation.platforms.tdx.abi import INTEL_QE_VENDOR_ID, TdxQuote, parse_quote
from enclavia.attestation.roots.intel import INTEL_SGX_ROOT_CA_DER
from enclavia.errors import (
    AttestationError,
    CertificateChainError,
    CertificateExpiredError,
    CertificateNotYetValidError,
    CertificateRevokedError,
    CollateralError,
    EnclaviaError,
    EvidenceFormatError,
    SignatureInvalidError,
    TcbError,
    UntrustedRootError,
)

MAX_COLLATERAL_LEN = 1 << 20
COLLATERAL_KEYS = frozenset(
    {
        "pck_crl_issuer_chain",
        "root_ca_crl",
        "pck_crl",
        "tcb_info_issuer_chain",
        "tcb_info",
        "tcb_info_signature",
        "qe_identity_issuer_chain",
        "qe_identity",
        "qe_identity_signature",
    }
)
OPTIONAL_COLLATERAL_KEYS = frozenset({"pck_certificate_chain"})
_ISSUER_CHAINS = ("pck_crl_issuer_chain", "tcb_info_issuer_chain", "qe_identity_issuer_chain")


class TcbStatus(StrEnum):
    """Every TCB status Intel's TCB info defines. The policy names those it accepts (default: UpToDate)."""

    UP_TO_DATE = "UpToDate"
    SW_HARDENING_NEEDED = "SWHardeningNeeded"
    CONFIGURATION_NEEDED = "ConfigurationNeeded"
    CONFIGURATION_AND_SW_HARDENING_NEEDED = "ConfigurationAndSWHardeningNeeded"
    OUT_OF_DATE = "OutOfDate"
    OUT_OF_DATE_CONFIGURATION_NEEDED = "OutOfDateConfigurationNeeded"
    TD_RELAUNCH_ADVISED = "TDRelaunchAdvised"
    TD_RELAUNCH_ADVISED_CONFIGURATION_NEEDED = "TDRelaunchAdvisedConfigurationNeeded"
    REVOKED = "Revoked"


#: What each status means for a verifier. ``Revoked`` is refused here, whatever the policy says; every other
#: status is reported in the claims and accepted only if the matching policy entry names it.
TCB_STATUS_TABLE: Mapping[TcbStatus, str] = {
    TcbStatus.UP_TO_DATE: "platform and QE at the latest TCB level",
    TcbStatus.SW_HARDENING_NEEDED: "up to date, but advisories need software mitigations in the TD",
    TcbStatus.CONFIGURATION_NEEDED: "up to date, but the platform configuration is not (e.g. BIOS settings)",
    TcbStatus.CONFIGURATION_AND_SW_HARDENING_NEEDED: "both of the above",
    TcbStatus.OUT_OF_DATE: "TCB below the latest level: known vulnerabilities unpatched",
    TcbStatus.OUT_OF_DATE_CONFIGURATION_NEEDED: "out of date and misconfigured",
    TcbStatus.TD_RELAUNCH_ADVISED: "TDX module updated at runtime; relaunch the TD to use it",
    TcbStatus.TD_RELAUNCH_ADVISED_CONFIGURATION_NEEDED: "relaunch advised and configuration needed",
    TcbStatus.REVOKED: "platform keys revoked: always refused",
}
ACCEPTABLE_TCB_STATUSES = frozenset(s for s in TcbStatus if s is not TcbStatus.REVOKED)
DEFAULT_ACCEPTED_TCB_STATUSES = frozenset({TcbStatus.UP_TO_DATE})


def parse_tcb_status(value: object) -> TcbStatus:
    """Known status or TcbError (unknown strings are refused, never guessed)."""
    if not isinstance(value, str):
        raise TcbError("TCB status missing")
    try:
        status = TcbStatus(value)
    except ValueError:
        raise TcbError("unknown TCB status") from None
    if status is TcbStatus.REVOKED:
        raise TcbError("TCB status Revoked")
    return status


def _load_collateral(collateral: Mapping[str, Any] | bytes) -> tuple[Mapping[str, Any], Any]:
    if isinstance(collateral, (bytes, bytearray)):
        if len(collateral) > MAX_COLLATERAL_LEN:
            raise CollateralError("TDX collateral too large")
        return _collateral_from_json(bytes(collateral))
    if not isinstance(collateral, Mapping):
        raise TypeError("collateral must be a mapping or JSON bytes")
    try:
        text = json.dumps(dict(collateral), sort_keys=True)
    except (TypeError, ValueError, RecursionError):
        raise CollateralError("TDX collateral is not JSON-serialisable") from None
    return _collateral_from_json(text.encode("utf-8"))


@lru_cache(maxsize=64)
def _collateral_from_json(raw: bytes) -> tuple[Mapping[str, Any], Any]:
    """Validated collateral mapping and the dcap-qvl object. Memoised: one collateral serves many quotes."""
    if len(raw) > MAX_COLLATERAL_LEN:
        raise CollateralError("TDX collateral too large")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise CollateralError("TDX collateral is not JSON") from None
    if not isinstance(data, dict):
        raise CollateralError("TDX collateral must be a JSON object")
    keys = set(data)
    if not keys >= COLLATERAL_KEYS or keys - COLLATERAL_KEYS - OPTIONAL_COLLATERAL_KEYS:
        raise CollateralError("TDX collateral has missing or unknown fields")
    for k in COLLATERAL_KEYS:
        if not isinstance(data[k], str):
            raise CollateralError("TDX collateral field has the wrong type")
    pck = data.get("pck_certificate_chain")
    if pck is not None and not isinstance(pck, str):
        raise CollateralError("TDX collateral field has the wrong type")
    try:
        obj = dcap_qvl.QuoteCollateralV3.from_json(raw.decode("utf-8"))
    except (ValueError, TypeError):
        raise CollateralError("TDX collateral does not parse") from None
    return MappingProxyType(data), obj


def _check_pinned_root(quote: TdxQuote, collateral: Mapping[str, Any], root_der: bytes) -> None:
    if not hmac.compare_digest(quote.certification.pck_chain_der[-1], root_der):
        raise UntrustedRootError("TDX PCK chain does not end at the pinned Intel root")
    for key in _ISSUER_CHAINS:
        try:
            chain = pem_certificates_cached(str(collateral[key]).encode("ascii"))
        except (EvidenceFormatError, UnicodeEncodeError):
            raise CollateralError("TDX collateral issuer chain does not parse") from None
        if not hmac.compare_digest(chain[-1], root_der):
            raise UntrustedRootError("TDX collateral chain does not end at the pinned Intel root")


# dcap-qvl reports failures as ValueError text. Map the phrases to specific errors; order matters (first hit).
_DCAP_ERRORS: tuple[tuple[str, type[EnclaviaError], str], ...] = (
    ("tcb status is invalid: revoked", TcbError, "TCB status Revoked"),
    ("no matching tcb level", TcbError, "no TCB level in the collateral matches the platform"),
    ("tdx module", TcbError, "TDX module identity or TCB level not accepted"),
    ("certrevoked", CertificateRevokedError, "PCK certificate revoked"),
    ("certexpired", CertificateExpiredError, "certificate expired at the verification time"),
    ("certificate expired", CertificateExpiredError, "certificate expired at the verification time"),
    ("certnotvalidyet", CertificateNotYetValidError, "certificate not yet valid at the verification time"),
    ("crlexpired", CollateralError, "CRL expired at the verification time"),
    ("revocation list expired", CollateralError, "CRL expired at the verification time"),
    ("expired", CollateralError, "TDX collateral expired at the verification time"),
    ("in the future", CollateralError, "TDX collateral not yet valid at the verification time"),
    ("signature is invalid for tcb_info", CollateralError, "TCB info signature does not verify"),
    ("signature is invalid for qe_identity", CollateralError, "QE identity signature does not verify"),
    ("isv enclave report signature", SignatureInvalidError, "TDX quote signature does not verify"),
    ("signature is invalid for qe_report", SignatureInvalidError, "QE report signature does not verify"),
    ("qe report hash mismatch", SignatureInvalidError, "QE report does not bind the attestation key"),
    ("qe mrsigner", SignatureInvalidError, "quoting enclave is not Intel's"),
    ("qe isvprodid", SignatureInvalidError, "quoting enclave is not Intel's"),
    ("qe attributes", SignatureInvalidError, "quoting enclave is not Intel's"),
    ("qe miscselect", SignatureInvalidError, "quoting enclave is not Intel's"),
    ("unknownissuer", UntrustedRootError, "chain does not reach the pinned Intel root"),
    ("certificate chain", CertificateChainError, "PCK certificate chain does not verify"),
    ("decode tcbinfo", CollateralError, "TCB info collateral does not parse"),
    ("decode qeidentity", CollateralError, "QE identity collateral does not parse"),
    ("chain is too short", CollateralError, "TDX collateral issuer chain incomplete"),
    ("fmspc", CollateralError, "TDX collateral is for another platform (FMSPC)"),
    ("qe identity", CollateralError, "QE identity collateral does not match the quote"),
    ("tcb info", CollateralError, "TCB info collateral does not match the quote"),
    ("crl", CollateralError, "TDX collateral CRL invalid"),
    ("decode quote", EvidenceFormatError, "TDX quote does not parse"),
    ("unsupported", EvidenceFormatError, "TDX quote uses an unsupported format"),
)


def map_dcap_error(message: str) -> EnclaviaError:
    low = message.lower()
    for phrase, cls, detail in _DCAP_ERRORS:
        if phrase in low:
            return cls(detail)
    return AttestationError("TDX quote verification failed")


def _dcap_verify(raw: bytes, collateral: Any, root_der: bytes, now_secs: int) -> tuple[str, list[str]]:
    try:
        report = dcap_qvl.verify_with_root_ca(raw, collateral, root_der, now_secs)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise map_dcap_error(str(exc)) from None
    except BaseException as exc:  # a Rust panic surfaces as pyo3 PanicException (a BaseException)
        if isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit, MemoryError)):
            raise
        raise EvidenceFormatError("TDX quote verification aborted") from None
    status = report.status
    advisories = report.advisory_ids
    if not isinstance(status, str) or not isinstance(advisories, list):
        raise AttestationError("TDX verifier returned an unexpected result")
    return status, [str(a) for a in advisories]


def _cross_check(quote: TdxQuote) -> None:
    try:
        theirs: Any = dcap_qvl.parse_quote(quote.raw).report
        pairs = (
            (theirs.mr_td, quote.report.mr_td),
            (theirs.rt_mr0, quote.report.rtmr[0]),
            (theirs.rt_mr1, quote.report.rtmr[1]),
            (theirs.rt_mr2, quote.report.rtmr[2]),
            (theirs.rt_mr3, quote.report.rtmr[3]),
            (theirs.report_data, quote.report.report_data),
            (theirs.td_attributes, quote.report.td_attributes),
            (theirs.xfam, quote.report.xfam),
            (theirs.mr_config_id, quote.report.mr_config_id),
            (theirs.mr_owner, quote.report.mr_owner),
            (theirs.mr_owner_config, quote.report.mr_owner_config),
            (theirs.mr_seam, quote.report.mr_seam),
            (theirs.tee_tcb_svn, quote.report.tee_tcb_svn),
        )
    except (ValueError, TypeError, AttributeError):
        raise EvidenceFormatError("TDX quote body unreadable by the DCAP verifier") from None
    if not all(isinstance(a, bytes) and a == b for a, b in pairs):
        raise EvidenceFormatError("TDX quote body read differently by the DCAP verifier")


def _tcb_info_fields(collateral: Mapping[str, Any]) -> dict[str, object]:
    """FMSPC and evaluation data number from the (dcap-qvl-verified) TCB info; informational only."""
    out: dict[str, object] = {}
    try:
        info = json.loads(collateral["tcb_info"])
    except (ValueError, TypeError, RecursionError):
        return out
    if isinstance(info, dict):
        fmspc = info.get("fmspc")
        if isinstance(fmspc, str):
            out["fmspc"] = fmspc.lower()
        number = info.get("tcbEvaluationDataNumber")
        if isinstance(number, int) and not isinstance(number, bool):
            out["tcb_eval_data_number"] = number
        for key, name in (("issueDate", "collateral_issue_date"), ("nextUpdate", "collateral_next_update")):
            if isinstance(info.get(key), str):
                out[name] = info[key]
    return out


def claims_from_quote(
    quote: TdxQuote,
    *,
    tcb_status: TcbStatus,
    advisory_ids: Sequence[str] = (),
    tcb_extra: Mapping[str, object] | None = None,
) -> Claims:
    """The claims a verified quote makes. Pure mapping, no checks: call only on a verified quote."""
    rep = quote.report
    measurements: dict[str, bytes] = {
        "MRTD": rep.mr_td,
        "RTMR0": rep.rtmr[0],
        "RTMR1": rep.rtmr[1],
        "RTMR2": rep.rtmr[2],
        "RTMR3": rep.rtmr[3],
        "MRCONFIGID": rep.mr_config_id,
        "MROWNER": rep.mr_owner,
        "MROWNERCONFIG": rep.mr_owner_config,
        "MRSEAM": rep.mr_seam,
        "MRSIGNERSEAM": rep.mr_signer_seam,
    }
    if rep.mr_service_td is not None:
        measurements["MRSERVICETD"] = rep.mr_service_td
    tcb: dict[str, object] = {"status": str(tcb_status), "advisory_ids": list(advisory_ids)}
    tcb["tee_tcb_svn"] = rep.tee_tcb_svn
    if rep.tee_tcb_svn2 is not None:
        tcb["tee_tcb_svn2"] = rep.tee_tcb_svn2
    tcb.update(tcb_extra or {})
    details: dict[str, object] = {
        "quote_version": quote.header.version,
        "body_type": quote.body_type,
        "td_attributes": rep.td_attributes,
        "xfam": rep.xfam,
        "seam_attributes": rep.seam_attributes,
        "qe_vendor_id": quote.header.qe_vendor_id,
        "padding_len": quote.padding_len,
    }
    return Claims(
        tee=Tee.TDX,
        measurement=rep.mr_td,
        measurements=measurements,
        report_data=rep.report_data,
        debug=rep.debug,
        issued_at=None,  # a TDX quote carries no time; freshness comes from report_data binding a nonce
        tcb=tcb,
        details=details,
        revocation=Revocation.CHECKED,  # PCK CRL and root CA CRL from the collateral, checked by dcap-qvl
        nonce=None,
    )


def verify(
    quote: bytes,
    *,
    collateral: Mapping[str, Any] | bytes,
    now: datetime,
    root_der: bytes = INTEL_SGX_ROOT_CA_DER,
) -> Claims:
    """Verify a TDX quote with its DCAP collateral at ``now``; returns claims or raises a specific error."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    # 1. Parse exactly: TDX tee type, version 4/5, body type/size, ECDSA-P256 key, QE report certification
    #    data with an embedded PEM PCK chain; trailing bytes only as zero padding (dropped).
    q = parse_quote(quote)
    # 2. QE vendor is Intel.
    if not hmac.compare_digest(q.header.qe_vendor_id, INTEL_QE_VENDOR_ID):
        raise UntrustedRootError("TDX quote is not from Intel's quoting enclave")
    # 3. Collateral: exactly the QuoteCollateralV3 fields, each of the right type.
    col_map, col_obj = _load_collateral(collateral)
    # 4. The PCK chain in the quote and every collateral issuer chain end at the pinned Intel SGX Root CA.
    _check_pinned_root(q, col_map, root_der)
    # 5. dcap-qvl at ``now``: quote signature, QE report signature and binding, PCK chain and CRLs, TCB info
    #    and QE identity signatures and windows, TCB level match. Failures map to specific errors.
    status_text, advisories = _dcap_verify(q.raw, col_obj, root_der, int(now.timestamp()))
    # 6. Defence in depth: dcap-qvl's reading of the body it just verified agrees with ours, field by field.
    _cross_check(q)
    # 7. TCB status from the explicit table: Revoked and unknown strings refused here; the rest go to policy.
    status = parse_tcb_status(status_text)
    # 8. Claims from our own parse of the verified bytes.
    return claims_from_quote(
        q, tcb_status=status, advisory_ids=advisories, tcb_extra=_tcb_info_fields(col_map)
    )
