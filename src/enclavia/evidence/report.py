"""The auditor's report: collect evidence from a live deployment, render HTML (and PDF), sign it, and append
its digest to the broker's audit ledger.

Output directory::

    report.html         the report (the data-flow SVG inline)
    report.pdf          the same, printed by WeasyPrint
    dataflow.svg        the picture on its own
    evidence.json       everything the report was rendered from (no secret values, no request content)
    MANIFEST.json       SHA-256 of each file above, report metadata, the signer's key
    MANIFEST.json.sig   Ed25519 over "enclavia-evidence-report-v1" || 0x00 || MANIFEST.json (hex)
    ledger-receipt.json the broker's answer to appending SHA-256(MANIFEST.json) (seq, time, keyed reference)

``verify_report`` checks the signature, every digest, that no listed file is missing or changed, and
(optionally) that the broker's ledger holds the digest.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any, Final

import httpx

from enclavia.crypto.signing import SigningKey, verify_ed25519
from enclavia.errors import EnclaviaError, SignatureInvalidError
from enclavia.evidence.controls import NOT_PROTECTED, PROTECTED, controls, manifest_lines
from enclavia.evidence.dataflow import Deployment, class_flows, render_svg

SIGNATURE_CONTEXT: Final = b"enclavia-evidence-report-v1\x00"
MANIFEST: Final = "MANIFEST.json"
SIGNATURE: Final = "MANIFEST.json.sig"
RECEIPT: Final = "ledger-receipt.json"
SIGNED_FILES: Final = ("report.html", "report.pdf", "dataflow.svg", "evidence.json")


class ReportVerificationError(EnclaviaError):
    code = "evidence.report_invalid"
    title = "Report signature or contents do not verify"


@dataclass(frozen=True)
class Sources:
    deployment: Deployment
    broker_url: str | None = None
    admin_token: str | None = None
    policy_text: str | None = None  # client policy to attest the hosts with; default: the broker's in force
    db_url: str | None = None  # verify the ledger independently from this database
    broker_public_key: bytes | None = None  # pin; default: the key the broker publishes
    tlog_key: bytes | None = None


# -- collect --------------------------------------------------------------------------------------------


def _admin(sources: Sources, path: str) -> Any:
    assert sources.broker_url is not None
    resp = httpx.get(
        sources.broker_url.rstrip("/") + path,
        headers={"authorization": f"Bearer {sources.admin_token or ''}"},
        timeout=60.0,
    )
    if resp.status_code != 200:
        code = resp.json().get("code", "") if resp.headers.get("content-type", "").endswith("json") else ""
        raise EnclaviaError(f"broker answered {resp.status_code} {code}".strip())
    return resp.json()


def _attest_host(url: str, policy_text: str, sources: Sources) -> dict[str, Any]:
    from enclavia.client.sdk import Client
    from enclavia.policy.document import parse_policy

    kw: dict[str, Any] = {}
    tlog_url, tlog_key = sources.deployment.tlog_url, sources.tlog_key
    if tlog_url and (tlog_key or sources.deployment.tlog_public_key):
        from enclavia.attestation.tlog import MemoryTreeHeadStore

        kw = {
            "tlog": tlog_url,
            "tlog_key": tlog_key or bytes.fromhex(sources.deployment.tlog_public_key or ""),
            "tlog_state": MemoryTreeHeadStore(),
            "release_keys": [bytes.fromhex(k) for k in sources.deployment.tlog_release_keys],
        }
    out: dict[str, Any] = {"url": url}
    try:
        with Client(url, parse_policy(policy_text), **kw) as client:
            enclave = client.attest()
            inclusion = client.last_inclusion
    except EnclaviaError as err:
        return {**out, "attested": False, "error_code": err.code}
    result = enclave.result
    out |= {
        "attested": True,
        "tee": str(result.tee),
        "measurement": result.measurement,
        "manifest_digest": enclave.bundle.manifest.digest().hex(),
        "policy_id": result.policy_id,
        "policy_revision": result.policy_revision,
        "reference": result.reference_name,
        "reasons": list(result.reasons),  # e.g. unsafe_weak_pins:tdx_mrtd_only (enclavia.policy.strength)
        "debug": bool(result.claims.debug),
        "models": dict(enclave.bundle.manifest.models),
        "code_files": len(enclave.bundle.manifest.files),
        "enclavia_version": enclave.bundle.manifest.enclavia_version,
    }
    if inclusion is not None:
        out["transparency_log"] = {
            "included": True,
            "release": inclusion.release.record.version,
            "index": inclusion.index,
            "tree_size": inclusion.tree_head.tree_size,
        }
    elif kw:
        out["transparency_log"] = {"included": False}
    return out


_METRIC = re.compile(r"^(enclavia_[a-z_]+)(\{[^}]*\})? ([0-9.eE+-]+)$")
_WANTED = (
    "enclavia_enclave_up",
    "enclavia_enclave_restarts_total",
    "enclavia_host_kbs_complete",
    "enclavia_usage_anomalies_total",
)


def _host_metrics(url: str) -> dict[str, float]:
    try:
        text = httpx.get(url.rstrip("/") + "/metrics", timeout=10.0).text
    except httpx.HTTPError:
        return {}
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = _METRIC.match(line.strip())
        if m and m.group(1) in _WANTED:
            out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(3))
    return out


def _independent_ledger_check(db_url: str, public_key: bytes) -> dict[str, Any]:
    from enclavia.broker.audit import verify_ledger
    from enclavia.broker.store import Store

    store = Store(db_url)
    try:
        with store.transaction() as conn:
            report = verify_ledger(conn, public_key)
        return {
            "ok": True,
            "records": report.records,
            "checkpoints": report.checkpoints,
            "head_hash": report.head_hash,
            "last_checkpoint_seq": report.last_checkpoint_seq,
            "kid": report.kid,
            "pinned_key": public_key.hex(),
        }
    except EnclaviaError as err:
        return {"ok": False, "error_code": err.code, "detail": err.detail, "pinned_key": public_key.hex()}
    finally:
        store.dispose()


def collect(sources: Sources, *, now: datetime | None = None) -> dict[str, Any]:
    """Everything the report shows. Content-free: digests, codes, counts, names from configuration."""
    dep = sources.deployment
    evidence: dict[str, Any] = {
        "generated_at": (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "deployment": {
            "name": dep.name,
            "tee": dep.tee,
            "hosts": [{"name": h.name, "url": h.url} for h in dep.hosts],
            "broker": {"url": dep.broker_url, "replicas": dep.broker_replicas, "store": dep.broker_store},
            "transparency_log": dep.tlog_url,
            "classification": dep.classification_source,
            "classification_digest": hashlib.sha256(
                json.dumps(dep.classification.measured(), sort_keys=True).encode()
            ).hexdigest(),
        },
    }
    policy_text = sources.policy_text
    if sources.broker_url:
        summary = _admin(sources, "/kbs/v1/admin/ops/summary?verify=now")
        evidence["broker"] = summary
        if policy_text is None:
            policy_text = _admin(sources, "/kbs/v1/admin/policy")["source"]
    hosts = []
    for host in dep.hosts:
        entry: dict[str, Any] = (
            _attest_host(host.url, policy_text, sources) if policy_text else {"url": host.url}
        )
        entry["name"] = host.name
        entry["metrics"] = _host_metrics(host.url)
        hosts.append(entry)
    evidence["hosts"] = hosts
    if sources.db_url:
        key = sources.broker_public_key
        if key is None and "broker" in evidence:
            key = bytes.fromhex(evidence["broker"]["broker"]["public_key"])
        if key is not None:
            evidence["ledger_independent"] = _independent_ledger_check(sources.db_url, key)
    evidence["protection"] = {
        "classes": manifest_lines(dep.classification),
        "flows": class_flows(dep.classification),
        "egress_targets": [t.name for t in dep.classification.egress],
        "protected": list(PROTECTED),
        "not_protected": list(NOT_PROTECTED),
    }
    broker_ledger = evidence.get("broker", {}).get("ledger", {}).get("verification", {})
    independent = evidence.get("ledger_independent")
    ledger_ok = bool(broker_ledger.get("ok")) and (independent is None or bool(independent.get("ok")))
    enclaves_ok = bool(hosts) and all(h.get("attested") for h in hosts)
    tlog_states = [h["transparency_log"]["included"] for h in hosts if "transparency_log" in h]
    status = {
        "ledger_ok": ledger_ok,
        "enclaves_ok": enclaves_ok,
        "simulated": dep.simulated or any(h.get("tee") == "simulated" for h in hosts),
        "tlog_ok": all(tlog_states) if tlog_states else None,
        "alerts": evidence.get("broker", {}).get("alerts", []),
    }
    evidence["status"] = status
    evidence["controls"] = [c.__dict__ for c in controls(status)]
    return evidence


# -- render ---------------------------------------------------------------------------------------------

CSS = """
@page { size: A4; margin: 16mm 14mm; @bottom-right { content: "page " counter(page) " of " counter(pages);
  font-size: 8pt; color: #666; } }
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; font-size: 9.5pt; color: #1b1f24; }
h1 { font-size: 18pt; margin: 0 0 2mm 0; } h2 { font-size: 12.5pt; border-bottom: 1px solid #ccd;
  padding-bottom: 1mm; margin-top: 7mm; page-break-after: avoid; }
table { border-collapse: collapse; width: 100%; margin: 2mm 0; page-break-inside: auto; }
th, td { border: 1px solid #d0d4da; padding: 1.2mm 1.6mm; text-align: left; vertical-align: top; }
th { background: #f0f2f5; } tr { page-break-inside: avoid; }
code, .mono { font-family: "DejaVu Sans Mono", monospace; font-size: 8pt; word-break: break-all; }
.ok { color: #1e7b34; font-weight: bold; } .bad { color: #b00020; font-weight: bold; }
.warn { color: #a15c00; font-weight: bold; } .muted { color: #666; }
.banner { border: 2px solid #b00020; color: #b00020; padding: 2mm 3mm; margin: 3mm 0; font-weight: bold; }
.figure svg { width: 100%; height: auto; }
.meta td:first-child { width: 32%; color: #444; }
"""


def _e(value: Any) -> str:
    return escape("-" if value is None else str(value))


def _badge(ok: bool | None, yes: str = "verified", no: str = "FAILED", unknown: str = "not checked") -> str:
    if ok is None:
        return f'<span class="muted">{unknown}</span>'
    return f'<span class="ok">{yes}</span>' if ok else f'<span class="bad">{no}</span>'


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _short(value: str | None, n: int = 24) -> str:
    if not value:
        return "-"
    return (
        f'<code title="{escape(value)}">{escape(value[:n])}…</code>'
        if len(value) > n
        else f"<code>{escape(value)}</code>"
    )


def render_html(evidence: Mapping[str, Any], svg: str, *, signer_kid: str) -> str:  # noqa: PLR0915
    dep = evidence["deployment"]
    status = evidence["status"]
    broker = evidence.get("broker") or {}
    parts: list[str] = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Auditor's report: {_e(dep['name'])}</title><style>{CSS}</style></head><body>",
        f"<h1>Auditor's report: {_e(dep['name'])}</h1>",
        "<table class='meta'>",
        f"<tr><td>Generated</td><td>{_e(evidence['generated_at'])}</td></tr>",
        f"<tr><td>TEE</td><td>{_e(dep['tee'])}</td></tr>",
        f"<tr><td>Hosts</td><td>{len(dep['hosts'])}</td></tr>",
        f"<tr><td>Key broker</td><td>{_e(dep['broker']['replicas'])} replica(s), "
        f"{_e(dep['broker']['store'])};"
        f" key id <code>{_e(broker.get('broker', {}).get('kid'))}</code></td></tr>",
        f"<tr><td>Classification manifest</td><td>{_e(dep['classification'])} "
        f"(sha256 {_short(dep['classification_digest'], 16)})</td></tr>",
        f"<tr><td>Report signed by</td><td>Ed25519 key id <code>{_e(signer_kid)}</code> "
        "(detached signature MANIFEST.json.sig)</td></tr>",
        "<tr><td>Enclaves attested</td><td>"
        f"{_badge(status['enclaves_ok'], 'all verified', 'NOT ALL')}</td></tr>",
        f"<tr><td>Audit ledger</td><td>{_badge(status['ledger_ok'])}</td></tr>",
        f"<tr><td>Transparency log</td><td>{_badge(status['tlog_ok'], 'all included', 'NOT INCLUDED')}"
        "</td></tr></table>",
    ]
    if status["simulated"]:
        parts.append(
            "<div class='banner'>Simulated TEE: development only. The host operator holds the platform key: "
            "nothing in this deployment is protected by hardware.</div>"
        )

    parts.append("<h2 id='dataflow'>1. Data flow</h2>")
    parts.append(
        "<p>Drawn from the deployment configuration and the measured classification manifest. The dashed "
        "green "
        "box is the trust boundary: data of every class is decrypted only inside it.</p>"
    )
    parts.append(f"<div class='figure'>{svg}</div>")

    parts.append("<h2 id='measurements'>2. Measurements in service</h2>")
    rows = []
    for h in evidence["hosts"]:
        tl = h.get("transparency_log")
        tl_cell = (
            "not configured"
            if tl is None
            else (
                f"<span class='ok'>included</span>: release {_e(tl.get('release'))}, "
                f"index {_e(tl.get('index'))}"
                f" of {_e(tl.get('tree_size'))}"
                if tl.get("included")
                else "<span class='bad'>NOT INCLUDED</span>"
            )
        )
        attested = (
            f"<span class='ok'>verified</span> ({_e(h.get('reference'))}, "
            f"policy rev {_e(h.get('policy_revision'))})"
            if h.get("attested")
            else f"<span class='bad'>REFUSED</span> <code>{_e(h.get('error_code'))}</code>"
        )
        rows.append(
            [
                _e(h["name"]),
                _e(h.get("tee")),
                _short(h.get("measurement")),
                attested,
                tl_cell,
                _e(int(h.get("metrics", {}).get("enclavia_enclave_restarts_total", 0))),
            ]
        )
    parts.append(_table(["host", "TEE", "measurement", "attestation", "transparency log", "restarts"], rows))
    if broker.get("enclaves"):
        parts.append("<p>Attested at the key broker in the last 24 h (from the audit ledger):</p>")
        parts.append(
            _table(
                ["TEE", "reference", "measurement", "allowed now", "attested", "denied", "last"],
                [
                    [
                        _e(e["tee"]),
                        _e(e["reference"]),
                        _short(e["measurement"] or e["measurement_ref"]),
                        _badge(e["allowed_now"], "yes", "NO"),
                        _e(e["attested_ok"]),
                        _e(e["denied"]),
                        _e(e["last_attested"]),
                    ]
                    for e in broker["enclaves"]
                ],
            )
        )

    parts.append("<h2 id='policy'>3. Policy history</h2>")
    parts.append(
        _table(
            ["rev", "policy", "applied", "profile", "reference values", "secret rules", "sha256"],
            [
                [
                    _e(p["revision"]),
                    _e(p["policy_id"]),
                    _e(p["applied_at"]),
                    _e(p["profile"]),
                    "<br>".join(
                        f"{_e(r['tee'])}: {_e(r['name'])} "
                        + " ".join(_short(v, 16) for v in r["values"].values())
                        + (f" until {_e(r['not_after'])}" if r.get("not_after") else "")
                        + (
                            " <strong>UNSAFE: pins only firmware-level values</strong>"
                            if r.get("unsafe_weak_pins")
                            else ""
                        )
                        for r in p["references"]
                    ),
                    _e(p["secret_rules"]),
                    _short(p["sha256"], 12),
                ]
                for p in broker.get("policy_history", [])
            ],
        )
    )

    parts.append("<h2 id='releases'>4. Key-release statistics</h2>")
    decisions = broker.get("decisions", {})
    for label, key in (("All time", "all_time"), ("Last 24 h", "window")):
        rows = [
            [_e(r["action"]), _e(r["outcome"]), f"<code>{_e(r['code'])}</code>", _e(r["count"])]
            for r in decisions.get(key, [])
            if r["action"] in {"attest", "release", "policy.update", "admin.auth", "evidence.report"}
            or r["outcome"] != "ok"
        ]
        parts.append(f"<p><b>{label}</b></p>" + _table(["action", "outcome", "code", "count"], rows))
    if broker.get("recent_denials"):
        parts.append("<p>Most recent denials:</p>")
        parts.append(
            _table(
                ["seq", "time", "action", "code", "policy rev"],
                [
                    [
                        _e(d["seq"]),
                        _e(d["time"]),
                        _e(d["action"]),
                        f"<code>{_e(d['code'])}</code>",
                        _e(d["policy_revision"]),
                    ]
                    for d in broker["recent_denials"][:15]
                ],
            )
        )

    parts.append("<h2 id='ledger'>5. Audit ledger verification</h2>")
    ledger = broker.get("ledger", {})
    ver = ledger.get("verification", {})
    cp = ledger.get("last_checkpoint") or {}
    rows = [
        [
            "verified by the broker",
            _badge(ver.get("ok")) + (f" <code>{_e(ver.get('detail'))}</code>" if ver.get("detail") else ""),
        ],
        ["records (height)", _e(ledger.get("height"))],
        ["head hash", _short(ledger.get("head_hash"), 64)],
        ["signed checkpoints", _e(ver.get("checkpoints"))],
        [
            "last checkpoint",
            f"seq {_e(cp.get('seq'))} at {_e(cp.get('time'))}, signature {_short(cp.get('signature'), 24)}",
        ],
        ["broker public key", _short(broker.get("broker", {}).get("public_key"), 64)],
    ]
    independent = evidence.get("ledger_independent")
    if independent is not None:
        rows.append(
            [
                "verified independently (database read by the report tool, key pinned)",
                _badge(independent.get("ok"))
                + (
                    f" {_e(independent.get('records'))} records"
                    if independent.get("ok")
                    else f" <code>{_e(independent.get('detail'))}</code>"
                ),
            ]
        )
    parts.append(_table(["", ""], rows))
    parts.append(
        "<p class='muted'>The digest of this report's MANIFEST.json is appended to the ledger after signing "
        "(ledger-receipt.json); the ledger state above is the state before that record.</p>"
    )

    parts.append("<h2 id='protection'>6. What is protected and what is not</h2>")
    prot = evidence["protection"]
    parts.append("<p><b>Per data class</b> (measured classification manifest):</p>")
    parts.append(
        _table(
            ["class", "regulated", "egress", "logging", "without clearance", "request fields"],
            [
                [
                    f"<b>{_e(r['class'])}</b>",
                    _e(r["regulated"]),
                    _e(r["egress"]),
                    _e(r["log"]),
                    _e(r["without_clearance"]),
                    f"<code>{_e(r['fields'])}</code>",
                ]
                for r in prot["classes"]
            ],
        )
    )
    targets = ", ".join(prot["egress_targets"]) or "none: no data leaves the enclave"
    parts.append(f"<p>Egress allow-list: {_e(targets)}.</p>")
    parts.append(
        "<p><b>Protected</b></p><ul>" + "".join(f"<li>{_e(x)}</li>" for x in prot["protected"]) + "</ul>"
    )
    parts.append(
        "<p><b>Not protected</b></p><ul>"
        + "".join(f"<li>{_e(x)}</li>" for x in prot["not_protected"])
        + "</ul>"
    )

    parts.append("<h2 id='controls'>7. Control mapping</h2>")
    parts.append(
        _table(
            ["framework", "control", "how enclavia addresses it", "evidence", "status"],
            [
                [
                    _e(c["framework"]),
                    f"<b>{_e(c['control'])}</b><br>{_e(c['title'])}",
                    _e(c["how"]),
                    f"section <a href='#{_e(c['evidence'])}'>{_e(c['evidence'])}</a>",
                    {
                        "met": "<span class='ok'>met</span>",
                        "partial": "<span class='warn'>partial</span>",
                    }.get(c["status"], "<span class='bad'>not met</span>"),
                ]
                for c in evidence["controls"]
            ],
        )
    )
    parts.append("<h2 id='operations'>8. Open alerts</h2>")
    alerts = evidence["status"]["alerts"]
    parts.append(
        _table(
            ["alert", "severity", "summary", "runbook"],
            [
                [
                    _e(a["alert"]),
                    _e(a["severity"]),
                    _e(a["summary"]),
                    f"<code>docs/runbooks/{_e(a['runbook'])}</code>",
                ]
                for a in alerts
            ],
        )
        if alerts
        else "<p class='ok'>None.</p>"
    )
    parts.append("</body></html>")
    return "".join(parts)


def render_pdf(html: str, out: Path) -> None:
    from weasyprint import HTML  # type: ignore[import-untyped]

    HTML(string=html).write_pdf(str(out))


# -- sign, append, verify ----------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def key_id(public_key: bytes) -> str:
    return hashlib.sha256(public_key).hexdigest()[:16]


def write_report(
    evidence: Mapping[str, Any], deployment: Deployment, out: Path, signer: SigningKey, *, pdf: bool = True
) -> dict[str, Any]:
    """Write every file, the manifest and its signature. Returns the manifest."""
    out.mkdir(parents=True, exist_ok=True)
    svg = render_svg(deployment)
    kid = key_id(signer.public_bytes)
    html = render_html(evidence, svg, signer_kid=kid)
    (out / "dataflow.svg").write_text(svg, encoding="utf-8")
    (out / "report.html").write_text(html, encoding="utf-8")
    (out / "evidence.json").write_text(json.dumps(evidence, indent=2, sort_keys=True), encoding="utf-8")
    if pdf:
        render_pdf(html, out / "report.pdf")
    files = {name: _sha256(out / name) for name in SIGNED_FILES if (out / name).exists()}
    manifest = {
        "format": "enclavia-evidence-report-v1",
        "deployment": deployment.name,
        "generated_at": evidence["generated_at"],
        "signer": {"alg": "Ed25519", "kid": kid, "public_key": signer.public_bytes.hex()},
        "files": files,
    }
    body = json.dumps(manifest, indent=2, sort_keys=True).encode()
    (out / MANIFEST).write_bytes(body)
    (out / SIGNATURE).write_text(signer.sign(SIGNATURE_CONTEXT + body).hex() + "\n", encoding="ascii")
    return manifest


def manifest_digest(out: Path) -> str:
    return _sha256(out / MANIFEST)


def append_to_ledger(out: Path, broker_url: str, admin_token: str) -> dict[str, Any]:
    digest = manifest_digest(out)
    resp = httpx.post(
        broker_url.rstrip("/") + "/kbs/v1/admin/audit/evidence",
        json={"digest": digest},
        headers={"authorization": f"Bearer {admin_token}"},
        timeout=30.0,
    )
    if resp.status_code != 201:
        raise EnclaviaError(f"broker refused the evidence record ({resp.status_code})")
    receipt = {"digest": digest, "broker": broker_url, **resp.json()}
    (out / RECEIPT).write_text(json.dumps(receipt, indent=2, sort_keys=True), encoding="utf-8")
    return receipt


def verify_report(out: Path, public_key: bytes) -> dict[str, Any]:
    """Check the detached signature and every listed file. Raises ReportVerificationError naming the check."""
    try:
        body = (out / MANIFEST).read_bytes()
        signature = bytes.fromhex((out / SIGNATURE).read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        raise ReportVerificationError("manifest or signature missing or unreadable") from None
    try:
        verify_ed25519(public_key, SIGNATURE_CONTEXT + body, signature)
    except (SignatureInvalidError, EnclaviaError, ValueError):
        raise ReportVerificationError("signature does not verify under the given key") from None
    manifest: dict[str, Any] = json.loads(body)
    if manifest.get("signer", {}).get("public_key") != public_key.hex():
        raise ReportVerificationError("manifest names another signer")
    for name, digest in manifest["files"].items():
        if name not in SIGNED_FILES:
            raise ReportVerificationError("manifest lists an unexpected file")
        path = out / name
        if not path.is_file():
            raise ReportVerificationError(f"{name} missing")
        if _sha256(path) != digest:
            raise ReportVerificationError(f"{name} was modified")
    return manifest


def ledger_has_report(out: Path, broker_url: str, admin_token: str) -> dict[str, Any]:
    digest = manifest_digest(out)
    resp = httpx.get(
        broker_url.rstrip("/") + f"/kbs/v1/admin/audit/evidence/{digest}",
        headers={"authorization": f"Bearer {admin_token}"},
        timeout=30.0,
    )
    if resp.status_code != 200:
        raise ReportVerificationError("the broker's ledger has no record of this report")
    doc = resp.json()
    return {str(k): v for k, v in doc.items()} if isinstance(doc, dict) else {}
