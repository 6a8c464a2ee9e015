"""Compliance evidence: `enclavia evidence report|verify|keygen|diagram`.

The admin token comes from ``ENCLAVIA_BROKER_ADMIN_TOKEN`` or ``--admin-token-file`` (never the command line).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from enclavia.cli.broker import ENV_URL, BrokerUrl, TokenFile, _admin_token
from enclavia.cli.exits import read_input, unreachable, usage
from enclavia.errors import EnclaviaError

evidence_app = typer.Typer(no_args_is_help=True, help="Auditor's report and data-flow diagram.")

EXIT_FAILED = 1
EXIT_USAGE = 2


def register(app: typer.Typer) -> None:
    app.add_typer(evidence_app, name="evidence")


def _fail(message: str, code: int = EXIT_FAILED) -> None:
    typer.echo(message, err=True)
    raise typer.Exit(code)


@evidence_app.command("keygen")
def keygen(
    out: Annotated[Path, typer.Option(help="Private key file (PKCS#8 PEM, 0600); OUT.pub gets the hex key")],
    force: bool = False,
) -> None:
    """Make the Ed25519 key that signs auditor's reports."""
    from enclavia.release.keys import write_keypair

    try:
        pub = write_keypair(out, force=force)
    except FileExistsError:
        _fail(f"{out} exists (use --force)", EXIT_USAGE)
        return
    typer.echo(f"report signing key: {out}; public key {pub.hex()}")


@evidence_app.command("diagram")
def diagram(
    deployment: Annotated[Path, typer.Option(help="Deployment config (YAML)")],
    out: Annotated[Path, typer.Option(help="SVG file to write")] = Path("dataflow.svg"),
) -> None:
    """Draw the data-flow diagram (SVG) from the deployment config and its classification manifest."""
    from enclavia.evidence.dataflow import deployment_svg

    _deployment(deployment)  # missing: exit 3 naming it; invalid: exit 2
    out.write_text(deployment_svg(deployment), encoding="utf-8")
    typer.echo(f"wrote {out}")


def _deployment(path: Path) -> Any:
    """The deployment config: missing exits 3 naming it (deploy/deployment.example.yaml is the template)."""
    from enclavia.evidence.dataflow import parse_deployment

    text = read_input(path, "--deployment").decode("utf-8", "replace")
    try:
        return parse_deployment(text, path.parent)
    except (ValueError, TypeError, AttributeError) as err:
        usage(f"--deployment {path}: {err}")


def _signing_key(path: Path) -> Any:
    from enclavia.release.keys import load_signing_key

    if not path.exists():
        read_input(path, "--signing-key (create it with `enclavia evidence keygen`)")
    try:
        return load_signing_key(path)
    except (OSError, ValueError):
        usage(f"--signing-key {path} is not an Ed25519 private key (from `enclavia evidence keygen`)")


@evidence_app.command("report")
def report(  # noqa: PLR0917 - typer maps every option to a parameter
    out: Annotated[Path, typer.Option(help="Output directory")],
    deployment: Annotated[Path, typer.Option(help="Deployment config (YAML)")],
    signing_key: Annotated[Path, typer.Option(help="Ed25519 report signing key (enclavia evidence keygen)")],
    broker: BrokerUrl = None,
    admin_token_file: TokenFile = None,
    policy: Annotated[
        Path | None, typer.Option(help="Client policy to attest the hosts with (default: the broker's)")
    ] = None,
    db: Annotated[
        str | None, typer.Option("--db", help="Broker database: verify the ledger independently too")
    ] = None,
    broker_public_key: Annotated[
        str | None, typer.Option(help="Pin the broker's Ed25519 key (hex or file) for that verification")
    ] = None,
    pdf: Annotated[bool, typer.Option(help="Also write report.pdf")] = True,
    append: Annotated[
        bool, typer.Option(help="Append the report's digest to the broker's audit ledger")
    ] = True,
) -> None:
    """Collect evidence from the live deployment, write the signed report, append its digest to the ledger."""
    import os

    import httpx

    from enclavia.evidence.report import Sources, append_to_ledger, collect, manifest_digest, write_report
    from enclavia.release.keys import load_public_key

    dep = _deployment(deployment)
    key = _signing_key(signing_key)
    broker_url = broker or os.environ.get(ENV_URL) or dep.broker_url
    token = _admin_token(admin_token_file, required=broker_url is not None)
    try:
        pinned = load_public_key(broker_public_key) if broker_public_key else None
    except (OSError, ValueError):
        usage("--broker-public-key: give 64 hex digits or a file that holds them")
    sources = Sources(
        deployment=dep,
        broker_url=broker_url,
        admin_token=token,
        policy_text=read_input(policy, "--policy").decode("utf-8", "replace") if policy else None,
        db_url=db,
        broker_public_key=pinned,
    )
    try:
        evidence = collect(sources)
    except httpx.HTTPError:
        unreachable(broker_url or "(no broker URL)", "broker")
    except EnclaviaError as err:
        _fail(f"FAILED: {err.code} {err.detail or ''}".strip())
        return
    write_report(evidence, dep, out, key, pdf=pdf)
    status = evidence["status"]
    typer.echo(
        f"wrote {out}/report.html{' and report.pdf' if pdf else ''}; enclaves "
        f"{'verified' if status['enclaves_ok'] else 'NOT ALL VERIFIED'}, ledger "
        f"{'verified' if status['ledger_ok'] else 'FAILED'}; manifest sha256 {manifest_digest(out)}"
    )
    if append and broker_url and token:
        try:
            receipt = append_to_ledger(out, broker_url, token)
        except httpx.HTTPError:
            unreachable(broker_url, "broker")
        except EnclaviaError as err:
            _fail(f"FAILED to append to the ledger: {err.detail or err.code}")
            return
        typer.echo(f"appended to the audit ledger at seq {receipt['seq']}")


@evidence_app.command("verify")
def verify(
    directory: Path,
    public_key: Annotated[str, typer.Option(help="Report signer's Ed25519 public key (hex or file)")],
    broker: BrokerUrl = None,
    admin_token_file: TokenFile = None,
) -> None:
    """Check the report's signature and files; with --broker, also that the ledger holds its digest."""
    import httpx

    from enclavia.evidence.report import ReportVerificationError, ledger_has_report, verify_report
    from enclavia.release.keys import load_public_key

    try:
        key = load_public_key(public_key)
    except (OSError, ValueError):
        usage("--public-key: give 64 hex digits or a file that holds them")
    try:
        manifest = verify_report(directory, key)
        line = f"OK signed by {manifest['signer']['kid']}, {len(manifest['files'])} file(s) intact"
        if broker:
            token = _admin_token(admin_token_file) or ""
            found = ledger_has_report(directory, broker, token)
            line += f"; in the audit ledger at seq {found['seq']}"
    except httpx.HTTPError:
        unreachable(broker or "", "broker")
    except ReportVerificationError as err:
        _fail(f"FAILED: {err.detail}")
        return
    typer.echo(line)
    typer.echo(json.dumps({"generated_at": manifest["generated_at"], "deployment": manifest["deployment"]}))
