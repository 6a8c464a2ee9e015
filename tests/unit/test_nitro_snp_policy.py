"""Policy YAML with nitro and sev-snp reference values loads through parse_policy and appraises real evidence;
entries that pin nothing are load errors."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from enclavia.attestation.appraisal import reference_type
from enclavia.attestation.claims import Status, Tee
from enclavia.attestation.platforms.nitro import verify as nitro
from enclavia.attestation.platforms.nitro.appraise import NitroReference
from enclavia.attestation.platforms.sevsnp import verify as snp
from enclavia.attestation.platforms.sevsnp.appraise import SevSnpReference
from enclavia.errors import (
    MeasurementNotAllowedError,
    PolicyLoadError,
    RevocationUnknownError,
    TcbError,
)
from enclavia.policy.document import appraise, parse_policy

NITRO_AT = datetime(2022, 9, 15, 17, 44, 24, tzinfo=UTC)
SNP_AT = datetime(2025, 6, 1, tzinfo=UTC)
PCR0 = "ea4212ee889ba1b4dbfe744aadecca8b1930de60a3a1ce3b0c79f42b231700fc561c3d9b34f0565ed9eb6f460996624c"
PCR1 = "bcdf05fefccaa8e55bf2c8d6dee9e79bbff31e34bf28a99aa19e6b29c37ee80b214a414b7607236edf26fcb78654e63f"
SNP_M = "a1f3930413247bb38cfc171579ea3c12d5fe4901f0c792f63fd75d98f1ef827c23500644e0e692e6be917f9050d3d38c"
VLEK_M = "8922ebbdd00ec2c541f36a6e7a82a8773a7accb451ed67bc94e740dbe92c93c4e8c9af857f5ceeb5a493df2a570d7bf0"

POLICY = f"""
policy_id: bank-prod
revision: 7
profile: production
requirements: {{allow_debug: false, max_evidence_age_s: null, accept_revocation_unknown: true}}
reference_values:
  nitro:
    - name: cape-fn
      unsafe_weak_pins: true  # the vector's PCR2 is not pinned: this test is about PCR0/1
      pcrs:
        0: {PCR0}
        1: {PCR1}
  sev-snp:
    - name: trustee-vm
      unsafe_weak_pins: true  # the vector's host_data is zero: no config binding to pin (snp_config_unbound)
      measurement: {SNP_M}
      min_tcb: {{bootloader: 3, tee: 0, snp: 8, microcode: 115}}
      vmpl: 0
      allow_migration_agent: false
    - name: aws-vlek-vm
      unsafe_weak_pins: true  # no TCB floor: the vector's firmware is old
      measurement: {VLEK_M}
      vmpl: 1
"""


@pytest.fixture(scope="module")
def nitro_claims(vectors: Path):  # type: ignore[no-untyped-def]
    return nitro.verify((vectors / "nitro/cape-js/spec_attestationDocument.cbor").read_bytes(), now=NITRO_AT)


@pytest.fixture(scope="module")
def snp_claims(vectors: Path):  # type: ignore[no-untyped-def]
    d = vectors / "snp" / "trustee"
    return snp.verify(
        (d / "test-report.bin").read_bytes(), now=SNP_AT, vcek_der=(d / "test-vcek.der").read_bytes()
    )


@pytest.fixture(scope="module")
def vlek_claims(vectors: Path):  # type: ignore[no-untyped-def]
    d = vectors / "snp" / "trustee"
    return snp.verify(
        (d / "test-vlek-report.bin").read_bytes(), now=SNP_AT, vcek_der=(d / "test-vlek.der").read_bytes()
    )


def test_reference_types_registered() -> None:
    assert reference_type(Tee.NITRO) is NitroReference
    assert reference_type(Tee.SEV_SNP) is SevSnpReference


def test_policy_loads_and_appraises(nitro_claims, snp_claims, vlek_claims) -> None:  # type: ignore[no-untyped-def]
    policy = parse_policy(POLICY)
    assert [r.name for r in policy.references] == ["cape-fn", "trustee-vm", "aws-vlek-vm"]
    nitro_ref = policy.references_for(Tee.NITRO)[0]
    assert isinstance(nitro_ref, NitroReference) and set(nitro_ref.pcrs) == {0, 1}
    for claims, name, at in (
        (nitro_claims, "cape-fn", NITRO_AT),
        (snp_claims, "trustee-vm", SNP_AT),
        (vlek_claims, "aws-vlek-vm", SNP_AT),
    ):
        result = appraise(claims, policy, now=at)
        assert result.status is Status.AFFIRMING
        assert result.reference_name == name
        assert result.policy_id == "bank-prod" and result.policy_revision == 7
        assert result.to_json()["claims"]


def test_tcb_floor_from_yaml(snp_claims) -> None:  # type: ignore[no-untyped-def]
    policy = parse_policy(POLICY.replace("snp: 8, microcode: 115", "snp: 8, microcode: 200"))
    with pytest.raises(TcbError):
        appraise(snp_claims, policy, now=SNP_AT)


def test_revocation_unknown_refused_by_default(snp_claims, nitro_claims) -> None:  # type: ignore[no-untyped-def]
    policy = parse_policy(
        POLICY.replace("accept_revocation_unknown: true", "accept_revocation_unknown: false")
    )
    for claims, at in ((snp_claims, SNP_AT), (nitro_claims, NITRO_AT)):
        with pytest.raises(RevocationUnknownError):
            appraise(claims, policy, now=at)


def test_other_tee_entries_never_match(nitro_claims) -> None:  # type: ignore[no-untyped-def]
    policy = parse_policy(POLICY)
    with pytest.raises(MeasurementNotAllowedError):
        appraise(nitro_claims, policy, now=NITRO_AT, references=policy.references_for(Tee.SEV_SNP))


@pytest.mark.parametrize(
    "entry",
    [
        "{name: x}",
        "{name: x, pcrs: {}}",
        "{name: x, pcrs: null}",
        f"{{name: x, pcrs: {{1: {PCR1}}}}}",  # no PCR0
        "{name: x, pcrs: {0: '" + "00" * 48 + "'}}",  # all-zero PCR0 = every debug enclave
    ],
)
def test_nitro_entry_that_pins_nothing(entry: str) -> None:
    with pytest.raises(PolicyLoadError, match="pins nothing"):
        parse_policy(f"policy_id: p\nrevision: 1\nreference_values:\n  nitro: [{entry}]\n")


@pytest.mark.parametrize(
    "entry",
    [
        "{name: x, pcrs: {0: abcd}}",
        "{name: x, pcrs: {32: " + "11" * 48 + "}}",
        "{name: x, pcrs: {-1: " + "11" * 48 + "}}",
        "{name: x, pcrs: {true: " + "11" * 48 + "}}",
        "{name: x, pcrs: {0: " + "zz" * 48 + "}}",
        "{name: x, pcrs: [" + "11" * 48 + "]}",
        "{name: x, pcrs: {0: " + "11" * 48 + "}, measurement: " + "11" * 48 + "}",
        "{name: x, pcrs: {0: " + "11" * 48 + ", '0': " + "22" * 48 + "}}",
    ],
)
def test_nitro_entry_invalid(entry: str) -> None:
    with pytest.raises(PolicyLoadError):
        parse_policy(f"policy_id: p\nrevision: 1\nreference_values:\n  nitro: [{entry}]\n")


def test_unquoted_all_digit_hex_is_refused() -> None:
    """YAML reads an all-digit hex string as an integer (leading zeros lost): hex values must be quoted."""
    with pytest.raises(PolicyLoadError):
        parse_policy(
            "policy_id: p\nrevision: 1\nreference_values:\n  nitro: [{pcrs: {0: " + "12" * 48 + "}}]\n"
        )


def test_nitro_string_pcr_index() -> None:
    policy = parse_policy(
        "policy_id: p\nrevision: 1\nreference_values:\n  nitro: [{name: x, "
        "unsafe_weak_pins: true, pcrs: {'0': " + PCR0 + "}}]\n"
    )
    ref = policy.references[0]
    assert isinstance(ref, NitroReference) and set(ref.pcrs) == {0}


@pytest.mark.parametrize(
    "entry",
    [
        "{name: x}",
        "{name: x, min_tcb: {snp: 8}}",
        "{name: x, vmpl: 0, host_data: " + "11" * 32 + "}",
        "{name: x, measurement: '" + "00" * 48 + "'}",
    ],
)
def test_snp_entry_that_pins_nothing(entry: str) -> None:
    with pytest.raises(PolicyLoadError, match="pins nothing"):
        parse_policy(f"policy_id: p\nrevision: 1\nreference_values:\n  sev-snp: [{entry}]\n")


@pytest.mark.parametrize(
    "extra",
    [
        "min_tcb: {snp: -1}",
        "min_tcb: {snp: 256}",
        "min_tcb: {spl: 1}",
        "min_tcb: [1]",
        "vmpl: 4",
        "vmpl: true",
        "allow_smt: 'yes'",
        "host_data: abcd",
        "id_key_digest: " + "11" * 32,
        "unknown: 1",
    ],
)
def test_snp_entry_invalid(extra: str) -> None:
    with pytest.raises(PolicyLoadError):
        parse_policy(
            "policy_id: p\nrevision: 1\nreference_values:\n"
            f"  sev-snp: [{{unsafe_weak_pins: true, name: x, measurement: {SNP_M}, {extra}}}]\n"
        )
