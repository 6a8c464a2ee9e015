"""Attacks on policy and configuration: insecure defaults, allow-list entries that pin nothing, flags of the
wrong type, hostile YAML, and debug or simulated evidence slipping through a production policy.

Every test names its source and the error class it must raise.
"""

from __future__ import annotations

import inspect
from datetime import timedelta

import pytest

from enclavia.attestation.appraisal import Requirements
from enclavia.broker.service import BrokerConfig, BrokerService
from enclavia.client.verify import verify_bundle
from enclavia.errors import (
    AdminUnauthorizedError,
    ClassificationManifestError,
    DebugEnclaveError,
    DevProfileRequiredError,
    PolicyLoadError,
)
from enclavia.policy.document import Profile, parse_policy
from tests.security.attack_support import T0, SimWorld

NONCE = b"\x6b" * 32
M = "ab" * 48


def test_defaults_are_the_strict_ones() -> None:
    """A policy that says nothing about requirements or profile gets the strict behaviour.

    Source: confidential-containers/guest-components pull request 426 (the sample attester is always
    present, so the verifier's default policy must refuse it); CWE-1188 (insecure default initialisation).
    """
    assert Requirements() == Requirements(
        allow_debug=False, max_evidence_age=timedelta(minutes=5), accept_revocation_unknown=False
    )
    bare = parse_policy(
        f"policy_id: p\nrevision: 1\nreference_values:\n  sev-snp: [{{"
        f"unsafe_weak_pins: true, measurement: '{M}'}}]\n"
    )
    assert bare.profile is Profile.PRODUCTION and bare.requirements == Requirements()
    assert bare.secret_rules == ()  # no rule: nothing is released


def test_simulated_evidence_under_a_policy_that_names_no_profile() -> None:
    """Simulated evidence, signed by a platform key an operator pinned, under a policy that forgot
    ``profile`` (so it is production).

    Source: confidential-containers/guest-components pull request 426; DESIGN.md (the simulated TEE is
    refused unless a policy says profile: dev).
    """
    world = SimWorld()
    bundle = world.make_enclave().attestation_bundle(NONCE)
    prod = parse_policy(
        f"policy_id: p\nrevision: 1\nreference_values:\n  nitro: [{{"
        f"unsafe_weak_pins: true, pcrs: {{0: '{M}'}}}}]\n"
    )
    with pytest.raises(DevProfileRequiredError):
        verify_bundle(bundle.encode(), expected_nonce=NONCE, policy=prod, now=T0)


@pytest.mark.parametrize(
    "extra",
    [
        "trust: {simulated_platform_keys: ['" + "11" * 32 + "']}\n",
        f"reference_values:\n  simulated: [{{name: s, measurement: '{M}'}}]\n",
    ],
)
def test_production_policy_cannot_even_name_the_simulated_tee(extra: str) -> None:
    """An operator pastes a dev trust anchor into a production policy.

    Source: Dstack-TEE/dstack pull request 806 (external trust anchors need an explicit insecure opt-in);
    CWE-1188. Refused at load, before any evidence is seen.
    """
    with pytest.raises(PolicyLoadError):
        parse_policy("policy_id: p\nrevision: 1\nprofile: production\n" + extra)


@pytest.mark.parametrize(
    ("tee", "entry"),
    [
        ("simulated", "{name: x}"),
        ("simulated", "{name: x, measurement: ''}"),
        ("sev-snp", "{name: x}"),
        ("tdx", "{name: x, rtmr0: '" + M + "'}"),
        ("nitro", "{name: x, pcrs: {0: '" + "00" * 48 + "'}}"),
        ("sev-snp", "[]"),
    ],
)
def test_allow_list_entries_that_pin_nothing(tee: str, entry: str) -> None:
    """An allow-list entry with no measurement (or an all-zero one, or an empty list) must never act as a
    wildcard.

    Source: confidential-containers/attestation-service pull request 12 (an empty reference array matched
    any claim: "it could lead to accidental policy validation").
    """
    body = f"  {tee}: {entry}\n" if entry == "[]" else f"  {tee}: [{entry}]\n"
    with pytest.raises(PolicyLoadError):
        parse_policy("policy_id: p\nrevision: 1\nreference_values:\n" + body)


@pytest.mark.parametrize(
    "rule",
    [
        "{path: models/*, allow: []}",
        "{path: models/*}",
        "{path: '*', allow: [r]}",
        "{path: models/*, allow: [not-a-reference]}",
        "{path: ../models, allow: [r]}",
        "{path: models/*, allow: [r], condition: 'claims.debug || sys.exit()'}",
    ],
)
def test_release_rules_that_pin_nothing_or_escape(rule: str) -> None:
    """Key-release rules that would release to anyone (no allow-list, a bare wildcard), to a reference that
    does not exist, to a traversing path, or that call outside standard CEL.

    Source: confidential-containers/attestation-service pull request 12; CWE-22 for the path; CEL
    specification (only standard functions; anything else is a load error, never a runtime surprise).
    """
    text = (
        "policy_id: p\nrevision: 1\nreference_values:\n"
        f"  sev-snp: [{{unsafe_weak_pins: true, name: r, measurement: '{M}'}}]\nsecrets:\n  - {rule}\n"
    )
    with pytest.raises(PolicyLoadError):
        parse_policy(text)


@pytest.mark.parametrize(
    "requirements",
    [
        "{allow_debug: 'false'}",
        "{allow_debug: 0}",
        "{accept_revocation_unknown: 'no'}",
        "{max_evidence_age_s: '300'}",
        "{max_evidence_age_s: 0}",
        "{max_evidence_age_s: true}",
        "{allow_debugging: false}",
    ],
)
def test_requirement_flags_of_the_wrong_type(requirements: str) -> None:
    """A quoted 'false' is a non-empty string, truthy to any code that tests it loosely; a misspelt key
    silently keeps (or drops) a check.

    Source: CWE-1287 (improper validation of specified type of input); the YAML 1.1 "Norway problem"
    (scalars whose type depends on quoting). Flags must be real booleans, ages positive integers.
    """
    with pytest.raises(PolicyLoadError):
        parse_policy(
            f"policy_id: p\nrevision: 1\nrequirements: {requirements}\n"
            f"reference_values:\n  sev-snp: [{{unsafe_weak_pins: true, measurement: '{M}'}}]\n"
        )


def test_debug_enclave_with_an_allowed_measurement() -> None:
    """A debug enclave built from exactly the approved code (so its measurement is on the allow-list).

    Source: AMD SEV-SNP Firmware ABI specification, guest policy DEBUG bit; AWS Nitro Enclaves (debug mode
    zeroes the PCRs). Debug lets the host read the enclave's memory: the measurement alone is not enough.
    """
    world = SimWorld()
    bundle = world.make_enclave(debug=True).attestation_bundle(NONCE)
    with pytest.raises(DebugEnclaveError):
        verify_bundle(bundle.encode(), expected_nonce=NONCE, policy=world.policy(), now=T0)


@pytest.mark.parametrize(
    "text",
    [
        "policy_id: " + "[" * 600,
        "policy_id: x\nrevision: 1\nreference_values: " + "{a: " * 5000 + "1" + "}" * 5000,
        "!!python/object/apply:os.system ['touch /tmp/enclavia-pwned']",
        "!!python/name:os.system",
        "policy_id: &a [*a]",
    ],
)
def test_hostile_policy_yaml(text: str) -> None:
    """YAML that executes code in unsafe loaders, nests deeper than the parser's stack, or refers to itself.

    Source: CVE-2017-18342 (PyYAML yaml.load constructs arbitrary Python objects); CWE-674 (uncontrolled
    recursion: found by tests/fuzz, a RecursionError escaped parse_policy; fixed in
    enclavia.policy.document).
    """
    with pytest.raises(PolicyLoadError):
        parse_policy(text)


def test_hostile_classification_manifest_yaml() -> None:
    """The same deep nesting in the data-classification manifest (measured and loaded at enclave start).

    Source: CWE-674; fixed in enclavia.protect.classification alongside the policy parser.
    """
    from enclavia.protect.classification import parse_classification

    for text in ("version: " + "[" * 600, "!!python/object/apply:os.system ['true']"):
        with pytest.raises(ClassificationManifestError):
            parse_classification(text)


def test_admin_api_without_a_configured_token_refuses_everyone(tmp_path: object) -> None:
    """A broker started without --admin-token: the admin API must be closed, not open.

    Source: CWE-1188 (insecure default initialisation of a resource); CWE-306 (missing authentication for
    a critical function). An empty bearer value must not match an unset token either.
    """
    from pathlib import Path

    home = Path(str(tmp_path))
    service = BrokerService(BrokerConfig(db_url=f"sqlite:///{home / 'b.db'}", keystore=f"file:{home / 'k'}"))
    try:
        assert service.config.admin_token is None
        for header in (None, "", "Bearer ", "Bearer None", "Bearer null", "Basic YWRtaW46"):
            with pytest.raises(AdminUnauthorizedError):
                service.check_admin(header)
    finally:
        service.close()


def test_services_bind_to_loopback_by_default() -> None:
    """`enclavia serve` and `enclavia broker serve` listen on 127.0.0.1 unless told otherwise.

    Source: CWE-1327 (binding to an unrestricted IP address). Exposure is an explicit operator choice.
    """
    from enclavia.cli.broker import broker_serve
    from enclavia.cli.core import serve

    for fn in (serve, broker_serve):
        default = inspect.signature(fn).parameters["listen"].default
        assert str(default).startswith("127.0.0.1:"), fn.__name__
