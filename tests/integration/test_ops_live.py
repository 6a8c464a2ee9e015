"""Operations on a live deployment: a real broker on SQLite and a real `enclavia serve` whose enclave fetches
a sealed model's key from it. Traces go from client through host and enclave, and from the host's key-broker
relay through the enclave to the broker, with one correlation id each and no content."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from enclavia.observability.trace import configure_tracing
from tests.ops_support import Deployment, features, read_spans, start_deployment

CANARY = "canary-7d0c5e1f9a2b4c6d8e0f1a2b3c4d5e6f"


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    d = start_deployment(Path(tmp_path_factory.mktemp("ops")))
    yield d
    d.stop()


def _client(d: Deployment) -> Any:
    from enclavia.client.sdk import Client
    from enclavia.policy.document import parse_policy

    return Client(d.host.url, parse_policy(d.policy_text))


def test_spans_link_client_host_enclave_and_broker_without_content(deployment: Deployment) -> None:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from enclavia.errors import EnclaviaError

    exporter = InMemorySpanExporter()
    configure_tracing("client", exporter)
    try:
        with _client(deployment) as client:
            out = client.predict("clinical-risk", features())
            assert out["class"] in {"benign", "malignant"}
            with pytest.raises(EnclaviaError):  # the canary as a model id and as a feature name
                client.predict(CANARY, {CANARY: 1.0})
            with pytest.raises(EnclaviaError):
                client.predict("clinical-risk", {CANARY: 1.0})
    finally:
        configure_tracing("client", None)  # back to off
    client_spans = [json.loads(s.to_json()) for s in exporter.get_finished_spans()]
    server_spans = read_spans(deployment.trace_dir)
    everything = json.dumps(client_spans) + json.dumps(server_spans)
    assert CANARY not in everything and "mean radius" not in everything

    requests = [s for s in client_spans if s["name"] == "enclavia.client.request"]
    assert len(requests) == 3
    for req in requests:
        trace_id = req["context"]["trace_id"][2:]
        assert req["attributes"]["enclavia.route"] == "predict"
        relay = [s for s in server_spans if s["trace_id"] == trace_id and s["name"] == "enclavia.host.relay"]
        gateway = [
            s for s in server_spans if s["trace_id"] == trace_id and s["name"] == "enclavia.enclave.gateway"
        ]
        assert relay and gateway, "host and enclave spans carry the client's trace id"
        assert gateway[-1]["parent_span_id"] == relay[-1]["span_id"]
        assert gateway[-1]["attributes"]["enclavia.route"] == "predict"
    statuses = sorted(
        s["attributes"].get("http.status_code")
        for s in server_spans
        if s["name"] == "enclavia.enclave.gateway"
    )
    assert 200 in statuses and 404 in statuses and 400 in statuses

    # Key release: host relay -> enclave (bundle bound to the broker's challenge) -> broker, one trace.
    # (Attempts before the policy was installed failed: their spans say why, by code.)
    kbs = [s for s in server_spans if s["name"] == "enclavia.host.kbs_release"]
    assert kbs[-1]["status"] == "UNSET"
    assert all(k["attributes"]["enclavia.outcome"] == "policy.measurement_not_allowed" for k in kbs[:-1])
    root = kbs[-1]
    same = [s for s in server_spans if s["trace_id"] == root["trace_id"]]
    names = {s["name"] for s in same}
    assert {
        "enclavia.broker.challenge",
        "enclavia.enclave.broker_attest",
        "enclavia.broker.attest",
        "enclavia.broker.release",
        "enclavia.enclave.install_secret",
    } <= names, names
    services = {s["service"] for s in same}
    assert services == {"enclavia-host", "enclavia-enclave", "enclavia-broker"}
    for s in same:
        if s is not root:
            assert s["parent_span_id"] == root["span_id"]
        assert set(s["attributes"]) <= {
            "enclavia.route", "enclavia.outcome", "enclavia.frame", "enclavia.stage", "http.status_code",
            "enclavia.bytes_in", "enclavia.bytes_out",
        }  # fmt: skip
    # The secret path never appears (only the fixed route name "release").
    assert "models/" not in json.dumps(same)


def _log_server(tmp_path: Path, digest_hex: str) -> tuple[Any, str, str, str]:
    """`enclavia log serve` with one signed release of the digest: (process, url, log key, release key)."""
    import os
    import subprocess
    import sys

    from tests.ops_support import Proc, wait_for
    from tests.release.helpers import Authority
    from tests.support import free_port

    key = tmp_path / "log.key"
    from enclavia.release.keys import write_keypair

    log_pub = write_keypair(key).hex()
    port = free_port()
    token = "t" * 40
    cmd = [sys.executable, "-m", "enclavia.cli.main", "log", "serve", "--key", str(key),
           "--db", f"sqlite:///{tmp_path / 'tlog.db'}", "--listen", f"127.0.0.1:{port}"]  # fmt: skip
    log_path = tmp_path / "tlog.log"
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            cmd, env={**os.environ, "ENCLAVIA_LOG_ADMIN_TOKEN": token}, stdout=out, stderr=out
        )
    server = Proc(f"http://127.0.0.1:{port}", proc, log_path)
    wait_for(server.url + "/healthz", server)
    authority = Authority()
    release = tmp_path / "release.json"
    release.write_bytes(authority.release(bytes.fromhex(digest_hex)).encode())
    appended = subprocess.run(
        [sys.executable, "-m", "enclavia.cli.main", "log", "append", "--url", server.url,
         "--release", str(release)],
        env={**os.environ, "ENCLAVIA_LOG_ADMIN_TOKEN": token}, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert appended.returncode == 0, appended.stderr
    return server, server.url, log_pub, authority.release_key.public_bytes.hex()


def _deployment_yaml(d: Deployment, path: Path, tlog: tuple[str, str, str] | None = None) -> Path:
    text = (
        "name: clinical-risk (test)\n"
        "tee: simulated\n"
        "classification: default\n"
        "clients: [EHR integration]\n"
        f"hosts:\n  - {{name: host-a, url: '{d.host.url}'}}\n"
        f"broker: {{url: '{d.broker.url}', replicas: 1, store: sqlite}}\n"
    )
    if tlog is not None:
        url, key, release_key = tlog
        text += f"transparency_log: {{url: '{url}', public_key: '{key}', release_keys: ['{release_key}']}}\n"
    path.write_text(text)
    return path


def test_auditor_report_renders_signs_and_lands_in_the_ledger(
    deployment: Deployment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil
    import subprocess

    import httpx
    from typer.testing import CliRunner

    from enclavia.cli.main import app
    from tests.ops_support import ADMIN_TOKEN

    runner = CliRunner()
    monkeypatch.setenv("ENCLAVIA_BROKER_ADMIN_TOKEN", ADMIN_TOKEN)
    d = deployment
    # A denial to report: a release without a token.
    assert httpx.get(d.broker.url + "/kbs/v1/secrets/models/clinical-risk", timeout=10).status_code == 401
    key = tmp_path / "report.key"
    assert runner.invoke(app, ["evidence", "keygen", "--out", str(key)]).exit_code == 0
    out = tmp_path / "report"
    from tests.ops_support import served_measurement

    tlog, url, log_key, release_key = _log_server(tmp_path, served_measurement(d.host.url))
    d.extra.append(tlog)
    dep = _deployment_yaml(d, tmp_path / "dep.yaml", (url, log_key, release_key))
    result = runner.invoke(
        app,
        ["evidence", "report", "--out", str(out), "--deployment", str(dep), "--signing-key", str(key),
         "--db", d.db_url],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (
        "enclaves verified, ledger verified" in result.output
        and "appended to the audit ledger" in result.output
    )
    html = (out / "report.html").read_text()
    evidence = json.loads((out / "evidence.json").read_text())
    host = evidence["hosts"][0]
    assert host["attested"] and host["measurement"][:24] in html
    assert host["transparency_log"] == {"included": True, "release": "1.0.0", "index": 0, "tree_size": 1}
    assert evidence["status"]["tlog_ok"] is True and "all included" in html
    assert evidence["ledger_independent"]["ok"] and evidence["broker"]["ledger"]["verification"]["ok"]
    assert "<svg" in html and "Data flow: clinical-risk (test)" in html
    needles = (
        "164.312(a)(2)(iv)", "164.312(b)", "164.312(e)", "PCI DSS 4.0", "Req. 3", "Req. 10", "CC6", "CC7",
        "Not protected", "Side channels", "broker.token_invalid", "Policy history", "Simulated TEE",
    )  # fmt: skip
    for needle in needles:
        assert needle in html, needle
    assert CANARY not in html

    pub = (key.with_name("report.key.pub")).read_text().strip()
    ok = runner.invoke(app, ["evidence", "verify", str(out), "--public-key", pub, "--broker", d.broker.url])
    assert ok.exit_code == 0 and "in the audit ledger at seq" in ok.output, ok.output
    receipt = json.loads((out / "ledger-receipt.json").read_text())
    assert receipt["seq"] > evidence["broker"]["ledger"]["height"]
    # The ledger, with the report's record in it, still verifies.
    audit = runner.invoke(app, ["audit", "verify", "--db", d.db_url])
    assert audit.exit_code == 0, audit.output

    # Tampering: any byte of a signed file, or the manifest, or another signer's key.
    original = (out / "report.html").read_bytes()
    (out / "report.html").write_bytes(original.replace(b"verified", b"verifieD", 1))
    bad = runner.invoke(app, ["evidence", "verify", str(out), "--public-key", pub])
    assert bad.exit_code == 1 and "report.html was modified" in bad.output
    (out / "report.html").write_bytes(original)
    manifest = (out / "MANIFEST.json").read_bytes()
    (out / "MANIFEST.json").write_bytes(manifest.replace(b'"deployment"', b'"deploymenT"'))
    bad = runner.invoke(app, ["evidence", "verify", str(out), "--public-key", pub])
    assert bad.exit_code == 1 and "signature does not verify" in bad.output
    (out / "MANIFEST.json").write_bytes(manifest)
    bad = runner.invoke(app, ["evidence", "verify", str(out), "--public-key", "11" * 32])
    assert bad.exit_code == 1

    # The PDF renders (first page to PNG, kept beside the report for a look).
    pdftoppm = shutil.which("pdftoppm")
    assert pdftoppm, "pdftoppm missing: install Debian's poppler-utils (.ci/run does)"
    assert (out / "report.pdf").read_bytes().startswith(b"%PDF")
    subprocess.run(
        [pdftoppm, "-png", "-r", "60", str(out / "report.pdf"), str(tmp_path / "page")], check=True
    )
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) >= 3 and pages[0].stat().st_size > 10_000


CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=15000",
)


def test_operator_console_renders_live_state_in_chromium(deployment: Deployment, tmp_path: Path) -> None:
    import shutil
    import subprocess

    import httpx

    from tests.ops_support import ADMIN_TOKEN

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "chromium missing: install Debian's chromium package (.ci/run does)"
    d = deployment
    # A denial the console must show; the page is read-only and carries no data itself.
    assert httpx.get(d.broker.url + "/kbs/v1/secrets/models/x", timeout=10).status_code == 401
    page = httpx.get(d.broker.url + "/kbs/v1/admin/console", timeout=10)
    assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
    assert d.host.url not in page.text and "token" not in page.headers.get("set-cookie", "")
    assert httpx.get(d.broker.url + "/kbs/v1/admin/console/dataflow.svg", timeout=10).status_code == 401
    assert httpx.post(d.broker.url + "/kbs/v1/admin/console", timeout=10).status_code >= 400  # GET only

    url = f"{d.broker.url}/kbs/v1/admin/console#token={ADMIN_TOKEN}"
    base = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,2000"]
    dom = subprocess.run(
        [*base, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    shot = tmp_path / "console.png"
    subprocess.run([*base, f"--screenshot={shot}", url], capture_output=True, timeout=120, check=True)
    assert 'data-state="ready"' in dom, dom[-2000:]
    measurement = d.policy_text.split("measurement: '")[1][:24]
    for needle in (measurement, "local-build", "enclavia-dev", "broker.token_invalid", "verified",
                   "AttestationFailing", "data:image/svg+xml"):  # fmt: skip
        assert needle in dom, needle
    assert ADMIN_TOKEN not in dom
    assert shot.stat().st_size > 20_000
