"""`enclavia proxy` (local attesting OpenAI-compatible proxy) and `enclavia receipt verify`.

Exit codes of `receipt verify`: 0 valid; 1 invalid (with the error's stable code); 2 usage error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from enclavia.errors import EnclaviaError

receipt_app = typer.Typer(no_args_is_help=True, help="Response receipts signed by an attested enclave.")

EXIT_INVALID = 1
EXIT_USAGE = 2


def register(app: typer.Typer) -> None:
    app.command("proxy")(proxy)
    app.add_typer(receipt_app, name="receipt")


def proxy(
    *,
    upstream: Annotated[str, typer.Option(help="Host URL of the enclave (its /v1/attestation and gateway)")],
    policy: Annotated[Path, typer.Option(help="Policy the enclave's attestation must satisfy")],
    listen: Annotated[str, typer.Option(help="host:port to serve the OpenAI-compatible API on")] = (
        "127.0.0.1:8080"
    ),
    receipts_dir: Annotated[
        Path | None, typer.Option(help="Keep every verified receipt (and the attestation bundle) here")
    ] = None,
    reattest_after: Annotated[float, typer.Option(help="Re-attest when the evidence is older (s)")] = 300.0,
    token_file: Annotated[
        Path | None,
        typer.Option(help="Require 'Authorization: Bearer <token>' with the token in this file (not argv)"),
    ] = None,
    allow_origin: Annotated[
        list[str] | None, typer.Option(help="A browser origin allowed to call the proxy (repeatable)")
    ] = None,
) -> None:
    """Serve a plain OpenAI API on localhost; attest the enclave, then seal every request to it."""
    from enclavia.client.proxy import AttestingProxy, serve_proxy
    from enclavia.observability import logging as elog

    elog.configure("proxy")
    try:
        token = token_file.read_text(encoding="utf-8").strip() if token_file is not None else None
        if token == "":
            raise OSError("empty token file")
        p = AttestingProxy(
            upstream,
            policy,
            receipts_dir=receipts_dir,
            reattest_after_s=reattest_after,
            token=token,
            allowed_origins=frozenset(allow_origin or ()),
        )
    except (OSError, EnclaviaError):
        typer.echo("policy or token file unreadable or invalid", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    serve_proxy(p, listen)


def _signing_key(signing_key: str | None, bundle: Path | None) -> tuple[bytes, bytes | None]:
    """(Ed25519 public key, manifest digest or None) from --signing-key or a saved attestation bundle."""
    if (signing_key is None) == (bundle is None):
        typer.echo("give exactly one of --signing-key and --bundle", err=True)
        raise typer.Exit(EXIT_USAGE)
    if signing_key is not None:
        try:
            key = bytes.fromhex(signing_key.strip())
        except ValueError:
            key = b""
        if len(key) != 32:
            typer.echo("--signing-key must be 64 hex digits", err=True)
            raise typer.Exit(EXIT_USAGE)
        return key, None
    from enclavia.attestation.bundle import parse_bundle

    assert bundle is not None
    try:
        parsed = parse_bundle(bundle.read_bytes())
    except (OSError, EnclaviaError):
        typer.echo("--bundle must be a readable attestation bundle (JSON)", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    return parsed.signing_public_key, parsed.manifest.digest()


def _read(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError:
        typer.echo("cannot read an input file", err=True)
        raise typer.Exit(EXIT_USAGE) from None


@receipt_app.command("verify")
def receipt_verify(  # noqa: PLR0917 - typer maps every option to a parameter
    file: Path,
    signing_key: Annotated[
        str | None, typer.Option(help="Enclave signing public key (hex), from a verified attestation")
    ] = None,
    bundle: Annotated[
        Path | None, typer.Option(help="Saved attestation bundle: its signing key and manifest digest")
    ] = None,
    request: Annotated[Path | None, typer.Option(help="Also check: the exact request body sent")] = None,
    response: Annotated[
        Path | None, typer.Option(help="Also check: the exact response body received")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON")] = False,
) -> None:
    """Check one receipt offline: signature by the attested key, and optionally the request, the response
    and the measurement (with --bundle) it names."""
    from enclavia.attestation.receipt import decode_receipt, verify_receipt

    key, measurement = _signing_key(signing_key, bundle)
    raw = _read(file) or b""
    try:
        receipt = verify_receipt(
            decode_receipt(raw),
            key,
            request_content=_read(request),
            response_content=_read(response),
            measurement=measurement,
        )
    except EnclaviaError as err:
        if as_json:
            typer.echo(json.dumps({"valid": False, "reason": err.code}))
        else:
            typer.echo(f"INVALID: {err.code}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    if as_json:
        typer.echo(json.dumps({"valid": True, "receipt": receipt.to_json()}, indent=2))
        return
    typer.echo("VALID")
    for name in ("route", "status", "model", "model_sha256", "measurement", "policy_revision", "issued_at"):
        typer.echo(f"  {name + ':':<17} {getattr(receipt, name)}")
    typer.echo(f"  {'request_sha256:':<17} {receipt.request_sha256}")
    typer.echo(f"  {'response_sha256:':<17} {receipt.response_sha256}")
