"""`enclavia release ...` and `enclavia log ...`: the release authority's commands (thin wrappers).

Exit codes (enclavia.cli.exits): 0 done / verified; 1 refused (the error's stable code and its fixed detail);
2 usage error (names the argument); 3 an input file missing or unreadable, or the log / broker unreachable
(names the path or URL).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from enclavia.cli import paths
from enclavia.cli.exits import EXIT_REJECTED, EXIT_USAGE, read_input, unavailable, unreachable, usage
from enclavia.errors import EnclaviaError, TransportError

__all__ = ["EXIT_REJECTED", "EXIT_USAGE", "register"]

release_app = typer.Typer(no_args_is_help=True, help="Build, measure, sign and roll out enclave releases.")
log_app = typer.Typer(no_args_is_help=True, help="Transparency log of releases (RFC 9162).")
ADMIN_TOKEN_ENV = "ENCLAVIA_LOG_ADMIN_TOKEN"  # noqa: S105 - the name of a variable


rollout_app = typer.Typer(no_args_is_help=True, help="Staged rollout as broker policy revisions.")
release_app.add_typer(rollout_app, name="rollout")
BROKER_URL_ENV = "ENCLAVIA_BROKER_URL"
BROKER_TOKEN_ENV = "ENCLAVIA_BROKER_ADMIN_TOKEN"  # noqa: S105 - the name of a variable


def register(app: typer.Typer) -> None:
    app.add_typer(release_app, name="release")
    app.add_typer(log_app, name="log")


def _usage(message: str) -> NoReturn:
    usage(message)


def _refused(err: EnclaviaError, url: str | None = None, what: str = "broker") -> NoReturn:
    """The stable code and the error's detail (a fixed phrase chosen by the raiser, never input content)."""
    if isinstance(err, TransportError) and url is not None:
        unreachable(url, what)
    typer.echo(f"REFUSED: {err.code} ({err.detail})", err=True)
    raise typer.Exit(EXIT_REJECTED)


def _signing_key(path: Path, option: str) -> Any:
    """A private key file named by `option`: missing exits 3 naming it and how to make one, invalid 2."""
    from enclavia.release.keys import load_signing_key

    if not path.exists():
        unavailable(f"no {option} file {path}: create it with `enclavia release keygen --out {path}`")
    try:
        return load_signing_key(path)
    except (OSError, ValueError):
        _usage(f"{option} {path} is not an Ed25519 private key (PEM from `enclavia release keygen`)")


def _write_json(doc: Any, out: Path | None) -> None:
    text = json.dumps(doc, indent=2, sort_keys=True) + "\n"
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")


# -- build and measure ---------------------------------------------------------------------------


@release_app.command("build")
def release_build(
    out: Annotated[Path | None, typer.Option(help="Write the build document here")] = None,
    source: Annotated[
        Path | None, typer.Option(help="The enclavia package directory to measure (default: installed)")
    ] = None,
    model_dir: Annotated[Path | None, typer.Option(help="Model directory the enclave will load")] = None,
    tee: Annotated[str, typer.Option(help="TEE the image is configured for")] = "simulated",
    tcb: Annotated[bool, typer.Option("--tcb", help="Print the trusted computing base report")] = False,
) -> None:
    """Compute the enclave image manifest and its digest (reproducible: contents only, sorted paths)."""
    import enclavia
    from enclavia.enclave.boot import EnclaveConfig, load_models, manifest_for
    from enclavia.release.build import Build, tcb_report

    root = (source or Path(enclavia.__file__).parent).resolve()
    if not (root / "__init__.py").is_file():
        _usage("--source must be an enclavia package directory")
    models_path = model_dir or paths.default_model_dir()
    try:
        models = load_models(models_path)
    except (OSError, ValueError) as err:
        _usage(f"cannot load models from {models_path}: {type(err).__name__}")
    except EnclaviaError as err:
        _refused(err)
    config = EnclaveConfig(model_dir=models_path, sim_dir=paths.sim_dir(), tee=tee)
    manifest = manifest_for(config, models, root)
    build = Build(manifest=manifest)
    if out is not None:
        _write_json(build.to_json(), out)
    if tcb:
        _write_json(tcb_report(manifest, root), None)
    else:
        runtime = manifest.config.get("runtime", {})
        typer.echo(f"enclavia files:  {len(manifest.files)} (import closure of the enclave entry point)")
        typer.echo(
            f"third-party:     {len(manifest.dependencies)} distributions,"
            f" {len(runtime.get('records', {}))} RECORD digests"
        )
        typer.echo(f"interpreter:     {runtime.get('implementation')} {runtime.get('python')}")
        typer.echo(f"manifest digest: {build.manifest_digest.hex()}")


@release_app.command("measure")
def release_measure(
    build_file: Annotated[Path, typer.Option("--build", help="Build document from `release build`")],
    tee: Annotated[str, typer.Option(help="simulated, sev-snp, nitro or tdx")],
    out: Annotated[
        Path | None, typer.Option(help="Where to write (default: update --build in place)")
    ] = None,
    ovmf: Annotated[Path | None, typer.Option(help="SEV-SNP: OVMF firmware")] = None,
    kernel: Annotated[Path | None, typer.Option(help="SEV-SNP: kernel")] = None,
    initrd: Annotated[Path | None, typer.Option(help="SEV-SNP: initrd")] = None,
    append: Annotated[str | None, typer.Option(help="SEV-SNP: kernel command line")] = None,
    vcpus: Annotated[int, typer.Option(help="SEV-SNP: vCPU count")] = 1,
    vcpu_type: Annotated[str | None, typer.Option(help="SEV-SNP: vCPU type, e.g. EPYC-Milan")] = None,
    vcpu_sig: Annotated[str | None, typer.Option(help="SEV-SNP: vCPU signature (int, 0x...)")] = None,
    guest_features: Annotated[str, typer.Option(help="SEV-SNP: guest features")] = "0x1",
    vmm_type: Annotated[str, typer.Option(help="SEV-SNP: QEMU, ec2 or gce")] = "QEMU",
    eif_json: Annotated[Path | None, typer.Option(help="Nitro: `nitro-cli describe-eif` output")] = None,
    mrtd: Annotated[str | None, typer.Option(help="TDX: MRTD hex")] = None,
    rtmr: Annotated[list[str] | None, typer.Option(help="TDX: RTMRi=hex (repeatable)")] = None,
) -> None:
    """Record the platform measurement of a build beside its manifest digest."""
    from enclavia.attestation.claims import Tee
    from enclavia.release import measure
    from enclavia.release.build import load_build

    read_input(build_file, "--build")
    for option, given in (
        ("--ovmf", ovmf),
        ("--kernel", kernel),
        ("--initrd", initrd),
        ("--eif-json", eif_json),
    ):
        if given is not None:
            read_input(given, option)  # a missing image file exits 3 naming it, not record_invalid
    try:
        tee_kind = Tee(tee)
        build = load_build(build_file)
        if tee_kind is Tee.SIMULATED:
            values, inputs = measure.measure_simulated(build.manifest_digest)
        elif tee_kind is Tee.SEV_SNP:
            if ovmf is None:
                _usage("--ovmf is required for sev-snp")
            values, inputs = measure.measure_sev_snp(
                ovmf=ovmf,
                vcpus=vcpus,
                vcpu_type=vcpu_type,
                vcpu_sig=int(vcpu_sig, 0) if vcpu_sig else None,
                kernel=kernel,
                initrd=initrd,
                append=append,
                guest_features=int(guest_features, 0),
                vmm_type=vmm_type,
            )
        elif tee_kind is Tee.NITRO:
            if eif_json is None:
                _usage("--eif-json is required for nitro")
            values, inputs = measure.measure_nitro(eif_json.read_bytes())
        elif tee_kind is Tee.TDX:
            if mrtd is None:
                _usage("--mrtd is required for tdx")
            regs = {"mrtd": mrtd}
            for item in rtmr or []:
                name, _, value = item.partition("=")
                regs[name.strip().lower()] = value.strip()
            values, inputs = _tdx_registers(measure, regs)
        else:
            _usage("no release measurement for this TEE")
    except EnclaviaError as err:
        _refused(err)
    except (ValueError, OSError) as err:
        _usage(str(err) if isinstance(err, ValueError) else f"cannot read an input: {type(err).__name__}")
    updated = build.with_measurement(tee_kind, values, inputs)
    _write_json(updated.to_json(), out or build_file)
    typer.echo(f"{tee_kind}: {json.dumps(values, sort_keys=True)}", err=True)


def _tdx_registers(measure: Any, regs: dict[str, str]) -> Any:
    """measure_tdx, with a bad register reported as the option that gave it (--mrtd, --rtmr rtmr1=...)."""
    for name, value in regs.items():
        try:
            raw = bytes.fromhex(value.removeprefix("0x"))
        except ValueError:
            _usage(f"{_tdx_option(name)} is not hex")
        if len(raw) != measure.MEASUREMENT_LEN:
            n = measure.MEASUREMENT_LEN
            _usage(f"{_tdx_option(name)} must be {n} bytes ({2 * n} hex digits), got {len(raw)}")
    return measure.measure_tdx({k: v.removeprefix("0x") for k, v in regs.items()})


def _tdx_option(name: str) -> str:
    return "--mrtd" if name == "mrtd" else f"--rtmr {name}"


# -- keys, signing, approvals --------------------------------------------------------------------


def _public_keys(values: list[str] | None, what: str) -> list[bytes]:
    from enclavia.release.keys import load_public_key

    try:
        return [load_public_key(v) for v in values or []]
    except (OSError, ValueError):
        _usage(f"{what}: give 64 hex digits or a file that holds them")


def _load_release(path: Path) -> Any:
    from enclavia.attestation.release import parse_signed_release

    data = read_input(path, "--release")
    try:
        return parse_signed_release(data)
    except EnclaviaError as err:
        _refused(err)


def _load_approvers(path: Path | None) -> Any:
    import yaml

    from enclavia.attestation.release import ApproverSet

    if path is None:
        return None
    raw = read_input(path, "--approvers")
    try:
        return ApproverSet.from_mapping(yaml.safe_load(raw.decode("utf-8")) or {})
    except (UnicodeDecodeError, ValueError, AttributeError, yaml.YAMLError):
        _usage(f"--approvers {path}: expected {{threshold: k, approvers: {{name: public key hex}}}}")


@release_app.command("keygen")
def release_keygen(
    out: Annotated[Path, typer.Option(help="Private key file (PEM, 0600); the public key goes to OUT.pub")],
    force: Annotated[bool, typer.Option(help="Replace an existing key")] = False,
) -> None:
    """Make an Ed25519 key pair for the release key, an approver, or the log."""
    from enclavia.release.keys import public_path, write_keypair

    try:
        pub = write_keypair(out, force=force)
    except FileExistsError:
        _usage(f"{out} exists (use --force to replace it)")
    typer.echo(f"private key: {out}")
    typer.echo(f"public key:  {public_path(out)} {pub.hex()}")


@release_app.command("sign")
def release_sign(
    build_file: Annotated[Path, typer.Option("--build", help="Measured build document")],
    version: Annotated[str, typer.Option(help="Release version, e.g. 1.4.0")],
    commit: Annotated[str, typer.Option(help="Full source commit id")],
    key: Annotated[Path, typer.Option(help="Release private key")],
    out: Annotated[Path, typer.Option(help="Signed release file to write")],
    notes: Annotated[str, typer.Option(help="Short note (no secrets)")] = "",
    time: Annotated[str | None, typer.Option(help="Release time, UTC ISO 8601 (default: now)")] = None,
) -> None:
    """Sign a release record (version, commit, manifest digest, measurements, time) with the release key."""
    from datetime import UTC, datetime

    from enclavia.attestation.release import ReleaseRecord, sign_record
    from enclavia.release.build import load_build

    try:
        when = datetime.fromisoformat(time.replace("Z", "+00:00")) if time else datetime.now(UTC)
    except ValueError:
        _usage("--time must be an ISO 8601 time")
    if when.tzinfo is None:
        _usage("--time needs a UTC offset")
    signing_key = _signing_key(key, "--key")
    read_input(build_file, "--build")
    try:
        build = load_build(build_file)
        if not build.measurements:
            _usage("the build has no platform measurement: run `enclavia release measure` first")
        record = ReleaseRecord(
            version=version,
            source_commit=commit.lower(),
            manifest_digest=build.manifest_digest,
            measurements=build.measurements,
            created_at=when,
            notes=notes,
        )
    except EnclaviaError as err:
        _refused(err)
    signed = sign_record(record, signing_key)
    _write_json(signed.to_json(), out)
    typer.echo(f"signed {version}: manifest {build.manifest_digest.hex()[:16]}... -> {out}", err=True)


@release_app.command("approve")
def release_approve(
    release: Annotated[Path, typer.Option(help="Signed release file (updated in place)")],
    name: Annotated[str, typer.Option(help="Approver name, as listed in the approvers file")],
    key: Annotated[Path, typer.Option(help="Approver private key")],
) -> None:
    """Add a named approver's signature to a signed release."""
    from enclavia.attestation.release import approve

    signed = _load_release(release)
    signing_key = _signing_key(key, "--key")
    try:
        updated = approve(signed, name, signing_key)
    except ValueError as err:
        _usage(str(err))
    _write_json(updated.to_json(), release)
    typer.echo(f"approved by {name}: {', '.join(updated.approvers)}", err=True)


@release_app.command("verify")
def release_verify(
    release: Annotated[Path, typer.Option(help="Signed release file")],
    release_key: Annotated[list[str], typer.Option(help="Trusted release public key (hex or file)")],
    approvers: Annotated[Path | None, typer.Option(help="Approvers file: threshold and keys")] = None,
    build_file: Annotated[Path | None, typer.Option("--build", help="Check against this build")] = None,
) -> None:
    """Verify the release signature, k-of-n approvals and (optionally) that it is this build."""
    from enclavia.attestation.manifest import canonical_json
    from enclavia.attestation.release import verify_release
    from enclavia.errors import ReleaseRecordInvalidError
    from enclavia.release.build import load_build

    signed = _load_release(release)
    keys = _public_keys(release_key, "--release-key")
    approver_set = _load_approvers(approvers)
    try:
        names = verify_release(signed, release_keys=keys, approvers=approver_set)
        if build_file is not None:
            build = load_build(build_file)
            if build.manifest_digest != signed.record.manifest_digest or canonical_json(
                build.to_json()["measurements"]
            ) != canonical_json(signed.record.to_json()["measurements"]):
                raise ReleaseRecordInvalidError("release record is not for this build")
    except EnclaviaError as err:
        _refused(err)
    typer.echo(
        f"VERIFIED {signed.record.version} manifest {signed.record.manifest_digest.hex()}"
        + (f" approved by {', '.join(names)}" if names else "")
    )


# -- transparency log ----------------------------------------------------------------------------


@log_app.command("serve")
def log_serve(
    key: Annotated[Path, typer.Option(help="Log signing key (from `enclavia release keygen`)")],
    db: Annotated[str, typer.Option(help="SQLAlchemy URL (sqlite:///... or postgresql+psycopg://...)")] = "",
    prefix: Annotated[str, typer.Option(help="Table name prefix")] = "",
    listen: Annotated[str, typer.Option(help="host:port")] = "127.0.0.1:8400",
    release_key: Annotated[
        list[str] | None, typer.Option(help="Accept only releases signed by this key")
    ] = None,
    approvers: Annotated[Path | None, typer.Option(help="Also require k-of-n approvals at append")] = None,
) -> None:
    """Serve the log. The append token is read from ENCLAVIA_LOG_ADMIN_TOKEN (appends are off without it)."""
    import os

    import uvicorn

    from enclavia.release.tlog import TransparencyLog
    from enclavia.release.tlog_server import create_log_app

    if not db:
        paths.state_dir().mkdir(parents=True, exist_ok=True)  # the default SQLite file lives there
    url = db or f"sqlite:///{(paths.state_dir() / 'tlog.db').resolve()}"
    signing_key = _signing_key(key, "--key (log key)")
    try:
        log = TransparencyLog(
            url,
            signing_key,
            prefix=prefix,
            release_keys=_public_keys(release_key, "--release-key"),
            approvers=_load_approvers(approvers),
        )
    except EnclaviaError as err:
        _refused(err)
    token = os.environ.get(ADMIN_TOKEN_ENV) or None
    host, _, port = listen.rpartition(":")
    typer.echo(
        f"log {signing_key.public_bytes.hex()} on http://{listen} (appends {'on' if token else 'off'})"
    )
    uvicorn.run(
        create_log_app(log, token),
        host=host or "127.0.0.1",
        port=int(port),
        log_level="warning",
        access_log=False,
    )


@log_app.command("append")
def log_append(
    url: Annotated[str, typer.Option(help="Log URL")],
    release: Annotated[Path, typer.Option(help="Signed release file")],
) -> None:
    """Append a signed release to the log (token from ENCLAVIA_LOG_ADMIN_TOKEN); prints index and head."""
    import os

    import httpx

    signed = _load_release(release)
    token = os.environ.get(ADMIN_TOKEN_ENV, "")
    try:
        resp = httpx.post(
            url.rstrip("/") + "/tlog/v1/entries",
            content=signed.encode(),
            headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
            timeout=30,
        )
    except httpx.HTTPError:
        unreachable(url, "transparency log")
    if resp.status_code not in (200, 201):
        try:
            code = str(resp.json().get("code", "tlog.error"))
        except ValueError:
            code = "tlog.error"
        typer.echo(f"REFUSED: {code}", err=True)
        raise typer.Exit(EXIT_REJECTED)
    _write_json(resp.json(), None)


@log_app.command("check")
def log_check(
    url: Annotated[str, typer.Option(help="Log URL")],
    log_key: Annotated[str, typer.Option(help="Log public key (hex or file)")],
    manifest_digest: Annotated[str, typer.Option(help="Manifest digest to look for (hex)")],
    state: Annotated[Path | None, typer.Option(help="Tree head state file (kept between runs)")] = None,
    release_key: Annotated[list[str] | None, typer.Option(help="Trusted release key")] = None,
    approvers: Annotated[Path | None, typer.Option(help="Approvers file")] = None,
) -> None:
    """Check that a manifest digest is published in the log, consistently with the last head seen."""
    from enclavia.attestation.tlog import check_release_included
    from enclavia.client.tlog import FileTreeHeadStore, HttpLogReader

    (pub,) = _public_keys([log_key], "--log-key")
    try:
        digest = bytes.fromhex(manifest_digest)
    except ValueError:
        _usage("--manifest-digest must be hex")
    reader = HttpLogReader(url)
    try:
        result = check_release_included(
            reader,
            log_public_key=pub,
            store=FileTreeHeadStore(state or paths.state_dir() / "tlog-state.json"),
            manifest_digest=digest,
            release_keys=_public_keys(release_key, "--release-key"),
            approvers=_load_approvers(approvers),
        )
    except EnclaviaError as err:
        _refused(err, url, "transparency log")
    finally:
        reader.close()
    typer.echo(
        f"INCLUDED {result.release.record.version} at index {result.index} of {result.tree_head.tree_size}"
    )


# -- staged rollout ------------------------------------------------------------------------------

StateFile = Annotated[Path | None, typer.Option("--state", help="Rollout state file")]
BrokerOpt = Annotated[str | None, typer.Option("--broker", help=f"Broker URL (or {BROKER_URL_ENV})")]
TokenFileOpt = Annotated[Path | None, typer.Option(help=f"Admin token file (or {BROKER_TOKEN_ENV})")]


def _rollout(broker: str | None, token_file: Path | None) -> Any:
    import os

    from enclavia.observability import logging as elog
    from enclavia.release.rollout import HttpBrokerAdmin, Rollout

    url = broker or os.environ.get(BROKER_URL_ENV)
    if not url:
        _usage(f"--broker or {BROKER_URL_ENV} is required")
    try:
        token = (
            token_file.read_text(encoding="utf-8").strip() if token_file else os.environ.get(BROKER_TOKEN_ENV)
        )
    except OSError:
        _usage("cannot read the admin token file")
    if not token:
        _usage(f"--admin-token-file or {BROKER_TOKEN_ENV} is required")
    elog.configure("release")
    return Rollout(HttpBrokerAdmin(url, token))


def _state_path(state: Path | None) -> Path:
    return state or paths.state_dir() / "rollout.json"


def _run_step(step: str, state: Path | None, broker: str | None, token_file: Path | None) -> None:
    from enclavia.release.rollout import RolloutState

    path = _state_path(state)
    rollout = _rollout(broker, token_file)
    try:
        current = RolloutState.load(path)
        updated = getattr(rollout, step)(current)
    except EnclaviaError as err:
        _refused(err, rollout.admin.url)
    updated.save(path)
    typer.echo(f"{step}: {updated.new} phase {updated.phase}, policy revision {updated.steps[-1].revision}")


@rollout_app.command("start")
def rollout_start(
    release: Annotated[Path, typer.Option(help="Signed release file")],
    release_key: Annotated[list[str], typer.Option(help="Trusted release public key (hex or file)")],
    tee: Annotated[str, typer.Option(help="TEE whose reference values change")] = "simulated",
    deadline: Annotated[str | None, typer.Option(help="End of the overlap, UTC ISO 8601")] = None,
    overlap_hours: Annotated[float, typer.Option(help="Overlap length when no --deadline")] = 72.0,
    old: Annotated[str | None, typer.Option(help="Reference name to replace (default: the primary)")] = None,
    approvers: Annotated[Path | None, typer.Option(help="Require k-of-n approvals (approvers file)")] = None,
    tlog: Annotated[str | None, typer.Option(help="Require the release to be in this log")] = None,
    tlog_key: Annotated[str | None, typer.Option(help="Log public key (hex or file)")] = None,
    state: StateFile = None,
    broker: BrokerOpt = None,
    admin_token_file: TokenFileOpt = None,
) -> None:
    """Allow the new release beside the old one until the deadline (one policy revision)."""
    from datetime import UTC, datetime, timedelta

    from enclavia.attestation.claims import Tee
    from enclavia.attestation.release import verify_release
    from enclavia.attestation.tlog import MemoryTreeHeadStore, check_release_included
    from enclavia.client.tlog import HttpLogReader

    signed = _load_release(release)
    keys = _public_keys(release_key, "--release-key")
    approver_set = _load_approvers(approvers)
    try:
        tee_kind = Tee(tee)
        end = (
            datetime.fromisoformat(deadline.replace("Z", "+00:00"))
            if deadline
            else datetime.now(UTC) + timedelta(hours=overlap_hours)
        )
        if end.tzinfo is None:
            raise ValueError("deadline needs a UTC offset")
    except ValueError as err:
        _usage(str(err))
    rollout = _rollout(broker, admin_token_file)
    try:
        verify_release(signed, release_keys=keys, approvers=approver_set)
        if tlog is not None:
            (log_pub,) = _public_keys([tlog_key or ""], "--tlog-key")
            try:
                check_release_included(
                    HttpLogReader(tlog),
                    log_public_key=log_pub,
                    store=MemoryTreeHeadStore(),
                    manifest_digest=signed.record.manifest_digest,
                    release_keys=keys,
                    approvers=approver_set,
                )
            except TransportError:
                unreachable(tlog, "transparency log")
        current = rollout.start(signed, tee=tee_kind, deadline=end, old=old)
    except EnclaviaError as err:
        _refused(err, rollout.admin.url)
    except ValueError as err:
        _usage(str(err))
    current.save(_state_path(state))
    typer.echo(
        f"start: {current.new} beside {current.old} until {current.deadline},"
        f" policy revision {current.steps[-1].revision}"
    )


@rollout_app.command("promote")
def rollout_promote(
    state: StateFile = None, broker: BrokerOpt = None, admin_token_file: TokenFileOpt = None
) -> None:
    """Make the new release the primary reference value (one policy revision)."""
    _run_step("promote", state, broker, admin_token_file)


@rollout_app.command("retire")
def rollout_retire(
    state: StateFile = None, broker: BrokerOpt = None, admin_token_file: TokenFileOpt = None
) -> None:
    """Remove the old measurement: denied from this revision on (one policy revision)."""
    _run_step("retire", state, broker, admin_token_file)


@rollout_app.command("rollback")
def rollout_rollback(
    state: StateFile = None, broker: BrokerOpt = None, admin_token_file: TokenFileOpt = None
) -> None:
    """Restore the policy before the last step (as a new revision)."""
    _run_step("rollback", state, broker, admin_token_file)


@rollout_app.command("status")
def rollout_status(state: StateFile = None) -> None:
    """Print the rollout state (phase, names, deadline, revisions)."""
    from enclavia.release.rollout import RolloutState

    try:
        current = RolloutState.load(_state_path(state))
    except EnclaviaError as err:
        _refused(err)
    doc = current.to_json()
    for step in doc["steps"]:
        step.pop("before_source", None)
    _write_json(doc, None)


# -- drift monitor -------------------------------------------------------------------------------


@release_app.command("monitor")
def release_monitor(  # noqa: PLR0915 - one pass: load, observe each enclave, scan the log, report
    enclave: Annotated[
        list[str] | None, typer.Option(help="Host URL of an enclave in service (repeatable)")
    ] = None,
    policy: Annotated[Path | None, typer.Option(help="Policy in force (file)")] = None,
    broker: BrokerOpt = None,
    admin_token_file: TokenFileOpt = None,
    tlog: Annotated[str | None, typer.Option(help="Transparency log URL")] = None,
    tlog_key: Annotated[str | None, typer.Option(help="Log public key (hex or file)")] = None,
    release_key: Annotated[list[str] | None, typer.Option(help="Trusted release key (hex or file)")] = None,
    approvers: Annotated[Path | None, typer.Option(help="Approvers file (k-of-n)")] = None,
    state_dir: Annotated[Path | None, typer.Option(help="Where the monitor keeps log state")] = None,
    metrics_out: Annotated[Path | None, typer.Option(help="Write Prometheus text metrics here")] = None,
) -> None:
    """One pass of the drift monitor (run it from cron or a loop). Exit 0: no finding that alerts; 1: alert.

    Findings are printed as JSON lines; ``measurement_not_promoted`` alone does not alert (rollout overlap).
    """
    import secrets as pysecrets
    from datetime import UTC, datetime

    import httpx
    from prometheus_client import generate_latest

    from enclavia.attestation.bundle import parse_bundle
    from enclavia.attestation.tlog import check_release_included
    from enclavia.client.tlog import FileTreeHeadStore, HttpLogReader
    from enclavia.client.verify import verify_bundle
    from enclavia.errors import LogEntryNotFoundError
    from enclavia.observability import logging as elog
    from enclavia.policy.document import load_policy, parse_policy
    from enclavia.release.drift import DriftMonitor, LogScanState, Observation

    elog.configure("release")
    try:
        if policy is not None:
            current = load_policy(policy)
        elif broker is not None or admin_token_file is not None:
            _, source = _rollout(broker, admin_token_file).admin.get_policy()
            current = parse_policy(source)
        else:
            current = None
    except EnclaviaError as err:
        _refused(err)
    keys = _public_keys(release_key, "--release-key")
    monitor = DriftMonitor(release_keys=keys, approvers=_load_approvers(approvers))
    home = state_dir or paths.state_dir() / "monitor"
    home.mkdir(parents=True, exist_ok=True)
    reader = HttpLogReader(tlog) if tlog else None
    log_pub = _public_keys([tlog_key or ""], "--tlog-key")[0] if tlog else b""
    heads = FileTreeHeadStore(home / "tlog-state.json")
    alerts = []
    observed = []
    for url in enclave or []:
        if current is None:
            _usage("--policy or --broker is required to check enclaves")
        nonce = pysecrets.token_bytes(32)
        try:
            resp = httpx.get(url.rstrip("/") + f"/v1/attestation?nonce={nonce.hex()}", timeout=30)
            data = resp.content
            bundle = parse_bundle(data)
        except (httpx.HTTPError, EnclaviaError):
            typer.echo(json.dumps({"kind": "enclave_unreachable", "url": url}))
            continue
        digest = bundle.manifest.digest()
        try:
            verified = verify_bundle(data, expected_nonce=nonce, policy=current, now=datetime.now(UTC))
        except EnclaviaError as err:
            observed.append(Observation(bundle.tee, None, digest.hex(), None, error_code=err.code))
            continue
        published = None
        code = None
        if reader is not None:
            try:
                check_release_included(
                    reader,
                    log_public_key=log_pub,
                    store=heads,
                    manifest_digest=digest,
                    claims=verified.result.claims,
                    release_keys=keys,
                )
                published = True
            except LogEntryNotFoundError as err:
                published, code = False, err.code
            except EnclaviaError as err:
                published, code = False, err.code
        observed.append(
            Observation(
                bundle.tee,
                verified.measurement,
                digest.hex(),
                verified.result.reference_name,
                published,
                code,
            )
        )
    if current is not None:
        alerts += monitor.check_enclaves(observed, current)
    if reader is not None and keys:
        scan = LogScanState.load(home / "log-scan.json")
        alerts += monitor.scan_log(reader, log_pub, heads, scan)
        scan.save(home / "log-scan.json")
    for alert in alerts:
        typer.echo(json.dumps(alert.to_json(), sort_keys=True))
    if metrics_out is not None:
        metrics_out.write_bytes(generate_latest(monitor.metrics.registry))
    if any(a.kind != "measurement_not_promoted" for a in alerts):
        raise typer.Exit(EXIT_REJECTED)
