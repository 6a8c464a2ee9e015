"""The data-flow picture: an SVG drawn by code from the deployment config and the classification manifest.

Deployment config (YAML; ``deploy/deployment.example.yaml``)::

    name: clinical-risk-prod
    classification: classification.yaml     # relative to this file; "default" for the built-in manifest
    tee: sev-snp                              # what the enclaves run on (simulated in development)
    hosts: [{name: host-a, url: https://host-a.internal}]
    broker: {url: https://kbs.internal, replicas: 2, store: postgresql}
    transparency_log: {url: https://tlog.internal, public_key: <hex>, release_keys: [<hex>]}  # optional
    clients: [EHR integration, analytics notebook]                      # optional, names only

The picture shows the parties (clients, untrusted hosts, the attested enclave, the key broker, the
transparency log, allow-listed egress providers), the trust boundary, and on each edge what crosses it per
data class of the manifest: encrypted to the enclave, ciphertext only, tokenized or redacted, or never.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

import yaml

from enclavia.protect.classification import (
    CLASSES,
    Classification,
    default_classification,
    load_classification,
)

MAX_DEPLOYMENT_BYTES = 64 << 10


@dataclass(frozen=True)
class HostRef:
    name: str
    url: str


@dataclass(frozen=True)
class Deployment:
    name: str
    tee: str
    classification: Classification
    classification_source: str
    hosts: tuple[HostRef, ...]
    broker_url: str | None
    broker_replicas: int
    broker_store: str
    tlog_url: str | None
    tlog_public_key: str | None
    clients: tuple[str, ...] = field(default=())
    tlog_release_keys: tuple[str, ...] = field(default=())

    @property
    def simulated(self) -> bool:
        return self.tee == "simulated"


def _str(doc: Mapping[str, Any], key: str, default: str | None = None) -> str | None:
    value = doc.get(key, default)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"deployment: {key} must be text")
    return value


def parse_deployment(text: str, base: Path | None = None) -> Deployment:
    if len(text) > MAX_DEPLOYMENT_BYTES:
        raise ValueError("deployment config too large")
    doc = yaml.safe_load(text) or {}
    if not isinstance(doc, dict):
        raise ValueError("deployment config must be a mapping")
    unknown = set(doc) - {"name", "classification", "tee", "hosts", "broker", "transparency_log", "clients"}
    if unknown:
        raise ValueError(f"deployment: unknown keys {sorted(unknown)}")
    source = _str(doc, "classification", "default") or "default"
    if source == "default":
        classification = default_classification()
    else:
        path = Path(source)
        classification = load_classification(path if path.is_absolute() or base is None else base / path)
    hosts = []
    for item in doc.get("hosts") or ():
        if not isinstance(item, dict) or not isinstance(item.get("url"), str):
            raise ValueError("deployment: each host needs a url")
        hosts.append(HostRef(str(item.get("name") or item["url"]), item["url"]))
    broker = doc.get("broker") or {}
    tlog = doc.get("transparency_log") or {}
    if not isinstance(broker, dict) or not isinstance(tlog, dict):
        raise ValueError("deployment: broker and transparency_log are mappings")
    clients = doc.get("clients") or []
    if not isinstance(clients, list) or not all(isinstance(c, str) for c in clients):
        raise ValueError("deployment: clients is a list of names")
    return Deployment(
        name=_str(doc, "name", "enclavia") or "enclavia",
        tee=_str(doc, "tee", "simulated") or "simulated",
        classification=classification,
        classification_source=source,
        hosts=tuple(hosts),
        broker_url=_str(broker, "url"),
        broker_replicas=int(broker.get("replicas", 1)),
        broker_store=str(broker.get("store", "sqlite")),
        tlog_url=_str(tlog, "url"),
        tlog_public_key=_str(tlog, "public_key"),
        clients=tuple(clients),
        tlog_release_keys=tuple(str(k) for k in tlog.get("release_keys") or ()),
    )


def load_deployment(path: Path) -> Deployment:
    return parse_deployment(path.read_text(encoding="utf-8"), path.parent)


# -- what crosses each edge -------------------------------------------------------------------------


def class_flows(classification: Classification) -> dict[str, list[str]]:
    """Per data class: the sentences the picture and the report use for it."""
    out: dict[str, list[str]] = {}
    for name in CLASSES:
        rule = classification.classes.get(name)
        if rule is None:
            continue
        egress = {
            "deny": "never leaves the enclave",
            "redact": "leaves only redacted",
            "tokenize": "leaves only tokenized (AES-SIV, keyed in the enclave)",
            "allow": "may leave in the clear to allow-listed providers",
        }[rule.egress]
        out[name] = [
            egress,
            "never logged" if rule.log == "never" else "may be logged",
            f"without clearance: {rule.without_clearance}",
        ]
    return out


def egress_summary(classification: Classification) -> str:
    by_action: dict[str, list[str]] = {}
    for name in CLASSES:
        rule = classification.classes.get(name)
        if rule is not None:
            by_action.setdefault(rule.egress, []).append(name)
    parts = [f"{action}: {', '.join(names)}" for action, names in sorted(by_action.items())]
    return "; ".join(parts)


# -- SVG ----------------------------------------------------------------------------------------------


class _Svg:
    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.parts: list[str] = []

    def rect(
        self,
        x: float,
        y: float,
        w: float,
        h: float,
        *,
        fill: str,
        stroke: str,
        dash: bool = False,
        rx: float = 8,
        width: float = 1.5,
    ) -> None:
        dashed = ' stroke-dasharray="8 5"' if dash else ""
        self.parts.append(
            f'<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="{rx}" fill="{fill}" stroke="{stroke}" '
            f'stroke-width="{width}"{dashed}/>'
        )

    def text(
        self,
        x: float,
        y: float,
        value: str,
        *,
        size: float = 12,
        weight: str = "normal",
        anchor: str = "middle",
        fill: str = "#1b1f24",
    ) -> None:
        self.parts.append(
            f'<text x="{x}" y="{y}" font-size="{size}" font-weight="{weight}" text-anchor="{anchor}" '
            f'fill="{fill}">{escape(value)}</text>'
        )

    def arrow(
        self,
        x1: float,
        y1: float,
        x2: float,
        y2: float,
        *,
        color: str,
        label: Sequence[str] = (),
        both: bool = False,
        dash: bool = False,
        lx: float | None = None,
        ly: float | None = None,
    ) -> None:
        start = ' marker-start="url(#arrow-start)"' if both else ""
        dashed = ' stroke-dasharray="6 4"' if dash else ""
        self.parts.append(
            f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="{color}" stroke-width="2" '
            f'marker-end="url(#arrow-end)"{start}{dashed}/>'
        )
        cx = (x1 + x2) / 2 if lx is None else lx
        cy = (y1 + y2) / 2 - 6 * len(label) if ly is None else ly
        for i, line in enumerate(label):
            self.text(cx, cy + 13 * i, line, size=10.5, fill="#333")

    def render(self, title: str) -> str:
        head = (
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {self.width} {self.height}" '
            f'width="{self.width}" height="{self.height}" role="img" aria-label="{escape(title)}" '
            'font-family="DejaVu Sans, Helvetica, Arial, sans-serif">'
            f"<title>{escape(title)}</title>"
            "<defs>"
            '<marker id="arrow-end" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
            'orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#444"/></marker>'
            '<marker id="arrow-start" viewBox="0 0 10 10" refX="1" refY="5" markerWidth="7" markerHeight="7" '
            'orient="auto"><path d="M10,0 L0,5 L10,10 z" fill="#444"/></marker>'
            "</defs>"
            f'<rect width="{self.width}" height="{self.height}" fill="#ffffff"/>'
        )
        return head + "".join(self.parts) + "</svg>"


def render_svg(deployment: Deployment) -> str:  # noqa: PLR0915 - one drawing, top to bottom
    """The data-flow diagram. Deterministic for a given deployment (no timestamps, no random ids)."""
    c = deployment.classification
    svg = _Svg(1080, 640)
    # Columns: clients | hosts (untrusted) | enclave (trusted) | egress providers
    svg.text(540, 26, f"Data flow: {deployment.name}", size=17, weight="bold")
    svg.text(
        540,
        45,
        f"TEE: {deployment.tee}"
        + ("  (development: no hardware protection)" if deployment.simulated else ""),
        size=11,
        fill="#b00020" if deployment.simulated else "#333",
    )

    # Clients
    svg.rect(20, 80, 170, 150, fill="#eef5ff", stroke="#3d6bb3")
    svg.text(105, 102, "Clients", size=13, weight="bold")
    names = list(deployment.clients) or ["data owner's apps"]
    for i, name in enumerate(names[:4]):
        svg.text(105, 124 + 16 * i, name[:26], size=10.5)
    svg.text(105, 200, "verify attestation", size=10, fill="#3d6bb3")
    svg.text(105, 214, "before sending data", size=10, fill="#3d6bb3")

    # Hosts (untrusted)
    svg.rect(270, 64, 250, 380, fill="#f3f3f3", stroke="#888", dash=True, rx=12)
    svg.text(395, 84, "Host (untrusted operator, OS)", size=12, weight="bold", fill="#555")
    n = max(1, len(deployment.hosts))
    svg.rect(290, 100, 210, 70, fill="#ffffff", stroke="#777")
    svg.text(395, 122, f"OHTTP relay x{n}", size=12, weight="bold")
    svg.text(395, 140, "sees ciphertext, sizes, timing", size=10)
    svg.text(395, 155, "holds no key, no plaintext", size=10)
    svg.rect(290, 190, 210, 56, fill="#ffffff", stroke="#777")
    svg.text(395, 212, "blob store", size=12, weight="bold")
    svg.text(395, 230, "ciphertext under HMAC names", size=10)
    svg.rect(290, 266, 210, 56, fill="#ffffff", stroke="#777")
    svg.text(395, 288, "logs, metrics, traces", size=12, weight="bold")
    svg.text(395, 306, "allow-listed fields: no content", size=10)
    svg.rect(290, 342, 210, 56, fill="#ffffff", stroke="#777")
    svg.text(395, 364, "key-broker relay", size=12, weight="bold")
    svg.text(395, 382, "nonce, bundle, token, sealed keys", size=10)

    # Enclave (trust boundary)
    svg.rect(580, 64, 260, 380, fill="#eefaf0", stroke="#1e8e3e", dash=True, rx=12, width=2.5)
    svg.text(710, 84, "Enclave: attested, measured", size=12, weight="bold", fill="#1e6b33")
    svg.text(710, 100, "trust boundary", size=10, fill="#1e6b33")
    for i, (title, sub) in enumerate(
        (
            ("OHTTP gateway (HPKE)", "decrypts only here"),
            ("classification + detection", "PHI, PCI, PII, CONFIDENTIAL, PUBLIC"),
            ("redact / tokenize / encrypt", "field and envelope encryption"),
            ("inference + retrieval", "models measured by digest"),
        )
    ):
        y = 112 + 80 * i
        svg.rect(600, y, 220, 60, fill="#ffffff", stroke="#1e8e3e")
        svg.text(710, y + 24, title, size=11.5, weight="bold")
        svg.text(710, y + 42, sub, size=10)

    # Egress providers
    targets = [t.name for t in c.egress]
    svg.rect(900, 80, 160, 150, fill="#fff7e6", stroke="#c77700")
    svg.text(980, 102, "Egress providers", size=12, weight="bold")
    if targets:
        for i, name in enumerate(targets[:5]):
            svg.text(980, 124 + 16 * i, name[:22], size=10.5)
    else:
        svg.text(980, 130, "none allow-listed:", size=10.5)
        svg.text(980, 146, "no data leaves", size=10.5)

    # Broker and transparency log
    svg.rect(290, 480, 210, 100, fill="#f5efff", stroke="#6b3db3")
    svg.text(395, 502, "Key broker", size=13, weight="bold")
    svg.text(395, 520, f"{deployment.broker_replicas} replica(s) on {deployment.broker_store}", size=10)
    svg.text(395, 536, "releases keys only to allowed", size=10)
    svg.text(395, 550, "measurements; audit ledger", size=10)
    svg.text(395, 566, "(hash chain, signed checkpoints)", size=10)
    svg.rect(20, 480, 170, 100, fill="#f7f7f7", stroke="#555")
    svg.text(105, 502, "Transparency log", size=12, weight="bold")
    svg.text(105, 520, "signed release records", size=10)
    svg.text(105, 536, "clients check inclusion" if deployment.tlog_url else "not configured", size=10)

    # Edges
    regulated = ", ".join(sorted(k for k in c.classes if k != "PUBLIC"))
    svg.arrow(190, 140, 290, 130, color="#3d6bb3", both=True, label=("HPKE-encrypted", "all classes"), ly=108)
    svg.arrow(500, 135, 600, 142, color="#3d6bb3", both=True, label=("ciphertext", "frames"), ly=112)
    svg.arrow(600, 230, 500, 218, color="#777", both=True, label=("AES-GCM", "ciphertext"), ly=200)
    svg.arrow(500, 370, 600, 372, color="#6b3db3", label=("keys sealed", "to enclave"), ly=352)
    svg.arrow(395, 480, 395, 398, color="#6b3db3", both=True, label=("attest,", "release"), lx=440, ly=436)
    svg.arrow(600, 296, 500, 294, color="#999", dash=True, label=("codes, sizes", "only"), ly=276)
    if c.egress:
        svg.arrow(840, 320, 900, 200, color="#c77700", label=egress_lines(c), lx=940, ly=268)
    svg.arrow(105, 480, 105, 230, color="#555", dash=True, label=("inclusion", "proofs"), lx=150, ly=350)

    # Legend per class
    flows = class_flows(c)
    svg.text(580, 478, "Per data class (classification manifest)", size=12, weight="bold", anchor="start")
    for i, (name, lines) in enumerate(flows.items()):
        y = 498 + 26 * i
        color = "#b00020" if name in {"PHI", "PCI", "PII"} else "#333"
        svg.text(580, y, name, size=11, weight="bold", anchor="start", fill=color)
        svg.text(680, y, f"{lines[0]}; {lines[1]}", size=10, anchor="start")
        svg.text(680, y + 12, lines[2], size=9.5, anchor="start", fill="#555")
    svg.text(
        20,
        615,
        f"Regulated and confidential classes ({regulated}) are decrypted only inside the enclave.",
        size=10.5,
        anchor="start",
    )
    return svg.render(f"Data flow of {deployment.name}")


def egress_lines(c: Classification) -> tuple[str, ...]:
    if not c.egress:
        return ("no egress",)
    by_action: dict[str, list[str]] = {}
    for name in CLASSES:
        rule = c.classes.get(name)
        if rule is not None:
            by_action.setdefault(rule.egress, []).append(name)
    return tuple(f"{a}: {','.join(v)}" for a, v in sorted(by_action.items()))


def deployment_svg(path: Path) -> str:
    return render_svg(load_deployment(path))
