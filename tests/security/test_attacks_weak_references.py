"""Reference values that pin too little (issue 13, point 5): an operator (or an attacker with write access to
the policy) allow-lists only firmware-level values, so any kernel and any application on that firmware
passes. Production policy load refuses it; the explicit unsafe flag is carried into every result.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from enclavia.attestation.platforms.tdx.verify import verify
from enclavia.errors import PolicyLoadError
from enclavia.policy.document import appraise, parse_policy

AT = datetime(2025, 6, 20, tzinfo=UTC)
# The dcap-qvl vector's registers.
MRTD = "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7"
H = "11" * 48
SNP = "22" * 48


def _policy(tee: str, entry: str, profile: str = "production") -> str:
    return (
        f"policy_id: p\nrevision: 1\nprofile: {profile}\nreference_values:\n  {tee}: [{{name: r, {entry}}}]\n"
    )


@pytest.mark.parametrize(
    ("tee", "entry", "gap"),
    [
        ("tdx", f"mrtd: '{MRTD}'", "tdx_mrtd_only"),
        ("tdx", f"mrtd: '{MRTD}', rtmr0: '{H}', rtmr1: '{H}'", "tdx_mrtd_only"),  # RTMR2 (cmdline) open
        ("sev-snp", f"measurement: '{SNP}', vmpl: 0", "snp_no_tcb_floor"),
        ("sev-snp", f"measurement: '{SNP}', min_tcb: {{snp: 8}}", "snp_no_vmpl"),
        ("nitro", f"pcrs: {{0: '{H}', 1: '{H}'}}", "nitro_not_pcr0_2"),
    ],
)
def test_production_refuses_entries_that_pin_only_firmware_values(tee: str, entry: str, gap: str) -> None:
    with pytest.raises(PolicyLoadError, match=gap):
        parse_policy(_policy(tee, entry))


@pytest.mark.parametrize(
    ("tee", "entry"),
    [
        ("tdx", f"mrtd: '{MRTD}', mrconfigid: '{H}'"),
        ("tdx", f"mrtd: '{MRTD}', rtmr0: '{H}', rtmr1: '{H}', rtmr2: '{H}', bind_manifest: true"),
        (
            "sev-snp",
            f"measurement: '{SNP}', vmpl: 0, min_tcb: {{bootloader: 3, tee: 0, snp: 8, microcode: 115}}, "
            "bind_manifest: true",
        ),
        ("nitro", f"pcrs: {{0: '{H}', 1: '{H}', 2: '{H}'}}"),
    ],
)
def test_entries_that_pin_enough_load(tee: str, entry: str) -> None:
    policy = parse_policy(_policy(tee, entry))
    assert policy.unsafe == {}


def test_the_unsafe_flag_must_be_a_boolean() -> None:
    with pytest.raises(PolicyLoadError):
        parse_policy(_policy("tdx", f"mrtd: '{MRTD}', unsafe_weak_pins: 'yes'"))


def test_the_named_unsafe_choice_is_shown_in_the_attestation_result(vectors: Path) -> None:
    d = vectors / "tdx" / "dcap-qvl"
    claims = verify(
        (d / "tdx_quote").read_bytes(),
        collateral=json.loads((d / "tdx_quote_collateral.json").read_bytes()),
        now=AT,
    )
    policy = parse_policy(_policy("tdx", f"mrtd: '{MRTD}', unsafe_weak_pins: true"))
    assert policy.unsafe == {"r": ("tdx_mrtd_only", "tdx_config_unbound")}
    result = appraise(claims, policy, now=AT, expected_report_data=claims.report_data)
    assert result.affirming
    assert result.reasons == ("unsafe_weak_pins:tdx_mrtd_only,tdx_config_unbound",)
    assert result.to_json()["reasons"] == ["unsafe_weak_pins:tdx_mrtd_only,tdx_config_unbound"]


def test_the_auditors_policy_history_names_the_unsafe_entry() -> None:
    from enclavia.broker.ops import _reference_values

    refs = _reference_values(_policy("tdx", f"mrtd: '{MRTD}', unsafe_weak_pins: true"))
    assert refs == [
        {"tee": "tdx", "name": "r", "values": {"mrtd": MRTD}, "not_after": None, "unsafe_weak_pins": True}
    ]
    strong = _reference_values(_policy("tdx", f"mrtd: '{MRTD}', mrconfigid: '{H}'"))
    assert strong[0]["unsafe_weak_pins"] is False
