"""Every DCAP vector in tests/assets/vectors/tdx, at the time its SOURCE.md pins, with the values stated."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from enclavia.attestation.claims import Revocation, Tee
from enclavia.attestation.platforms.tdx.abi import TEE_TYPE_TDX, parse_quote
from enclavia.attestation.platforms.tdx.verify import verify
from enclavia.attestation.roots.intel import INTEL_SGX_ROOT_CA_DER, INTEL_SGX_ROOT_CA_SHA256
from enclavia.errors import EvidenceFormatError, TcbError
from tests.conftest import VECTORS
from tests.tee_vectors import TdxCase, read_evidence, tdx_cases

CASES = tdx_cases(VECTORS)  # parametrize needs the list at collection; same root as the fixture
TDX_CASES = [c for c in CASES if int(c.fields["tee_type"], 16) == TEE_TYPE_TDX]


def test_pinned_intel_root_matches_source_md(vectors: Path) -> None:
    text = (vectors / "tdx" / "dcap-qvl" / "SOURCE.md").read_text()
    m = re.search(r"Intel SGX Root CA: SHA-256 fingerprint ([0-9a-f]{64})", text)
    assert m
    assert hashlib.sha256(INTEL_SGX_ROOT_CA_DER).hexdigest() == m.group(1) == INTEL_SGX_ROOT_CA_SHA256
    assert (vectors / "tdx" / "dcap-qvl" / "intel_sgx_root_ca.der").read_bytes() == INTEL_SGX_ROOT_CA_DER


def test_every_vector_is_covered(vectors: Path) -> None:
    files = {c.file for c in CASES}
    quotes = {
        p.name
        for p in (vectors / "tdx" / "dcap-qvl").iterdir()
        if not p.name.endswith((".json", ".md", ".der"))
    }
    assert quotes == files


@pytest.mark.parametrize("case", TDX_CASES, ids=lambda c: c.file)
def test_parse_matches_source_md(vectors: Path, case: TdxCase) -> None:
    raw = read_evidence(vectors / "tdx" / "dcap-qvl" / case.file)
    f = case.fields
    assert len(raw) == int(f["quote bytes"])
    assert hashlib.sha256(raw).hexdigest() == f["sha256(quote bytes)"]
    q = parse_quote(raw)
    rep = q.report
    assert q.header.version == int(f["version"])
    assert q.header.att_key_type == int(f["att_key_type"])
    assert q.header.qe_vendor_id.hex() == f["qe_vendor_id"]
    assert q.body_type == int(f["body_type"])
    assert rep.tee_tcb_svn.hex() == f["tee_tcb_svn"]
    assert rep.mr_seam.hex() == f["mrseam"]
    assert rep.td_attributes.hex() == f["td_attributes"]
    assert rep.xfam.hex() == f["xfam"]
    assert rep.mr_td.hex() == f["mrtd"]
    assert rep.mr_config_id.hex() == f["mrconfigid"]
    assert rep.mr_owner.hex() == f["mrowner"]
    assert rep.mr_owner_config.hex() == f["mrownerconfig"]
    for i in range(4):
        assert rep.rtmr[i].hex() == f[f"rtmr{i}"]
    assert rep.report_data.hex() == f["report_data"]
    assert q.padding_len == int(f["trailing_bytes"])
    assert rep.debug is (f["TD DEBUG bit set"] == "True")
    if "tee_tcb_svn2" in f:
        assert rep.tee_tcb_svn2 is not None and rep.tee_tcb_svn2.hex() == f["tee_tcb_svn2"]
        assert rep.mr_service_td is not None and rep.mr_service_td.hex() == f["mrservicetd"]
    else:
        assert rep.tee_tcb_svn2 is None
    assert len(q.certification.pck_chain_der) == 3
    assert q.certification.pck_chain_der[-1] == INTEL_SGX_ROOT_CA_DER


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.file)
def test_verify_at_pinned_time(vectors: Path, case: TdxCase) -> None:
    d = vectors / "tdx" / "dcap-qvl"
    raw = read_evidence(d / case.file)
    collateral = (d / case.collateral).read_bytes()
    if int(case.fields["tee_type"], 16) != TEE_TYPE_TDX:
        # The SGX quote verifies under dcap-qvl, but it is not TDX evidence: refused at parse.
        with pytest.raises(EvidenceFormatError):
            verify(raw, collateral=collateral, now=case.at)
        return
    if not case.ok:
        assert case.error == "No matching TCB level found"
        with pytest.raises(TcbError):
            verify(raw, collateral=collateral, now=case.at)
        return
    claims = verify(raw, collateral=collateral, now=case.at)
    f = case.fields
    assert claims.tee is Tee.TDX
    assert claims.measurement.hex() == f["mrtd"]
    assert claims.measurements["MRTD"].hex() == f["mrtd"]
    for i in range(4):
        assert claims.measurements[f"RTMR{i}"].hex() == f[f"rtmr{i}"]
    assert claims.measurements["MRCONFIGID"].hex() == f["mrconfigid"]
    assert claims.report_data.hex() == f["report_data"]
    assert claims.debug is False
    assert claims.tcb["status"] == case.status
    assert claims.tcb["advisory_ids"] == case.advisories
    assert claims.tcb["fmspc"] == f["fmspc"].lower()
    assert claims.revocation is Revocation.CHECKED
    assert claims.issued_at is None
    json.dumps(claims.to_json())
    # The same collateral as a mapping gives the same claims.
    again = verify(raw, collateral=json.loads(collateral), now=case.at)
    assert again.to_json() == claims.to_json()
