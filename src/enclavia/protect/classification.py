"""Data classification manifest: classes, entity and field mappings, actions, egress allow-list, requesters.

The manifest is YAML, validated strictly when the enclave starts (an invalid one stops the enclave), and its
canonical form goes into the measured configuration, so a client that verifies the attestation also knows
exactly which classes exist, what each may do, where egress may go and which requesters exist.

Deny by default: unknown keys, classes, entity types, routes or actions are refused, and the classes that
hold regulated data (PHI, PCI, PII) may never be logged nor leave the enclave in the clear.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import yaml

from enclavia.errors import ClassificationManifestError, EgressDeniedError
from enclavia.protect.entities import ENTITY_TYPES

__all__ = [
    "CLASSES",
    "REGULATED",
    "ROUTES",
    "ClassRule",
    "Classification",
    "EgressTarget",
    "Requester",
    "default_classification",
    "load_classification",
    "parse_classification",
]

CLASSES: Final = ("PHI", "PCI", "PII", "CONFIDENTIAL", "PUBLIC")
# Ordered from most to least sensitive: when spans of several classes overlap, the first wins.
REGULATED: Final = frozenset({"PHI", "PCI", "PII"})
EGRESS_ACTIONS: Final = ("deny", "redact", "tokenize", "allow")
CLEARANCE_ACTIONS: Final = ("redact", "mask", "tokenize", "none")
LOG_ACTIONS: Final = ("never", "allowed")
ROUTES: Final = frozenset({"/v1/documents", "/v1/rag/query", "/v1/embeddings", "/v1/chat/completions"})
REQUESTER_ACTIONS: Final = frozenset({"ingest", "query", "egress", "reidentify"})
MAX_MANIFEST_BYTES: Final = 256 << 10

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\[\])?(\.([A-Za-z_][A-Za-z0-9_]*(\[\])?|\*))*$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ClassRule:
    egress: str
    without_clearance: str
    log: str


@dataclass(frozen=True)
class EgressTarget:
    name: str
    url: str  # base URL of an OpenAI-compatible API, e.g. https://llm.example/v1
    kind: str  # "openai"
    model: str


@dataclass(frozen=True)
class Requester:
    id: str
    tenant: str
    clearance: frozenset[str]
    actions: frozenset[str]
    token_sha256: str


@dataclass(frozen=True)
class Classification:
    classes: Mapping[str, ClassRule]
    entities: Mapping[str, str]
    routes: Mapping[str, Mapping[str, str]]
    egress: tuple[EgressTarget, ...]
    requesters: tuple[Requester, ...]

    # -- queries ---------------------------------------------------------------------------------

    def class_of(self, entity_type: str) -> str:
        """The class of a detected entity type; unmapped types are CONFIDENTIAL (fail closed)."""
        return self.entities.get(entity_type, "CONFIDENTIAL")

    def field_class(self, route: str, path: str) -> str:
        """Class of a request field (``documents[].text``); unlisted fields are CONFIDENTIAL."""
        return self.routes.get(route, {}).get(path, "CONFIDENTIAL")

    def may_reidentify(self, requester: Requester, entity_type: str) -> bool:
        """The one re-identification decision: the requester's entry grants the ``reidentify`` action and
        clearance for the token's class. The scope (requester, conversation) is enforced by the caller's
        TokenScope: a token minted elsewhere has no value there."""
        return "reidentify" in requester.actions and self.class_of(entity_type) in requester.clearance

    def egress_target(self, name: str) -> EgressTarget:
        for target in self.egress:
            if target.name == name:
                return target
        raise EgressDeniedError()

    def requester_for_token(self, token: str) -> Requester | None:
        """Constant-time lookup of a bearer token by its SHA-256 (every entry is compared)."""
        digest = hashlib.sha256(token.encode()).hexdigest()
        found: Requester | None = None
        for req in self.requesters:
            if hmac.compare_digest(digest, req.token_sha256):
                found = req
        return found

    # -- measurement ------------------------------------------------------------------------------

    def measured(self) -> dict[str, Any]:
        """Canonical, order-independent form for the manifest's configuration."""
        return {
            "version": 1,
            "classes": {
                name: {"egress": r.egress, "without_clearance": r.without_clearance, "log": r.log}
                for name, r in sorted(self.classes.items())
            },
            "entities": dict(sorted(self.entities.items())),
            "routes": {route: dict(sorted(f.items())) for route, f in sorted(self.routes.items())},
            "egress": [
                {"name": t.name, "url": t.url, "kind": t.kind, "model": t.model}
                for t in sorted(self.egress, key=lambda t: t.name)
            ],
            "requesters": [
                {
                    "id": r.id,
                    "tenant": r.tenant,
                    "clearance": sorted(r.clearance),
                    "actions": sorted(r.actions),
                    "token_sha256": r.token_sha256,
                }
                for r in sorted(self.requesters, key=lambda r: r.id)
            ],
        }


# -- parsing ---------------------------------------------------------------------------------------


def _fail(detail: str) -> ClassificationManifestError:
    # Fixed phrases chosen here; never echo manifest content.
    return ClassificationManifestError(detail)


def _mapping(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise _fail(f"{what} must be a mapping")
    return value


def _only(keys: Mapping[str, Any], allowed: set[str], what: str) -> None:
    if set(keys) - allowed:
        raise _fail(f"unknown key in {what}")


def _parse_classes(raw: Any) -> dict[str, ClassRule]:
    classes = _mapping(raw, "classes")
    if set(classes) != set(CLASSES):
        raise _fail("classes must be exactly PHI, PCI, PII, CONFIDENTIAL, PUBLIC")
    out: dict[str, ClassRule] = {}
    for name, raw_spec in classes.items():
        spec = _mapping(raw_spec, "class entry")
        _only(spec, {"egress", "without_clearance", "log"}, "class entry")
        rule = ClassRule(
            egress=spec.get("egress", "deny"),
            without_clearance=spec.get("without_clearance", "redact"),
            log=spec.get("log", "never"),
        )
        if rule.egress not in EGRESS_ACTIONS:
            raise _fail("class egress action unknown")
        if rule.without_clearance not in CLEARANCE_ACTIONS:
            raise _fail("class without_clearance action unknown")
        if rule.log not in LOG_ACTIONS:
            raise _fail("class log action unknown")
        if name != "PUBLIC" and (rule.egress == "allow" or rule.without_clearance == "none"):
            raise _fail("only PUBLIC may leave in the clear")
        if name in REGULATED and rule.log != "never":
            raise _fail("regulated classes are never logged")
        out[name] = rule
    return out


def _parse_entities(raw: Any) -> dict[str, str]:
    entities = _mapping(raw, "entities")
    for ent, cls in entities.items():
        if ent not in ENTITY_TYPES:
            raise _fail("unknown entity type")
        if cls not in CLASSES:
            raise _fail("entity mapped to an unknown class")
    return dict(entities)


def _parse_routes(raw: Any) -> dict[str, dict[str, str]]:
    routes = _mapping(raw, "routes")
    out: dict[str, dict[str, str]] = {}
    for route, raw_fields in routes.items():
        if route not in ROUTES:
            raise _fail("unknown route")
        fields = _mapping(raw_fields, "route fields")
        for path, cls in fields.items():
            if not _FIELD.match(path):
                raise _fail("field path malformed")
            if cls not in CLASSES:
                raise _fail("field mapped to an unknown class")
        out[route] = dict(fields)
    return out


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _parse_egress(raw: Any) -> tuple[EgressTarget, ...]:
    if not isinstance(raw, list):
        raise _fail("egress must be a list")
    out: list[EgressTarget] = []
    for item in raw:
        spec = _mapping(item, "egress entry")
        _only(spec, {"name", "url", "kind", "model"}, "egress entry")
        name, url = spec.get("name"), spec.get("url")
        kind, model = spec.get("kind", "openai"), spec.get("model", "")
        if not isinstance(name, str) or not _NAME.match(name):
            raise _fail("egress name malformed")
        if not isinstance(url, str) or not isinstance(model, str) or kind != "openai":
            raise _fail("egress entry malformed")
        parts = urlsplit(url)
        if parts.username or parts.password or parts.query or parts.fragment or not parts.hostname:
            raise _fail("egress URL must be scheme://host[:port]/path only")
        # Plain HTTP only to loopback (development and tests): real providers need TLS.
        if parts.scheme != "https" and not (parts.scheme == "http" and _loopback(parts.hostname)):
            raise _fail("egress URL must be https")
        out.append(EgressTarget(name=name, url=url.rstrip("/"), kind=kind, model=model))
    if len({t.name for t in out}) != len(out):
        raise _fail("egress names must be unique")
    return tuple(out)


def _parse_requesters(raw: Any) -> tuple[Requester, ...]:
    if not isinstance(raw, list):
        raise _fail("requesters must be a list")
    out: list[Requester] = []
    for item in raw:
        spec = _mapping(item, "requester")
        _only(spec, {"id", "tenant", "clearance", "actions", "token_sha256"}, "requester")
        rid, tenant, digest = spec.get("id"), spec.get("tenant"), spec.get("token_sha256")
        clearance, actions = spec.get("clearance", []), spec.get("actions", ["query"])
        if not (
            isinstance(rid, str) and _NAME.match(rid) and isinstance(tenant, str) and _NAME.match(tenant)
        ):
            raise _fail("requester id or tenant malformed")
        if not isinstance(digest, str) or not _HEX64.match(digest):
            raise _fail("requester token_sha256 must be 64 lowercase hex")
        if not isinstance(clearance, list) or not set(clearance) <= set(CLASSES):
            raise _fail("requester clearance must list known classes")
        if not isinstance(actions, list) or not set(actions) <= REQUESTER_ACTIONS:
            raise _fail("requester actions unknown")
        out.append(Requester(rid, tenant, frozenset(clearance) | {"PUBLIC"}, frozenset(actions), digest))
    if len({r.id for r in out}) != len(out) or len({r.token_sha256 for r in out}) != len(out):
        raise _fail("requester ids and tokens must be unique")
    return tuple(out)


def parse_classification(text: str | bytes) -> Classification:
    if len(text) > MAX_MANIFEST_BYTES:
        raise _fail("manifest too large")
    try:
        doc = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError):  # RecursionError: nesting deeper than the parser's stack
        raise _fail("manifest is not valid YAML") from None
    doc = _mapping(doc, "manifest")
    _only(doc, {"version", "classes", "entities", "routes", "egress", "requesters"}, "manifest")
    if doc.get("version") != 1:
        raise _fail("manifest version must be 1")
    return Classification(
        classes=_parse_classes(doc.get("classes")),
        entities=_parse_entities(doc.get("entities", {})),
        routes=_parse_routes(doc.get("routes", {})),
        egress=_parse_egress(doc.get("egress", [])),
        requesters=_parse_requesters(doc.get("requesters", [])),
    )


def load_classification(path: Path) -> Classification:
    try:
        return parse_classification(path.read_bytes())
    except OSError:
        raise _fail("manifest unreadable") from None


def default_classification() -> Classification:
    text = resources.files("enclavia.protect").joinpath("default-classification.yaml").read_bytes()
    return parse_classification(text)
