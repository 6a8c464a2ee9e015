"""Key-broker commands: broker serve/secret, policy check/apply/show, audit verify/checkpoint, model seal.

Admin commands talk to the broker's admin API: ``--broker`` (or ``ENCLAVIA_BROKER_URL``) and the admin token
from ``ENCLAVIA_BROKER_ADMIN_TOKEN`` or ``--admin-token-file`` (never a command-line value: it would show in
``ps`` and shell history).
"""

from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from enclavia.cli import paths
from enclavia.cli.exits import read_input, unreachable
from enclavia.errors import EnclaviaError

broker_app = typer.Typer(no_args_is_help=True, help="Key broker: attestation-gated key release.")
secret_app = typer.Typer(no_args_is_help=True, help="Secrets held by the broker (values never shown).")
policy_app = typer.Typer(no_args_is_help=True, help="Key-release policy (versioned YAML, deny by default).")
audit_app = typer.Typer(no_args_is_help=True, help="The broker's hash-chained audit ledger.")

EXIT_FAILED = 1
EXIT_USAGE = 2
ENV_URL = "ENCLAVIA_BROKER_URL"
ENV_TOKEN = "ENCLAVIA_BROKER_ADMIN_TOKEN"  # noqa: S105 - the variable name, not a token
ENV_DB = "ENCLAVIA_BROKER_DB"
ENV_KEYSTORE = "ENCLAVIA_BROKER_KEYSTORE"

BrokerUrl = Annotated[str | None, typer.Option("--broker", help=f"Broker URL (or {ENV_URL})")]
TokenFile = Annotated[Path | None, typer.Option(help=f"File holding the admin token (or {ENV_TOKEN})")]
DbUrl = Annotated[str | None, typer.Option("--db", help=f"SQLAlchemy URL (or {ENV_DB}; default SQLite)")]


def register(app: typer.Typer) -> None:
    from enclavia.cli.core import model_app

    broker_app.add_typer(secret_app, name="secret")
    app.add_typer(broker_app, name="broker")
    app.add_typer(policy_app, name="policy")
    app.add_typer(audit_app, name="audit")
    model_app.command("seal")(model_seal)


def default_db() -> str:
    return os.environ.get(ENV_DB) or f"sqlite:///{(paths.state_dir() / 'broker.db').resolve()}"


def default_keystore() -> str:
    return os.environ.get(ENV_KEYSTORE) or f"file:{(paths.state_dir() / 'broker-root.key').resolve()}"


def _fail(message: str, code: int = EXIT_FAILED) -> None:
    typer.echo(message, err=True)
    raise typer.Exit(code)


# -- serve ---------------------------------------------------------------------------------------


@broker_app.command("serve")
def broker_serve(  # noqa: PLR0917 - typer maps every option to a parameter
    db: DbUrl = None,
    keystore: Annotated[
        str | None, typer.Option(help=f"file:PATH or a pkcs11: URI (or {ENV_KEYSTORE})")
    ] = None,
    listen: Annotated[str, typer.Option(help="host:port")] = "127.0.0.1:8700",
    policy: Annotated[Path | None, typer.Option(help="Policy applied at start if none is installed")] = None,
    admin_token_file: TokenFile = None,
    audience: Annotated[str, typer.Option(help="Token audience")] = "enclavia-kbs",
    token_ttl: Annotated[int, typer.Option(help="Attestation token lifetime (s)")] = 60,
    checkpoint_every: Annotated[int, typer.Option(help="Sign an audit checkpoint every N records")] = 256,
    workers: Annotated[int, typer.Option(help="Worker processes (they share the database)")] = 1,
    threads: Annotated[int, typer.Option(help="Blocking requests in flight per worker")] = 8,
    witness: Annotated[
        list[str] | None,
        typer.Option(help="Publish each checkpoint to file:PATH or an http(s) URL (repeatable)"),
    ] = None,
    challenge_rate: Annotated[
        float, typer.Option(help="Challenges per second per source (burst: --challenge-burst)")
    ] = 5.0,
    challenge_burst: Annotated[float, typer.Option(help="Challenges a source may ask for at once")] = 50.0,
    metrics_token_file: Annotated[
        Path | None, typer.Option(help="Require this bearer token on /metrics (file holding it)")
    ] = None,
    adopt_unsigned_policies: Annotated[
        bool,
        typer.Option(help="Once, at the upgrade to signed policies: sign the stored unsigned history"),
    ] = False,
) -> None:
    """Run the key broker (FastAPI). Migrations run at start; a database that is down gives 503s."""
    import uvicorn

    env = {
        ENV_DB: db or default_db(),
        ENV_KEYSTORE: keystore or default_keystore(),
        "ENCLAVIA_BROKER_AUDIENCE": audience,
        "ENCLAVIA_BROKER_TOKEN_TTL_S": str(token_ttl),
        "ENCLAVIA_BROKER_CHECKPOINT_EVERY": str(checkpoint_every),
        "ENCLAVIA_BROKER_THREADS": str(threads),
        "ENCLAVIA_BROKER_WITNESSES": "\n".join(witness or []),
        "ENCLAVIA_BROKER_CHALLENGE_RATE": str(challenge_rate),
        "ENCLAVIA_BROKER_CHALLENGE_BURST": str(challenge_burst),
        "ENCLAVIA_BROKER_ADOPT_UNSIGNED": "1" if adopt_unsigned_policies else "",
    }
    if metrics_token_file is not None:
        env["ENCLAVIA_BROKER_METRICS_TOKEN"] = metrics_token_file.read_text(encoding="utf-8").strip()
    token = _admin_token(admin_token_file, required=False)
    if token:
        env[ENV_TOKEN] = token
    if policy is not None:
        env["ENCLAVIA_BROKER_POLICY_FILE"] = str(policy.resolve())
    os.environ.update(env)
    host, _, port = listen.rpartition(":")
    uvicorn.run(
        "enclavia.cli.broker:app_from_env",
        factory=True,
        host=host or "127.0.0.1",
        port=int(port),
        workers=workers,
        log_level="warning",
        access_log=False,
    )


def app_from_env() -> Any:
    """uvicorn factory (one per worker process): configuration comes from the environment set by serve."""
    from enclavia.broker.service import BrokerConfig, BrokerService, create_app
    from enclavia.broker.store import redact_url
    from enclavia.observability import logging as elog
    from enclavia.observability.trace import configure_tracing

    elog.configure("broker")
    configure_tracing("broker")
    log = elog.get_logger()
    policy_file = os.environ.get("ENCLAVIA_BROKER_POLICY_FILE")
    config = BrokerConfig(
        db_url=os.environ.get(ENV_DB) or default_db(),
        keystore=os.environ.get(ENV_KEYSTORE) or default_keystore(),
        admin_token=os.environ.get(ENV_TOKEN) or None,
        audience=os.environ.get("ENCLAVIA_BROKER_AUDIENCE", "enclavia-kbs"),
        token_ttl_s=int(os.environ.get("ENCLAVIA_BROKER_TOKEN_TTL_S", "60")),
        checkpoint_every=int(os.environ.get("ENCLAVIA_BROKER_CHECKPOINT_EVERY", "256")),
        threads=int(os.environ.get("ENCLAVIA_BROKER_THREADS", "8")),
        witnesses=tuple(w for w in os.environ.get("ENCLAVIA_BROKER_WITNESSES", "").splitlines() if w),
        metrics_token=os.environ.get("ENCLAVIA_BROKER_METRICS_TOKEN") or None,
        challenge_rate=float(os.environ.get("ENCLAVIA_BROKER_CHALLENGE_RATE", "5")),
        challenge_burst=float(os.environ.get("ENCLAVIA_BROKER_CHALLENGE_BURST", "50")),
        bootstrap_policy=Path(policy_file).read_text(encoding="utf-8") if policy_file else None,
        adopt_unsigned_policies=os.environ.get("ENCLAVIA_BROKER_ADOPT_UNSIGNED") == "1",
    )
    service = BrokerService(config, log=log.info)
    log.info(
        "broker.started",
        store=redact_url(config.db_url),
        keystore=config.keystore.split(":", 1)[0],
    )
    from enclavia.broker.ops import install

    app = create_app(service)
    install(app, service, console_svg=_console_svg())
    return app


def _console_svg() -> str | None:
    """The data-flow picture for the console, from ENCLAVIA_DEPLOYMENT (a deployment YAML), if set."""
    deployment = os.environ.get("ENCLAVIA_DEPLOYMENT")
    if not deployment:
        return None
    from enclavia.evidence.dataflow import deployment_svg

    return deployment_svg(Path(deployment))


# -- admin API client ----------------------------------------------------------------------------


def _admin_token(token_file: Path | None, *, required: bool = True) -> str | None:
    if token_file is not None:
        token = read_input(token_file, "--admin-token-file").decode("utf-8", "replace").strip()
    else:
        token = os.environ.get(ENV_TOKEN, "")
    if not token and required:
        _fail(f"admin token missing: set {ENV_TOKEN} or pass --admin-token-file", EXIT_USAGE)
    return token or None


def _url(broker: str | None) -> str:
    url = broker or os.environ.get(ENV_URL)
    if not url:
        _fail(f"broker URL missing: pass --broker or set {ENV_URL}", EXIT_USAGE)
    return str(url).rstrip("/")


def _admin_raw(
    method: str, broker: str | None, path: str, token_file: Path | None, **kwargs: Any
) -> tuple[int, dict[str, Any]]:
    import httpx

    url = _url(broker) + path
    headers = {"authorization": f"Bearer {_admin_token(token_file)}"}
    try:
        resp = httpx.request(method, url, headers=headers, timeout=30.0, **kwargs)
    except httpx.HTTPError:
        unreachable(_url(broker), "broker")
    try:
        doc = resp.json()
    except ValueError:
        doc = {}
    return resp.status_code, doc if isinstance(doc, dict) else {}


def _admin(method: str, broker: str | None, path: str, token_file: Path | None, **kwargs: Any) -> Any:
    status, doc = _admin_raw(method, broker, path, token_file, **kwargs)
    if status >= 400:
        _fail(f"REJECTED: {doc.get('code', 'http.' + str(status))}")
    return doc


# -- secrets -------------------------------------------------------------------------------------


def _read_value(value_file: Path | None, generate: int | None) -> bytes:
    if (value_file is None) == (generate is None):
        _fail("pass exactly one of --value-file and --generate", EXIT_USAGE)
    if value_file is not None:
        return sys.stdin.buffer.read() if str(value_file) == "-" else value_file.read_bytes()
    import secrets

    return secrets.token_bytes(int(generate or 32))


@secret_app.command("create")
def secret_create(
    path: str,
    value_file: Annotated[Path | None, typer.Option(help="File with the value (- for stdin)")] = None,
    generate: Annotated[int | None, typer.Option(help="Generate a random value of N bytes")] = None,
    broker: BrokerUrl = None,
    admin_token_file: TokenFile = None,
) -> None:
    """Create a secret (version 1). The value is never printed."""
    value = _read_value(value_file, generate)
    out = _admin(
        "POST",
        broker,
        f"/kbs/v1/admin/secrets/{path}",
        admin_token_file,
        json={"value": base64.b64encode(value).decode()},
    )
    typer.echo(f"created {out['path']} version {out['version']}")


@secret_app.command("rotate")
def secret_rotate(
    path: str,
    value_file: Annotated[Path | None, typer.Option(help="File with the value (- for stdin)")] = None,
    generate: Annotated[int | None, typer.Option(help="Generate a random value of N bytes")] = None,
    broker: BrokerUrl = None,
    admin_token_file: TokenFile = None,
) -> None:
    """Add a new version of an existing secret (older versions stay releasable until destroyed)."""
    value = _read_value(value_file, generate)
    out = _admin(
        "POST",
        broker,
        f"/kbs/v1/admin/secrets/{path}/versions",
        admin_token_file,
        json={"value": base64.b64encode(value).decode()},
    )
    typer.echo(f"rotated {out['path']} to version {out['version']}")


@secret_app.command("list")
def secret_list(broker: BrokerUrl = None, admin_token_file: TokenFile = None) -> None:
    """Paths and versions (never values)."""
    out = _admin("GET", broker, "/kbs/v1/admin/secrets", admin_token_file)
    typer.echo(json.dumps(out, indent=2))


@secret_app.command("destroy")
def secret_destroy(
    path: str,
    version: Annotated[int | None, typer.Option(help="Only this version")] = None,
    broker: BrokerUrl = None,
    admin_token_file: TokenFile = None,
) -> None:
    """Crypto-shred a secret (all versions, or one): its wrapped key and ciphertext are deleted."""
    params = {"version": str(version)} if version is not None else None
    out = _admin("DELETE", broker, f"/kbs/v1/admin/secrets/{path}", admin_token_file, params=params)
    typer.echo(f"destroyed {out['destroyed_versions']} version(s) of {out['path']}")


# -- policy --------------------------------------------------------------------------------------


@policy_app.command("check")
def policy_check(file: Path) -> None:
    """Parse and validate a policy file locally (schema, references, CEL conditions). Exit 0 if valid."""
    from enclavia.policy.document import load_policy

    read_input(file, "policy")  # missing: exit 3 naming it; invalid: exit 1 below
    try:
        policy = load_policy(file)
    except EnclaviaError as err:
        _fail(f"INVALID: {err.code}: {err.detail}")
        return
    typer.echo(
        f"OK {policy.policy_id} revision {policy.revision} profile {policy.profile}: "
        f"{len(policy.references)} reference value(s), {len(policy.secret_rules)} secret rule(s)"
    )


@policy_app.command("apply")
def policy_apply(
    file: Path,
    expected_revision: Annotated[
        int | None, typer.Option(help="Current revision on the broker (default: the file's revision - 1)")
    ] = None,
    broker: BrokerUrl = None,
    admin_token_file: TokenFile = None,
) -> None:
    """Install a policy with compare-and-set on the revision (409 policy.revision_conflict if it moved)."""
    from enclavia.policy.document import load_policy

    read_input(file, "policy")
    try:
        policy = load_policy(file)
    except EnclaviaError as err:
        _fail(f"INVALID: {err.code}: {err.detail}")
        return
    expected = expected_revision if expected_revision is not None else policy.revision - 1
    out = _admin(
        "PUT",
        broker,
        "/kbs/v1/admin/policy",
        admin_token_file,
        json={"policy": policy.source, "expected_revision": expected},
    )
    typer.echo(f"applied {out['policy_id']} revision {out['revision']} (was {out['previous_revision']})")


@policy_app.command("show")
def policy_show(broker: BrokerUrl = None, admin_token_file: TokenFile = None) -> None:
    """Print the policy in force."""
    out = _admin("GET", broker, "/kbs/v1/admin/policy", admin_token_file)
    typer.echo(f"# revision {out['revision']} ({out['policy_id']})")
    typer.echo(out["source"].rstrip("\n"))


# -- audit ---------------------------------------------------------------------------------------


@audit_app.command("verify")
def audit_verify(
    db: DbUrl = None,
    public_key: Annotated[
        str | None, typer.Option(help="Pin the broker's Ed25519 public key (hex); default: the database's")
    ] = None,
    checkpoint: Annotated[
        list[Path] | None,
        typer.Option(
            help="A checkpoint kept outside the broker (JSON, a witness file's JSON lines, or an evidence "
            "report): the ledger must still reach it. Repeatable."
        ),
    ] = None,
    checkpoint_every: Annotated[
        int | None,
        typer.Option(help="The broker's checkpoint cadence (default: the one its checkpoints sign)"),
    ] = None,
) -> None:
    """Walk the ledger: detects edited, deleted or reordered records, missing checkpoints, a ledger behind an
    external checkpoint, policy revisions that go back and decisions that name no signed revision."""
    from sqlalchemy import select

    from enclavia.broker.audit import verify_ledger
    from enclavia.broker.store import Store, key_material
    from enclavia.broker.witness import read_checkpoints
    from enclavia.errors import AuditVerificationError

    store = Store(db or default_db())
    try:
        with store.transaction() as conn:
            if public_key:
                try:
                    pub = bytes.fromhex(public_key)
                except ValueError:
                    _fail("public key must be hex", EXIT_USAGE)
                    return
                pinned = True
            else:
                row = conn.execute(
                    select(key_material.c.public).where(key_material.c.name == "signing")
                ).first()
                if row is None or row.public is None:
                    _fail("FAILED: no broker key in this database")
                    return
                pub, pinned = bytes(row.public), False
            external = [cp for path in checkpoint or [] for cp in read_checkpoints(path, pub)]
            report = verify_ledger(conn, pub, external=external, checkpoint_every=checkpoint_every)
    except AuditVerificationError as err:
        _fail(f"FAILED: {err.code}: {err.detail}")
        return
    except EnclaviaError as err:
        _fail(f"FAILED: {err.code}")
        return
    finally:
        store.dispose()
    typer.echo(
        f"OK {report.records} records, chain intact; {report.checkpoints} signed checkpoint(s) verified "
        f"(last at seq {report.last_checkpoint_seq}); {report.external_checkpoints} external checkpoint(s) "
        f"reached; {report.policy_revisions} signed policy revision(s); head {report.head_hash[:16]}...; "
        f"key {report.kid}{' (pinned)' if pinned else ' (from the database: pin it with --public-key)'}"
    )


@audit_app.command("ref")
def audit_ref(
    name: Annotated[str, typer.Argument(help="secret, jti, nonce, measurement, policy_id or report")],
    value: str,
    broker: BrokerUrl = None,
    admin_token_file: TokenFile = None,
) -> None:
    """The ledger reference of a known identifier (e.g. a secret path), to find its records."""
    out = _admin(
        "GET", broker, "/kbs/v1/admin/audit/ref", admin_token_file, params={"name": name, "value": value}
    )
    typer.echo(out["ref"])


@audit_app.command("show")
def audit_show(
    db: DbUrl = None,
    last: Annotated[int, typer.Option(help="How many records, newest last")] = 20,
    denied: Annotated[bool, typer.Option(help="Only denials")] = False,
    ref: Annotated[
        str | None, typer.Option(help="Only records naming this reference (see `audit ref`)")
    ] = None,
) -> None:
    """Print ledger records (codes and keyed references only: the ledger holds no identifiers)."""
    from sqlalchemy import select

    from enclavia.broker.store import Store, audit_records

    store = Store(db or default_db())
    try:
        with store.transaction() as conn:
            query = select(audit_records).order_by(audit_records.c.seq.desc())
            if denied:
                query = query.where(audit_records.c.outcome == "denied")
            if ref:
                query = query.where(audit_records.c.ids.contains(ref))
            rows = list(conn.execute(query.limit(max(1, min(last, 10000)))))
    except EnclaviaError as err:
        _fail(f"FAILED: {err.code}")
        return
    finally:
        store.dispose()
    for row in reversed(rows):
        ids = " ".join(f"{k}={v[:16]}" for k, v in sorted(json.loads(row.ids).items()))
        typer.echo(
            f"{row.seq:>8} {row.time} {row.action:<16} {row.outcome:<7} {row.code:<36} "
            f"rev={row.policy_revision if row.policy_revision is not None else '-'} {ids}"
        )


@audit_app.command("checkpoint")
def audit_checkpoint(broker: BrokerUrl = None, admin_token_file: TokenFile = None) -> None:
    """Ask the broker to sign a checkpoint of the current head now; print it (keep it somewhere else)."""
    out = _admin("POST", broker, "/kbs/v1/admin/audit/checkpoint", admin_token_file)
    typer.echo(json.dumps(out, indent=2))


# -- model seal ----------------------------------------------------------------------------------


def model_seal(
    artifact: Path,
    broker: BrokerUrl = None,
    model_id: Annotated[str | None, typer.Option(help="Model id (default: the artifact's name)")] = None,
    admin_token_file: TokenFile = None,
) -> None:
    """Encrypt a model artifact under a fresh 256-bit key, register the key with the broker as
    models/<id>, write ARTIFACT.sealed. The plaintext file is left alone: the enclave ignores it."""
    import secrets

    from enclavia.crypto import aead
    from enclavia.enclave.sealed import SUFFIX, seal_artifact, secret_path_for

    plaintext = artifact.read_bytes()
    if model_id is None:
        try:
            doc = json.loads(plaintext)
            model_id = doc.get("name") if isinstance(doc, dict) else None
        except (ValueError, UnicodeDecodeError):
            model_id = None
        model_id = model_id or artifact.stem
    dek = aead.generate_key()
    path = secret_path_for(model_id)
    body = {"json": {"value": base64.b64encode(dek).decode()}}
    status, out = _admin_raw("POST", broker, f"/kbs/v1/admin/secrets/{path}", admin_token_file, **body)
    if status == 409 and out.get("code") == "broker.secret_exists":
        # Registered by an earlier seal: this sealing gets a new version of the key.
        out = _admin("POST", broker, f"/kbs/v1/admin/secrets/{path}/versions", admin_token_file, **body)
    elif status >= 400:
        _fail(f"REJECTED: {out.get('code', 'http.' + str(status))}")
    sealed = seal_artifact(plaintext, model_id, dek, int(out["version"]))
    target = artifact.with_name(artifact.name + SUFFIX)
    tmp = target.with_name(target.name + f".tmp{secrets.token_hex(4)}")
    tmp.write_bytes(sealed)
    tmp.replace(target)
    typer.echo(f"sealed {artifact.name} -> {target.name}; key registered as {path} version {out['version']}")
