"""Core commands: sim init/policy, serve, attest, predict, model train."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from enclavia.cli import paths
from enclavia.cli.exits import EXIT_REJECTED, EXIT_USAGE, read_input, unavailable, unreachable, usage
from enclavia.errors import EnclaviaError, TransportError

sim_app = typer.Typer(no_args_is_help=True, help="Simulated TEE (development only).")
model_app = typer.Typer(no_args_is_help=True, help="Model artifacts.")

__all__ = ["EXIT_REJECTED", "EXIT_USAGE", "dev_policy_text", "model_app", "register", "serve", "sim_app"]


def register(app: typer.Typer) -> None:
    app.add_typer(sim_app, name="sim")
    app.add_typer(model_app, name="model")
    app.command("serve")(serve)
    app.command("attest")(attest)
    app.command("predict")(predict)


# -- sim -----------------------------------------------------------------------------------------


@sim_app.command("init")
def sim_init(
    directory: Annotated[Path | None, typer.Option("--dir", help="Where to keep the platform key")] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing key")] = False,
) -> None:
    """Create the software platform key of the simulated TEE (dev only)."""
    from enclavia.tee.simulated import DEV_WARNING, init_platform_key

    target = directory or paths.sim_dir()
    pub = init_platform_key(target, force=force)
    typer.echo(f"WARNING: {DEV_WARNING}", err=True)
    typer.echo(f"platform key: {target}/platform_key.pem")
    typer.echo(f"platform public key: {pub.hex()}")


@sim_app.command("policy")
def sim_policy(  # noqa: PLR0917 - typer options
    out: Annotated[Path, typer.Option(help="Policy file to write")] = Path(".enclavia/dev-policy.yaml"),
    model_dir: Annotated[Path | None, typer.Option(help="Model directory the enclave will load")] = None,
    directory: Annotated[Path | None, typer.Option("--dir", help="Simulated platform key directory")] = None,
    embeddings: Annotated[bool, typer.Option(help="The enclave will load the embedding model")] = False,
    classification: Annotated[Path | None, typer.Option(help="Data classification manifest")] = None,
    chat: Annotated[bool, typer.Option(help="The enclave will serve the bundled chat model")] = False,
    chat_model: Annotated[Path | None, typer.Option(help="The enclave will serve this GGUF model")] = None,
    kek_secret: Annotated[str | None, typer.Option(help="The enclave's KEK broker secret path")] = None,
) -> None:
    """Write a dev policy that pins this build's measurement and the simulated platform key."""
    from enclavia.enclave.boot import EnclaveConfig, load_models, manifest_for
    from enclavia.errors import ClassificationManifestError
    from enclavia.tee.simulated import PLATFORM_KEY_FILE, load_platform_key

    sim = directory or paths.sim_dir()
    _need_file(sim / PLATFORM_KEY_FILE, "simulated platform key", "create it with `enclavia sim init`")
    _need_file(classification, "--classification")
    _need_file(chat_model, "--chat-model")
    config = EnclaveConfig(
        model_dir=model_dir or paths.default_model_dir(),
        sim_dir=sim,
        embeddings=embeddings,
        classification=classification,
        chat_model=_chat_path(paths.state_dir(), chat, chat_model),
        kek_secret=kek_secret,
    )
    try:
        manifest = manifest_for(config, load_models(config.model_dir))
    except ClassificationManifestError as err:
        usage(f"--classification {classification}: {err.detail}")
    text = dev_policy_text(manifest.digest().hex(), load_platform_key(sim).public_bytes.hex())
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {out} (profile: dev, measurement {manifest.digest().hex()})")


def _need_file(path: Path | None, what: str, hint: str = "") -> None:
    """A file the command will read: missing exits 3 naming it (before anything starts)."""
    if path is not None and not path.is_file():
        unavailable(f"no {what} file {path}" + (f": {hint}" if hint else ""))


def dev_policy_text(measurement_hex: str, platform_key_hex: str) -> str:
    return (
        "# Development policy: accepts the SIMULATED TEE. Never use in production.\n"
        "policy_id: enclavia-dev\n"
        "revision: 1\n"
        "profile: dev\n"
        "requirements:\n"
        "  allow_debug: false\n"
        "  max_evidence_age_s: 300\n"
        "trust:\n"
        f"  simulated_platform_keys: ['{platform_key_hex}']\n"
        "reference_values:\n"
        "  simulated:\n"
        "    - name: local-build\n"
        f"      measurement: '{measurement_hex}'\n"
    )


# -- model ---------------------------------------------------------------------------------------


@model_app.command("train")
def model_train(
    out: Annotated[Path, typer.Option(help="Artifact path")] = Path("build/models/clinical-risk.json"),
    seed: int = 0,
) -> None:
    """Train the bundled clinical-risk classifier (Breast Cancer Wisconsin, scikit-learn)."""
    from enclavia.inference.training import write_artifact

    try:
        path = write_artifact(out, seed)
    except OSError as err:
        unavailable(f"cannot write --out {out}: {err.strerror or type(err).__name__}")
    typer.echo(f"wrote {path}")


def _bundled_examples() -> dict[str, dict[str, Any]]:
    """Request bodies for the bundled non-classifier models (OpenAI shapes, through `enclavia proxy`)."""
    from enclavia.inference.chat import BUNDLED_MODEL_ID
    from enclavia.inference.embeddings import MODEL_ID

    return {
        MODEL_ID: {"model": MODEL_ID, "input": ["Patient reports chest pain on exertion."]},
        BUNDLED_MODEL_ID: {
            "model": BUNDLED_MODEL_ID,
            "messages": [{"role": "user", "content": "What does an HbA1c of 6.1% mean?"}],
            "max_tokens": 64,
        },
    }


@model_app.command("example")
def model_example(
    name: Annotated[str, typer.Argument(help="Model name: a classifier in --model-dir, or a bundled model")],
    model_dir: Annotated[Path | None, typer.Option(help="Model directory (default build/models)")] = None,
) -> None:
    """Print a valid input for a model: for a classifier, its `predict --input` JSON (every feature at its
    training mean); for the bundled embedding and chat models, an OpenAI request body."""
    from enclavia.inference.linear import ArtifactError, LinearClassifier

    if name in (bundled := _bundled_examples()):
        typer.echo(json.dumps(bundled[name], indent=2))
        return
    if not name or "/" in name or name.startswith("."):
        usage(f"model name {name!r} is not a file name")
    path = (model_dir or paths.default_model_dir()) / f"{name}.json"
    if not path.is_file():
        unavailable(
            f"no model {name!r}: {path} does not exist (train the bundled classifier with `enclavia model "
            f"train --out {path}`; bundled models: {', '.join(bundled)})"
        )
    raw = read_input(path, "model artifact")
    try:
        model = LinearClassifier(raw)
    except ArtifactError:
        usage(f"{path} is not a model artifact")
    features = model.example_features()
    model.predict(features)  # the example must pass the enclave's own input checks
    typer.echo(json.dumps({"features": features}, indent=2))


# -- serve ---------------------------------------------------------------------------------------


def serve(  # noqa: PLR0917 - typer options
    listen: Annotated[str, typer.Option(help="host:port for the host API")] = "127.0.0.1:8000",
    model_dir: Annotated[Path | None, typer.Option(help="Model directory")] = None,
    tee: Annotated[str, typer.Option(help="TEE backend")] = "simulated",
    state: Annotated[Path | None, typer.Option("--state-dir", help="State directory")] = None,
    broker: Annotated[
        str | None, typer.Option(help="Key broker URL: fetch the enclave's secrets (sealed models) from it")
    ] = None,
    broker_retry_max: Annotated[float, typer.Option(help="Longest wait between broker retries (s)")] = 30.0,
    embeddings: Annotated[
        bool, typer.Option(help="Load the embedding model (needs the embeddings extra)")
    ] = False,
    classification: Annotated[
        Path | None, typer.Option(help="Data classification manifest: enables documents and RAG")
    ] = None,
    chat: Annotated[
        bool, typer.Option(help="Serve the bundled GGUF chat model (needs the chat extra)")
    ] = False,
    chat_model: Annotated[Path | None, typer.Option(help="Serve this GGUF chat model (llama.cpp)")] = None,
    chat_threads: Annotated[int, typer.Option(help="llama.cpp threads for chat")] = 1,
    kek_secret: Annotated[
        str | None,
        typer.Option(
            help="Broker secret path of the document store's KEK (keks/rag), released to the enclave; "
            "needs --broker. Without it the KEK is a development file under the state directory"
        ),
    ] = None,
    enclave_memory: Annotated[
        str | None,
        typer.Option(
            help="Enclave memory size (512MiB, 2GiB; a bare number is MiB): enforced, checked at start"
        ),
    ] = None,
    enclave_memory_mode: Annotated[
        str, typer.Option(help="How the simulated enclave holds it: auto, cgroup, rlimit-data, rlimit-as")
    ] = "auto",
    enclave_socket: Annotated[
        Path | None,
        typer.Option(
            help="Use an enclave started elsewhere behind this socket (AWS Nitro: the vsock relay, "
            "deploy/nitro); the host does not start or restart it"
        ),
    ] = None,
) -> None:
    """Start the host API and, as a separate process, the enclave behind one Unix socket."""
    import uvicorn

    from enclavia.host.app import HostState, create_app
    from enclavia.host.link import EnclaveLink, Supervisor
    from enclavia.observability import logging as elog
    from enclavia.observability.metrics import HostMetrics
    from enclavia.observability.trace import configure_tracing
    from enclavia.ratelimit import TokenBucket

    if kek_secret and not broker:
        raise typer.BadParameter("--kek-secret needs --broker (the KEK is released by the broker)")
    _need_file(classification, "--classification")
    _need_file(chat_model, "--chat-model")
    state_dir = state or paths.state_dir()
    state_dir.mkdir(parents=True, exist_ok=True)
    host, _, port = listen.rpartition(":")
    elog.configure("host")
    configure_tracing("host")
    metrics = HostMetrics()
    link = EnclaveLink(str((enclave_socket or state_dir / "enclave.sock").resolve()))
    sim = (state_dir / "sim").resolve()
    args = [
        "--model-dir",
        str((model_dir or paths.default_model_dir()).resolve()),
        "--sim-dir",
        str(sim),
        "--tee",
        tee,
        *(["--embeddings"] if embeddings else []),
        *(["--classification", str(classification.resolve())] if classification else []),
        *_chat_args(state_dir, chat, chat_model, chat_threads),
        *(["--kek-secret", kek_secret] if kek_secret else []),
        *_memory_args(enclave_memory, enclave_memory_mode),
    ]
    from enclavia.host.services import HostServices

    services = HostServices(str((state_dir / "host.sock").resolve()), (state_dir / "blobs").resolve())
    args += ["--store-socket", services.socket_path]
    supervisor = None if enclave_socket else Supervisor(link=link, args=args, metrics=metrics)
    kbs = None
    if broker:
        from enclavia.host.kbs import KbsRelay

        kbs = KbsRelay(broker, link, supervisor, max_backoff_s=broker_retry_max, metrics=metrics)
    app = create_app(
        HostState(link, supervisor, metrics, TokenBucket(rate=200.0, burst=400.0), kbs, services)
    )
    elog.get_logger().info("host.started", listen=listen, socket=link.socket_path)
    uvicorn.run(app, host=host or "127.0.0.1", port=int(port), log_level="warning", access_log=False)


def _memory_args(size: str | None, mode: str) -> list[str]:
    from enclavia.enclave.memory import MODES, parse_size

    if mode not in MODES:
        typer.echo(f"--enclave-memory-mode must be one of {', '.join(MODES)}", err=True)
        raise typer.Exit(EXIT_USAGE)
    if size is None:
        return []
    try:
        limit = parse_size(size)
    except ValueError as err:
        typer.echo(f"--enclave-memory: {err}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    return ["--memory-limit", str(limit), "--memory-mode", mode]


def _chat_path(state_dir: Path, bundled: bool, path: Path | None) -> Path | None:
    """``--chat`` assembles the bundled GGUF under the state directory; ``--chat-model`` names any file."""
    if path is None and bundled:
        from enclavia.inference.chat import bundled_model_path

        path = bundled_model_path(state_dir / "models")
    return path


def _chat_args(state_dir: Path, bundled: bool, path: Path | None, threads: int) -> list[str]:
    chosen = _chat_path(state_dir, bundled, path)
    if chosen is None:
        return []
    return ["--chat-model", str(chosen.resolve()), "--chat-threads", str(threads)]


# -- client commands -----------------------------------------------------------------------------


def _load_client(url: str, policy: Path | None, **kw: Any) -> Any:
    from enclavia.client.sdk import Client

    path = policy or paths.default_policy()
    read_input(path, "policy")  # missing: exit 3 naming it (`enclavia sim policy` writes a dev one)
    return Client(url, path, **kw)


def _tlog_options(
    tlog: str | None, tlog_key: str | None, tlog_state: Path | None, release_key: list[str] | None
) -> dict[str, Any]:
    """Client keyword arguments for the transparency-log check (empty when --tlog is not given)."""
    if tlog is None:
        return {}
    from enclavia.release.keys import load_public_key

    try:
        log_key = load_public_key(tlog_key or "")
        releases = [load_public_key(k) for k in release_key or []]
    except (OSError, ValueError):
        typer.echo("--tlog needs --tlog-key (and --release-key) as 64 hex digits or a file", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    state = tlog_state or paths.state_dir() / "tlog-state.json"
    return {"tlog": tlog, "tlog_key": log_key, "tlog_state": state, "release_keys": releases}


def _fail(err: EnclaviaError, as_json: bool, url: str) -> None:
    if isinstance(err, TransportError):
        unreachable(url, "enclave host")
    if as_json:
        typer.echo(json.dumps({"trusted": False, "reason": err.code}))
    else:
        typer.echo(f"REJECTED: {err.code}", err=True)
    raise typer.Exit(EXIT_REJECTED)


def attest(  # noqa: PLR0917 - typer maps every option to a parameter
    url: str,
    nonce: Annotated[str | None, typer.Option(help="Nonce as hex (16-64 bytes); random if absent")] = None,
    policy: Annotated[Path | None, typer.Option(help="Policy file")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON")] = False,
    tlog: Annotated[
        str | None, typer.Option(help="Transparency log URL: require a published release")
    ] = None,
    tlog_key: Annotated[str | None, typer.Option(help="Log public key (hex or file)")] = None,
    tlog_state: Annotated[Path | None, typer.Option(help="Where the last tree head is kept")] = None,
    release_key: Annotated[list[str] | None, typer.Option(help="Trusted release key (hex or file)")] = None,
) -> None:
    """Fetch and verify the enclave's attestation. Exit 0 when trusted, 1 when not (with a reason code)."""
    try:
        nonce_bytes = bytes.fromhex(nonce) if nonce else None
    except ValueError:
        typer.echo("usage error: --nonce must be hex", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    try:
        with _load_client(url, policy, **_tlog_options(tlog, tlog_key, tlog_state, release_key)) as client:
            enclave = client.attest(nonce_bytes)
            inclusion = client.last_inclusion
    except EnclaviaError as err:
        _fail(err, as_json, url)
        return
    result = enclave.result.to_json()
    if as_json:
        out = {"trusted": True, "result": result, "manifest": enclave.bundle.manifest.to_json()}
        if inclusion is not None:
            out["transparency_log"] = {
                "release": inclusion.release.record.version,
                "index": inclusion.index,
                "tree_size": inclusion.tree_head.tree_size,
            }
        typer.echo(json.dumps(out, indent=2))
        return
    claims = enclave.result.claims
    typer.echo("TRUSTED")
    typer.echo(f"  tee:              {enclave.result.tee}")
    typer.echo(f"  measurement:      {enclave.result.measurement}")
    typer.echo(
        f"  allowed by:       {enclave.result.policy_id} rev {enclave.result.policy_revision}"
        f" entry {enclave.result.reference_name}"
    )
    typer.echo(f"  debug:            {claims.debug}")
    typer.echo(f"  evidence time:    {claims.issued_at.isoformat() if claims.issued_at else '-'}")
    typer.echo(
        f"  report_data:      {claims.report_data.hex()[:32]}... binds nonce, key config, signing key,"
        " manifest"
    )
    typer.echo(f"  key config id:    {enclave.key_config.key_id}")
    typer.echo(f"  models:           {dict(enclave.bundle.manifest.models)}")
    typer.echo(f"  code files:       {len(enclave.bundle.manifest.files)} measured")
    if inclusion is not None:
        typer.echo(
            f"  published:        release {inclusion.release.record.version}, log index {inclusion.index}"
            f" of {inclusion.tree_head.tree_size}"
        )


def predict(
    url: str,
    model: str,
    input_file: Annotated[str, typer.Option("--input", help="JSON file with features, or - for stdin")],
    policy: Annotated[Path | None, typer.Option(help="Policy file")] = None,
) -> None:
    """Send one encrypted prediction and print the decrypted JSON result (`enclavia model example MODEL`
    prints a valid --input). Exit 0 ok, 1 refused (reason code), 2 bad input, 3 missing file, unreachable."""
    raw = sys.stdin.buffer.read() if input_file == "-" else read_input(Path(input_file), "input")
    try:
        doc = json.loads(raw)
    except ValueError as err:
        where = f" (line {err.lineno}, column {err.colno})" if isinstance(err, json.JSONDecodeError) else ""
        usage(f"--input {input_file} is not JSON{where}; `enclavia model example {model}` prints a valid one")
    features = doc.get("features", doc) if isinstance(doc, dict) else doc
    try:
        with _load_client(url, policy) as client:
            out = client.predict(model, features)
    except TransportError:
        unreachable(url, "enclave host")
    except EnclaviaError as err:
        typer.echo(f"REJECTED: {err.code}", err=True)
        raise typer.Exit(EXIT_REJECTED) from None
    typer.echo(json.dumps(out, indent=2))
