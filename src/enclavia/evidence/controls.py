"""What enclavia protects and what it does not (the report's precise list, as in docs/claims.md), and the
mapping to common controls. Each control names the report section that holds its evidence and how its status
is decided from that evidence."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from enclavia.protect.classification import REGULATED, Classification

PROTECTED: tuple[str, ...] = (
    "Request and response content (features, prompts, documents, embeddings, answers): encrypted by the "
    "client "
    "with HPKE to a key that exists only inside the attested enclave (OHTTP, RFC 9458); the host relays "
    "ciphertext only.",
    "Nothing is sent before the client has verified the enclave's evidence, its measurement against the "
    "policy, "
    "and (when configured) the release's inclusion in the transparency log.",
    "Keys (model keys, document KEKs) are released by the broker only to enclaves whose fresh evidence "
    "matches "
    "the policy in force, sealed to the attested enclave's key; every decision is in the audit ledger.",
    "Stored documents, chunks and indexes are encrypted per tenant and per document (envelope encryption, "
    "AES-256-GCM); blob names are HMACs; the host stores ciphertext only.",
    "Regulated classes are redacted or tokenized inside the enclave before any allowed egress, per the "
    "measured "
    "classification manifest; classes marked 'never logged' do not reach logs, metrics or traces.",
    "Logs, metrics and traces carry allow-listed fields only (codes, sizes, durations, digests, keyed "
    "references); exception text is never emitted.",
    "The code that runs is the code that was released: every enclavia file in the entry point's import "
    "closure, every third-party distribution's RECORD, the interpreter, its launch flags and environment "
    "allow-list and every model digest are in the measured manifest; the enclave refuses to run with a "
    "loaded module outside it; releases are signed, approved k-of-n and logged.",
)

NOT_PROTECTED: tuple[str, ...] = (
    "Application bugs inside the measured code: attestation proves which code runs, not that it is correct. "
    "A "
    "flaw in enclave code that leaks data to an allowed output is not prevented.",
    "The client side: data before it is encrypted and after it is decrypted, the client's device, its "
    "policy file "
    "and its credentials.",
    "An external model provider on the egress allow-list: what it receives (tokenized or redacted, per "
    "class) is "
    "then under its own controls; tokens are re-identified only inside the enclave.",
    "Side channels of the TEE (timing, cache, power, memory access patterns) and physical attacks on the CPU "
    "package; vendor firmware flaws beyond the TCB levels the policy enforces.",
    "Availability: the host operator can delay, drop or refuse requests, stop the enclave or the broker; "
    "enclavia fails closed, it does not guarantee service.",
    "Traffic metadata: which client talks when, request and response sizes and timing are visible to the "
    "host "
    "(an independent OHTTP relay in front hides client addresses).",
    "A legitimate requester misusing its own access (the usage anomaly detector flags volume and rate, it "
    "does "
    "not prevent it).",
    "The simulated TEE: in development, the host operator holds the platform key and can read everything.",
)


def manifest_lines(classification: Classification) -> list[dict[str, str]]:
    """One row per data class: what the measured manifest lets it do."""
    rows = []
    fields: dict[str, list[str]] = {}
    for route, mapping in classification.routes.items():
        for path, cls in mapping.items():
            fields.setdefault(cls, []).append(f"{route} {path}")
    for name, rule in classification.classes.items():
        rows.append(
            {
                "class": name,
                "regulated": "yes" if name in REGULATED else "no",
                "egress": rule.egress,
                "log": rule.log,
                "without_clearance": rule.without_clearance,
                "fields": ", ".join(sorted(fields.get(name, []))) or "-",
            }
        )
    return rows


@dataclass(frozen=True)
class Control:
    framework: str
    control: str
    title: str
    how: str
    evidence: str  # report section id
    status: str  # met | not met | partial


def controls(evidence: Mapping[str, Any]) -> list[Control]:
    """The mapping, with a status decided from this report's evidence."""
    ledger_ok = bool(evidence.get("ledger_ok"))
    enclaves_ok = bool(evidence.get("enclaves_ok"))
    simulated = bool(evidence.get("simulated"))
    tlog_ok = evidence.get("tlog_ok")
    alerts = evidence.get("alerts") or []

    def status(ok: bool) -> str:
        if not ok:
            return "not met"
        return "partial" if simulated else "met"

    rows = [
        Control(
            "HIPAA",
            "164.312(a)(2)(iv)",
            "Encryption and decryption",
            "PHI is decrypted only inside attested enclaves; HPKE/OHTTP for requests, AES-256-GCM field and "
            "envelope "
            "encryption at rest; keys released only under policy.",
            "measurements",
            status(enclaves_ok),
        ),
        Control(
            "HIPAA",
            "164.312(b)",
            "Audit controls",
            "Every attestation, key release, denial, policy change and admin action in a hash-chained "
            "ledger with "
            "signed checkpoints; content-free logs.",
            "ledger",
            status(ledger_ok),
        ),
        Control(
            "HIPAA",
            "164.312(e)(1), (e)(2)(i)-(ii)",
            "Transmission security (integrity, encryption)",
            "End-to-end HPKE (AES-256-GCM, authenticated) from client to enclave; the host relays "
            "ciphertext.",
            "measurements",
            status(enclaves_ok),
        ),
        Control(
            "PCI DSS 4.0",
            "Req. 3 (3.5, 3.6, 3.7)",
            "Protect stored account data; key management",
            "PAN (class PCI) never stored or logged in the clear: redacted or masked per manifest, "
            "encrypted store; "
            "keys in the broker behind a key store (PKCS#11), rotation and crypto-shredding.",
            "protection",
            status(enclaves_ok),
        ),
        Control(
            "PCI DSS 4.0",
            "Req. 10 (10.2, 10.3, 10.4, 10.7)",
            "Log and monitor all access",
            "Decisions recorded in the ledger (10.2), protected by hash chain and checkpoints (10.3), "
            "reviewed via "
            "alerts, console and this report (10.4), failures of security controls alerted (10.7).",
            "ledger",
            status(ledger_ok),
        ),
        Control(
            "SOC 2",
            "CC6.1, CC6.6, CC6.7, CC6.8",
            "Logical access; boundary; transmission; unauthorised software",
            "Key release only to allowed measurements; host outside the trust boundary; encrypted "
            "transmission; "
            "measured images, signed and logged releases.",
            "measurements",
            status(enclaves_ok and tlog_ok is not False),
        ),
        Control(
            "SOC 2",
            "CC7.1-CC7.5",
            "System operations: detect, monitor, respond",
            "Drift monitor and alerts for measurement changes, attestation failures, key-release denials "
            "and usage "
            "anomalies; runbooks for each; this report.",
            "operations",
            status(ledger_ok) if not any(a.get("severity") == "page" for a in alerts) else "partial",
        ),
    ]
    return rows
