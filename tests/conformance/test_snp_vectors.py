"""Real AMD SEV-SNP evidence (virtee/sev, confidential-containers/trustee, google/go-sev-guest) verifies at
the times SOURCE.md pins, with the values SOURCE.md states (read from SOURCE.md, not retyped). Chain-only sets
(Genoa, Turin) verify up to the pinned ARKs."""

from __future__ import annotations

import ast
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from enclavia.attestation.claims import Revocation, Tee
from enclavia.attestation.platforms.sevsnp import verify as snp
from enclavia.attestation.platforms.sevsnp.abi import (
    ARK_GUID,
    ASK_GUID,
    VCEK_GUID,
    VLEK_GUID,
    Product,
    parse_report,
)
from enclavia.attestation.roots import amd
from enclavia.crypto.pki import (
    ChainCache,
    certificate_from_pem,
    der_integer,
    load_pem_certificates,
    parse_certificate,
    verify_chain,
)
from enclavia.errors import CertificateExpiredError, CertificateNotYetValidError
from tests.attestation_factory import cert_table
from tests.conftest import VECTORS

_HEADER = re.compile(r"^## (\S+) \((VCEK|VLEK), (\w+)(?:, \w+)?\) \(key: (\S+), chain: (\S+)\)\s*$")
_BULLET = re.compile(r"^- ([^:]+): `([^`]*)`\s*$")
_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]


@dataclass(frozen=True)
class SnpCase:
    set_name: str
    report: str
    kind: str
    product: str
    key: str
    chain: str
    at: datetime
    fields: dict[str, str]

    @property
    def id(self) -> str:
        return f"{self.set_name}/{self.report}"


def _pinned_time(text: str) -> datetime:
    m = re.search(r"time\.Date\((\d+), time\.(\w+), (\d+), (\d+), (\d+), (\d+), 0, time\.UTC\)", text)
    if m:
        y, mon, d, h, mi, s = m.groups()
        return datetime(int(y), _MONTHS.index(mon) + 1, int(d), int(h), int(mi), int(s), tzinfo=UTC)
    m = re.search(r"e\.g\. (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)", text)
    assert m, "SOURCE.md pins no verification time"
    return datetime.fromisoformat(m.group(1).replace("Z", "+00:00"))


def load_cases(vectors: Path) -> list[SnpCase]:
    cases: list[SnpCase] = []
    for source in sorted((vectors / "snp").glob("*/SOURCE.md")):
        text = source.read_text(encoding="utf-8")
        at = _pinned_time(text)
        current: dict[str, str] | None = None
        for line in text.splitlines():
            h = _HEADER.match(line)
            if h:
                current = {}
                report, kind, product, key, chain = h.groups()
                cases.append(SnpCase(source.parent.name, report, kind, product, key, chain, at, current))
                continue
            b = _BULLET.match(line)
            if b and current is not None:
                current[b.group(1).strip()] = b.group(2)
    return cases


CASES = load_cases(VECTORS)  # parametrize needs the list at collection; same root as the fixture


def test_every_snp_report_in_vectors_has_a_case(vectors: Path) -> None:
    reports = {(p.parent.name, p.name) for p in (vectors / "snp").glob("*/*.bin")}
    reports |= {(p.parent.name, p.name) for p in (vectors / "snp").glob("*/report_*.hex")}
    covered = {(c.set_name, c.report) for c in CASES}
    # report_milan.hex is the hex text of report_milan.bin
    assert {r for r in reports if not r[1].endswith(".hex")} == covered
    assert len(CASES) == 4


def _read(vectors: Path, case: SnpCase, name: str) -> bytes:
    return (vectors / "snp" / case.set_name / name).read_bytes()


def _tcb_le(v: str) -> bytes:
    return int(v.split(maxsplit=1)[0], 16).to_bytes(8, "little")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_report_verifies_with_source_values(vectors: Path, case: SnpCase) -> None:
    e = case.fields
    report = _read(vectors, case, case.report)
    assert len(report) == int(e["file size"])
    assert hashlib.sha256(report).hexdigest() == e["sha256"]
    claims = snp.verify(
        report,
        now=case.at,
        vcek_der=_read(vectors, case, case.key),
        chain_pem=_read(vectors, case, case.chain),
        cache=ChainCache(),
    )
    assert claims.tee is Tee.SEV_SNP
    d = claims.details
    assert d["signing_key"] == e["signing_key (flags)"] == case.kind
    assert d["product"] == case.product
    assert d["version"] == int(e["version"])
    assert d["guest_svn"] == int(e["guest_svn"])
    assert d["policy"] == int(e["policy"], 16)
    assert d["vmpl"] == int(e["vmpl"])
    assert d["platform_info"] == int(e["platform_info"], 16)
    assert claims.report_data.hex() == e["report_data"]
    assert claims.measurement.hex() == e["measurement"]
    assert claims.measurements["MEASUREMENT"].hex() == e["measurement"]
    for f in ("host_data", "id_key_digest", "author_key_digest", "report_id", "chip_id"):
        assert d[f].hex() == e[f], f
    tcb = ast.literal_eval(e["reported_tcb"].split(" ", 1)[1])
    assert dict(claims.tcb) == {
        "bootloader": tcb["bl"],
        "tee": tcb["tee"],
        "snp": tcb["snp"],
        "microcode": tcb["ucode"],
    }
    rep = parse_report(report)
    assert rep.reported_tcb == _tcb_le(e["reported_tcb"])
    assert rep.current_tcb == _tcb_le(e["current_tcb"])
    assert rep.committed_tcb == _tcb_le(e["committed_tcb"])
    # SOURCE.md lists launch_tcb as 0x0 for every report; its checker evidently read 0x1F8 (zero in v2/v3).
    # LAUNCH_TCB is at 0x1F0 (spec 56860; go-sev-guest and virtee/sev read it there too).
    assert rep.raw[0x1F8:0x200] == _tcb_le(e["launch_tcb"])
    assert rep.launch_tcb == rep.raw[0x1F0:0x1F8]
    assert d["current_version"] == e["firmware (current)"]
    assert d["policy_bits"]["debug"] is claims.debug  # type: ignore[index]
    assert claims.debug is bool(int(e["policy"], 16) >> 19 & 1)
    if "cpuid fam/mod/step" in e:
        fam, mod, step = (int(x, 16) for x in e["cpuid fam/mod/step"].split("/"))
        assert d["cpuid"] == {"family": fam, "model": mod, "stepping": step}
    assert claims.revocation is Revocation.UNKNOWN
    assert claims.issued_at is None


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_report_verifies_with_bundled_intermediates_only(vectors: Path, case: SnpCase) -> None:
    claims = snp.verify(
        _read(vectors, case, case.report), now=case.at, vcek_der=_read(vectors, case, case.key)
    )
    assert claims.measurement.hex() == case.fields["measurement"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_report_verifies_from_extended_report_cert_table(vectors: Path, case: SnpCase) -> None:
    chain = load_pem_certificates(_read(vectors, case, case.chain))
    inter = next(
        c
        for c in chain
        if not c.self_issued and (c.subject_common_name or "").count("VLEK") == (case.kind == "VLEK")
    )
    ark = next(c for c in chain if c.self_issued)
    key_guid = str(VCEK_GUID if case.kind == "VCEK" else VLEK_GUID)
    aux = cert_table(
        [(key_guid, _read(vectors, case, case.key)), (str(ASK_GUID), inter.der), (str(ARK_GUID), ark.der)]
    )
    claims = snp.verify(_read(vectors, case, case.report), now=case.at, aux=aux, product=case.product)
    assert claims.measurement.hex() == case.fields["measurement"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_chain_window_from_source(vectors: Path, case: SnpCase) -> None:
    lo_s, hi_s = case.fields["chain jointly valid"].split(" .. ")
    lo, hi = datetime.fromisoformat(lo_s), datetime.fromisoformat(hi_s)
    args = {"vcek_der": _read(vectors, case, case.key), "chain_pem": _read(vectors, case, case.chain)}
    report = _read(vectors, case, case.report)
    snp.verify(report, now=lo, **args)
    snp.verify(report, now=hi, **args)
    with pytest.raises(CertificateNotYetValidError):
        snp.verify(report, now=lo - timedelta(seconds=1), **args)
    with pytest.raises(CertificateExpiredError):
        snp.verify(report, now=hi + timedelta(seconds=1), **args)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_ark_fingerprint_from_source(vectors: Path, case: SnpCase) -> None:
    ark = next(c for c in load_pem_certificates(_read(vectors, case, case.chain)) if c.self_issued)
    assert ark.sha256.hex() == case.fields["ARK sha256 fingerprint"] == amd.ARK_MILAN_SHA256


def test_hex_copy_matches_binary(vectors: Path) -> None:
    d = vectors / "snp" / "virtee-sev"
    assert (
        bytes.fromhex((d / "report_milan.hex").read_text().strip()) == (d / "report_milan.bin").read_bytes()
    )


# --- chain-only vectors: every bundled ARK/ASK/ASVK, and the Turin VCEK --------------------------------

_PINNED = {
    "milan": (amd.ARK_MILAN_PEM, amd.ASK_MILAN_PEM, amd.ASVK_MILAN_PEM, amd.ARK_MILAN_SHA256),
    "genoa": (amd.ARK_GENOA_PEM, amd.ASK_GENOA_PEM, amd.ASVK_GENOA_PEM, amd.ARK_GENOA_SHA256),
    "turin": (amd.ARK_TURIN_PEM, amd.ASK_TURIN_PEM, amd.ASVK_TURIN_PEM, amd.ARK_TURIN_SHA256),
}


@pytest.mark.parametrize("product", sorted(_PINNED))
def test_pinned_amd_roots_match_vectors_and_fingerprints(vectors: Path, product: str) -> None:
    ark_pem, ask_pem, asvk_pem, ark_fp = _PINNED[product]
    ark = certificate_from_pem(ark_pem)
    assert ark.sha256.hex() == ark_fp
    assert ark.subject_common_name == f"ARK-{product.capitalize()}"
    bundle = load_pem_certificates((vectors / "snp" / "trustee" / f"{product}_ask_ark_asvk.pem").read_bytes())
    assert [c.der for c in bundle] == [certificate_from_pem(p).der for p in (ask_pem, ark_pem, asvk_pem)]
    at = datetime(2025, 6, 1, tzinfo=UTC)
    for inter_pem in (ask_pem, asvk_pem):
        verify_chain([certificate_from_pem(inter_pem)], ark, now=at)


@pytest.mark.parametrize(
    "name",
    [
        "trust_ask_ark_milan.pem",
        "trust_ask_ark_genoa.pem",
        "trust_ask_ark_turin_vcek.pem",
        "milan_asvk_ark.pem",
        "trust_ask_ark_milan_vlek.pem",
        "trust_ask_ark_genoa_vlek.pem",
        "trust_ask_ark_turin_vlek.pem",
        "milan_ask_ark.pem",
    ],
)
def test_go_sev_guest_bundles_chain_to_pinned_arks(vectors: Path, name: str) -> None:
    inter, ark = load_pem_certificates((vectors / "snp" / "go-sev-guest" / name).read_bytes())
    product = (ark.subject_common_name or "").removeprefix("ARK-").lower()
    pinned = certificate_from_pem(_PINNED[product][0])
    assert ark.der == pinned.der
    verify_chain([inter], pinned, now=datetime(2025, 6, 1, tzinfo=UTC))


def test_turin_vcek_chain_and_extensions(vectors: Path) -> None:
    d = vectors / "snp" / "virtee-sev"
    vcek = parse_certificate((d / "vcek_turin.der").read_bytes())
    ask, ark = load_pem_certificates((d / "cert_chain_turin.pem").read_bytes())
    pinned = certificate_from_pem(amd.ARK_TURIN_PEM)
    assert ark.der == pinned.der
    verify_chain([vcek, ask], pinned, now=datetime(2025, 6, 1, tzinfo=UTC))
    assert vcek.subject_common_name == "SEV-VCEK"
    assert snp._product_of(vcek) is Product.TURIN
    assert len(snp._hwid(vcek, Product.TURIN)) == 8
    # Turin VCEKs carry an FMC SPL (OID .3.9) besides bl/tee/snp/ucode.
    for oid in (snp.OID_FMC_SPL, snp.OID_BL_SPL, snp.OID_TEE_SPL, snp.OID_SNP_SPL, snp.OID_UCODE_SPL):
        raw = vcek.extension(oid)
        assert raw is not None
        assert 0 <= der_integer(raw) <= 255


def test_milan_vcek_extensions_decode(vectors: Path) -> None:
    case = next(c for c in CASES if c.report == "test-report.bin")
    vcek = parse_certificate((vectors / "snp" / "trustee" / case.key).read_bytes())
    assert snp._hwid(vcek, Product.MILAN).hex() == case.fields["chip_id"]
    assert der_integer(vcek.extension(snp.OID_UCODE_SPL) or b"") == 115
