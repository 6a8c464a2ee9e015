from __future__ import annotations

import hashlib

import pytest
import yaml

from enclavia.errors import ClassificationManifestError, EgressDeniedError
from enclavia.protect.classification import default_classification, parse_classification


def _doc(**changes: object) -> str:
    base = yaml.safe_load(
        (
            __import__("importlib").resources.files("enclavia.protect") / "default-classification.yaml"
        ).read_text()
    )
    base.update(changes)
    return yaml.safe_dump(base)


def test_default_manifest_is_valid_and_canonical() -> None:
    c = default_classification()
    assert set(c.classes) == {"PHI", "PCI", "PII", "CONFIDENTIAL", "PUBLIC"}
    assert c.class_of("MRN") == "PHI" and c.class_of("CREDIT_CARD") == "PCI"
    assert c.field_class("/v1/documents", "documents[].text") == "PHI"
    assert c.field_class("/v1/documents", "unlisted") == "CONFIDENTIAL"  # fail closed
    # Key order in the YAML does not change the measured form.
    again = parse_classification(yaml.safe_dump(yaml.safe_load(_doc()), sort_keys=True))
    assert again.measured() == c.measured()


@pytest.mark.parametrize(
    "bad",
    [
        {"version": 2},
        {"classes": {"PHI": {}}},  # missing classes
        {"entities": {"NOT_A_TYPE": "PII"}},
        {"entities": {"PERSON": "SECRET"}},
        {"routes": {"/v1/unknown": {}}},
        {"routes": {"/v1/documents": {"bad path!": "PHI"}}},
        {"egress": [{"name": "x", "url": "http://provider.example/v1"}]},  # plain http off loopback
        {"egress": [{"name": "x", "url": "https://user:pw@provider.example/v1"}]},
        {"egress": [{"name": "x", "url": "https://a.example"}, {"name": "x", "url": "https://b.example"}]},
        {"requesters": [{"id": "a", "tenant": "t", "token_sha256": "zz"}]},
        {"requesters": [{"id": "a", "tenant": "t", "token_sha256": "0" * 64, "clearance": ["TOP"]}]},
        {"extra": 1},
    ],
)
def test_invalid_manifests_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ClassificationManifestError):
        parse_classification(_doc(**bad))


def test_regulated_classes_cannot_leave_in_clear_or_be_logged() -> None:
    for cls, rule in (
        ("PHI", {"egress": "allow"}),
        ("PII", {"log": "allowed"}),
        ("PCI", {"without_clearance": "none"}),
    ):
        doc = yaml.safe_load(_doc())
        doc["classes"][cls].update(rule)
        with pytest.raises(ClassificationManifestError):
            parse_classification(yaml.safe_dump(doc))


def test_not_yaml_and_error_does_not_echo() -> None:
    with pytest.raises(ClassificationManifestError) as err:
        parse_classification("canary-secret: [unclosed")
    assert "canary" not in str(err.value)


def test_requester_lookup_and_egress_allow_list() -> None:
    token = "tok-" + "a" * 20
    c = parse_classification(
        _doc(
            requesters=[
                {
                    "id": "dr-a",
                    "tenant": "hosp-a",
                    "clearance": ["PHI"],
                    "actions": ["query"],
                    "token_sha256": hashlib.sha256(token.encode()).hexdigest(),
                }
            ],
            egress=[{"name": "local", "url": "http://127.0.0.1:9/v1", "model": "m"}],
        )
    )
    req = c.requester_for_token(token)
    assert req is not None and req.tenant == "hosp-a" and "PUBLIC" in req.clearance
    assert c.requester_for_token("other") is None
    assert c.egress_target("local").url == "http://127.0.0.1:9/v1"
    with pytest.raises(EgressDeniedError):
        c.egress_target("elsewhere")
