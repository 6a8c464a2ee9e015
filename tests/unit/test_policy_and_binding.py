from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from enclavia.attestation.binding import check_report_data, compute_report_data
from enclavia.attestation.claims import Claims, Revocation, Tee
from enclavia.errors import (
    DebugEnclaveError,
    DevProfileRequiredError,
    EvidenceTooOldError,
    MeasurementNotAllowedError,
    PolicyLoadError,
    ReportDataMismatchError,
    RevocationUnknownError,
)
from enclavia.policy.document import appraise, parse_policy

M = "ab" * 48
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def _policy(profile: str = "dev", extra: str = "") -> str:
    return (
        f"policy_id: t\nrevision: 2\nprofile: {profile}\n{extra}"
        f"reference_values:\n  simulated:\n    - name: build-1\n      measurement: '{M}'\n"
    )


def _claims(**kw: object) -> Claims:
    base: dict[str, object] = {
        "tee": Tee.SIMULATED,
        "measurement": bytes.fromhex(M),
        "report_data": b"\x01" * 64,
        "debug": False,
        "issued_at": NOW,
    }
    base.update(kw)
    return Claims(**base)  # type: ignore[arg-type]


def test_report_data_matches_the_design_formula() -> None:
    nonce, kc, spk, md = b"n" * 32, b"k" * 41, b"s" * 32, b"m" * 48
    lp = lambda b: len(b).to_bytes(4, "big") + b  # noqa: E731
    want = hashlib.sha512(b"enclavia-attest-v1" + lp(nonce) + lp(kc) + lp(spk) + lp(md)).digest()
    assert compute_report_data(nonce, kc, spk, md) == want
    # Length prefixes make field boundaries unambiguous.
    assert compute_report_data(b"ab", b"c", spk, md) != compute_report_data(b"a", b"bc", spk, md)


def test_report_data_is_compared_whole() -> None:
    rd = compute_report_data(b"n", b"k", b"s", b"m")
    check_report_data(rd, rd)
    with pytest.raises(ReportDataMismatchError):
        check_report_data(rd[:32] + b"\x00" * 32, rd)
    with pytest.raises(ReportDataMismatchError):
        check_report_data(rd[:32], rd[:32])


def test_appraisal_allows_the_named_measurement() -> None:
    result = appraise(_claims(), parse_policy(_policy()), now=NOW)
    assert result.affirming and result.reference_name == "build-1" and result.policy_revision == 2


@pytest.mark.parametrize(
    ("claims", "error"),
    [
        (_claims(measurement=b"\x00" * 48), MeasurementNotAllowedError),
        (_claims(debug=True), DebugEnclaveError),
        (_claims(issued_at=NOW - timedelta(minutes=6)), EvidenceTooOldError),
        (_claims(issued_at=NOW + timedelta(minutes=6)), EvidenceTooOldError),
        (_claims(revocation=Revocation.UNKNOWN), RevocationUnknownError),
    ],
)
def test_appraisal_refusals(claims: Claims, error: type[Exception]) -> None:
    with pytest.raises(error):
        appraise(claims, parse_policy(_policy()), now=NOW)


def test_expected_report_data_is_enforced() -> None:
    with pytest.raises(ReportDataMismatchError):
        appraise(_claims(), parse_policy(_policy()), now=NOW, expected_report_data=b"\x02" * 64)


def test_simulated_needs_dev_profile() -> None:
    with pytest.raises(PolicyLoadError):
        parse_policy(_policy("production"))
    prod = parse_policy("policy_id: p\nrevision: 1\nprofile: production\n")
    with pytest.raises(DevProfileRequiredError):
        appraise(_claims(), prod, now=NOW)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "- a list",
        "policy_id: x\nrevision: 0\n",
        "policy_id: x\nrevision: true\n",
        "policy_id: x\nrevision: 1\nprofile: staging\n",
        "policy_id: x\nrevision: 1\nsurprise: 1\n",
        "policy_id: x\nrevision: 1\nprofile: dev\nreference_values:\n  simulated:\n    - name: a\n",
        "policy_id: x\nrevision: 1\nprofile: dev\nreference_values:\n  simulated: [{measurement: 'abc'}]\n",
        "policy_id: x\nrevision: 1\nprofile: dev\nreference_values:\n  simulated: []\n",
        "policy_id: x\nrevision: 1\nprofile: dev\nreference_values:\n  sgx: [{measurement: 'aa'}]\n",
        "policy_id: x\nrevision: 1\nrequirements: {max_evidence_age_s: -1}\n",
        "policy_id: x\nrevision: 1\ntrust: {simulated_platform_keys: ['00']}\n",
        "{{{",
    ],
)
def test_bad_policies_are_load_errors_never_wildcards(text: str) -> None:
    with pytest.raises(PolicyLoadError):
        parse_policy(text)
