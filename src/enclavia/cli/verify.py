"""`enclavia verify`: verify evidence offline, optionally appraise it under a policy.

Exit codes (enclavia.cli.exits): 0 verified (and allowed, with --policy); 1 rejected, with the error's stable
code; 2 usage error (bad hex, bad time, an input the platform does not take, invalid policy); 3 an input file
(evidence, certificate, collateral, aux, policy) missing or unreadable, named in the message.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from enclavia.cli.exits import EXIT_REJECTED, EXIT_USAGE, read_input, usage
from enclavia.errors import EnclaviaError, PolicyLoadError

__all__ = ["EXIT_REJECTED", "EXIT_USAGE", "evidence_bytes", "register", "verify"]
MAX_INPUT_BYTES = 8 << 20
_HEX_TEXT = re.compile(rb"^\s*(?:0[xX])?([0-9a-fA-F\s]+)\s*$")


class TeeChoice(StrEnum):
    NITRO = "nitro"
    SEV_SNP = "sev-snp"
    TDX = "tdx"
    NVIDIA = "nvidia"
    SIMULATED = "simulated"


def register(app: typer.Typer) -> None:
    app.command("verify")(verify)


def _usage(message: str) -> NoReturn:
    usage(message)


def _read(path: Path, what: str) -> bytes:
    return read_input(path, what, MAX_INPUT_BYTES)


def evidence_bytes(raw: bytes) -> bytes:
    """Binary evidence as is; hex text (optionally 0x-prefixed, whitespace allowed) decoded."""
    m = _HEX_TEXT.match(raw)
    if m is None:
        return raw
    digits = b"".join(m.group(1).split())
    if len(digits) % 2:
        return raw
    return bytes.fromhex(digits.decode("ascii"))


def _hex(value: str | None, what: str, length: int | None = None) -> bytes | None:
    if value is None:
        return None
    try:
        raw = bytes.fromhex(value.removeprefix("0x"))
    except ValueError:
        _usage(f"{what} is not hex")
    if length is not None and len(raw) != length:
        _usage(f"{what} must be {length} bytes")
    return raw


def _time(value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        _usage("--at must be an ISO-8601 time")
    if at.tzinfo is None:
        _usage("--at must carry a time zone (e.g. Z)")
    return at


def _reject(err: EnclaviaError, as_json: bool) -> NoReturn:
    if as_json:
        typer.echo(json.dumps({"verified": False, "reason": err.code, "detail": err.detail}))
    else:
        typer.echo(f"REJECTED: {err.code} ({err.detail})", err=True)
    raise typer.Exit(EXIT_REJECTED)


def verify(  # noqa: PLR0917 - typer maps every option to a parameter
    evidence: Annotated[Path, typer.Argument(help="Evidence file: binary, hex text, or NVIDIA JSON list")],
    tee: Annotated[TeeChoice, typer.Option("--tee", help="Platform that produced the evidence")],
    cert: Annotated[
        list[Path] | None,
        typer.Option("--cert", help="Certificate file (PEM or DER), repeatable, leaf first"),
    ] = None,
    collateral: Annotated[Path | None, typer.Option(help="TDX DCAP collateral (JSON)")] = None,
    aux: Annotated[Path | None, typer.Option(help="SEV-SNP extended-report certificate table")] = None,
    at: Annotated[str | None, typer.Option("--at", help="Verification time, ISO-8601 (default: now)")] = None,
    report_data: Annotated[
        str | None, typer.Option("--report-data", help="Expected report_data, 64 bytes hex")
    ] = None,
    policy: Annotated[Path | None, typer.Option(help="Policy file: appraise after verifying")] = None,
    nonce: Annotated[str | None, typer.Option(help="Expected nonce, hex (Nitro, NVIDIA)")] = None,
    sim_key: Annotated[
        list[str] | None, typer.Option("--sim-key", help="Trusted simulated platform key, hex (dev)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print claims (or the result) as JSON")] = False,
) -> None:
    """Verify attestation evidence offline. Exit 0 verified, 1 rejected (reason code), 2 usage error, 3 an
    input file missing."""
    from enclavia.attestation.binding import check_report_data
    from enclavia.attestation.claims import Tee
    from enclavia.attestation.verifier import verify_evidence_all
    from enclavia.policy.document import Policy, appraise, load_policy

    now = _time(at)
    expected_rd = _hex(report_data, "--report-data", 64)
    nonce_bytes = _hex(nonce, "--nonce")
    sim_keys = [k for k in (_hex(h, "--sim-key", 32) for h in sim_key or []) if k is not None]
    data = evidence_bytes(_read(evidence, "evidence"))
    certs = [_read(p, "certificate") for p in cert or []]
    col = _read(collateral, "collateral") if collateral is not None else None
    aux_bytes = _read(aux, "aux") if aux is not None else None
    pol: Policy | None = None
    if policy is not None:
        read_input(policy, "policy", MAX_INPUT_BYTES)  # missing: exit 3 naming it; invalid: usage below
        try:
            pol = load_policy(policy)
        except PolicyLoadError as err:
            _usage(f"policy: {err.code} ({err.detail})")
        sim_keys.extend(pol.simulated_platform_keys)
    try:
        claims_list = verify_evidence_all(
            Tee(tee.value),
            data,
            now=now,
            certificates=certs,
            collateral=col,
            aux=aux_bytes,
            nonce=nonce_bytes,
            trusted_simulated_keys=sim_keys,
        )
        out: list[dict[str, Any]] = []
        lines: list[str] = []
        for claims in claims_list:
            if pol is not None:
                result = appraise(claims, pol, now=now, expected_report_data=expected_rd)
                out.append(result.to_json())
                lines.append(
                    f"ALLOWED tee={claims.tee} measurement={claims.measurement.hex()} "
                    f"policy={pol.policy_id}@{pol.revision} entry={result.reference_name}"
                )
            else:
                if expected_rd is not None:
                    check_report_data(claims.report_data, expected_rd)
                out.append(claims.to_json())
                lines.append(f"VERIFIED tee={claims.tee} measurement={claims.measurement.hex()}")
    except EnclaviaError as err:
        _reject(err, as_json)
    except ValueError as err:  # an input this platform does not take, or a misuse the verifier refuses
        _usage(str(err))
    if as_json:
        typer.echo(json.dumps(out[0] if len(out) == 1 else out, indent=2, sort_keys=True))
    else:
        for line in lines:
            typer.echo(line)
