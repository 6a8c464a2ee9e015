"""Entry point of the enclave process: `python -m enclavia.enclave.main --socket PATH ...`.

Started by the host supervisor; it is the only process that holds keys and sees plaintext.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import signal
import sys
from pathlib import Path
from typing import Any, NoReturn

from enclavia import channel, launch
from enclavia.enclave import loaded, memory
from enclavia.enclave.hardening import harden
from enclavia.errors import EnclaviaError, ModelTooLargeError, UncleanProcessError, UnmeasuredCodeError
from enclavia.observability import logging as elog


def _refuse(log: Any, err: EnclaviaError) -> NoReturn:
    """Refused at start (configuration, not a crash): the host does not restart a refused enclave."""
    extra = {"need_bytes": err.need, "limit_bytes": err.limit} if isinstance(err, ModelTooLargeError) else {}
    log.error("enclave.refused", error_code=err.code, detail=err.detail, **extra)
    raise SystemExit(channel.EXIT_REFUSED)


async def _run(args: argparse.Namespace) -> None:
    # Imported here, after the BLAS/OpenMP pools are pinned (memory.pin_thread_pools) and before any model.
    from enclavia.enclave.boot import EnclaveConfig, build_enclave
    from enclavia.enclave.image import dependency_lock, read_records
    from enclavia.enclave.platform_binding import check_platform_binding
    from enclavia.enclave.server import EnclaveServer
    from enclavia.observability.metrics import EnclaveMetrics

    log = elog.get_logger()
    config = EnclaveConfig(
        model_dir=Path(args.model_dir),
        sim_dir=Path(args.sim_dir),
        tee=args.tee,
        embeddings=args.embeddings,
        classification=Path(args.classification) if args.classification else None,
        store_socket=args.store_socket,
        chat_model=Path(args.chat_model) if args.chat_model else None,
        chat_threads=args.chat_threads,
        kek_secret=args.kek_secret,
    )
    log.info("enclave.starting", tee=config.tee, suite="x25519-sha256-aes256gcm")
    metrics = EnclaveMetrics()
    limit, mode = args.memory_limit, args.memory_mode
    need: memory.Need | None = None
    try:
        # Checked before the limit applies and before any model loads: a model that cannot fit is refused
        # here (the enclave's own code, loaded above, is the measured baseline), not killed later.
        need = memory.check_fits(
            memory.planned(limit, mode),
            memory.artifacts_for(
                config.model_dir,
                embeddings=config.embeddings,
                classification=config.classification is not None,
                chat_model=config.chat_model,
            ),
        )
        try:
            enforcement = memory.enforce(limit, mode)
        except (OSError, ValueError):
            log.error("enclave.refused", error_code="enclave.memory_limit_unavailable")
            raise SystemExit(channel.EXIT_REFUSED) from None
        log.info(
            "enclave.memory",
            mechanism=enforcement.mechanism,
            limit_bytes=enforcement.limit,
            reason=enforcement.reason,
            need_bytes=need.counted(enforcement.mechanism),
            baseline_bytes=need.baseline.rss,
        )
        memory.register_metrics(metrics.registry, enforcement)
        # RECORDs read once: their digests are measured, and the start check uses these same bytes.
        records = read_records(dependency_lock())
        enclave = build_enclave(config, metrics, log=log.info, key_id=args.key_id, records=records)
        # Everything is loaded now; nothing is served and no key is asked for until this holds.
        outside = loaded.unmeasured(enclave.manifest, records)
        if outside:
            raise UnmeasuredCodeError(loaded.summary(outside))
        loaded.guard_imports(enclave.manifest, records)  # imports after this point are checked as they happen
        # SEV-SNP / TDX: the platform's launch config slot (host_data / MRCONFIGID) carries this manifest.
        check_platform_binding(enclave)
    except EnclaviaError as err:
        _refuse(log, err)
    except MemoryError:
        # Loading needed more than estimated on this machine: still refused at start, never mid-request.
        _refuse(log, ModelTooLargeError(0, limit or 0))
    metrics.measurement.labels(enclave.manifest_digest.hex()).set(1)
    if os.path.exists(args.socket):
        os.unlink(args.socket)
    # Boot objects (models, tokenizers, torch modules) live as long as the process: keep them out of the
    # cyclic GC's generations so collections during requests stay short.
    gc.collect()
    gc.freeze()
    server = await EnclaveServer(enclave, metrics, log.info).serve(args.socket)
    os.chmod(args.socket, 0o600)
    log.info(
        "enclave.ready",
        measurement=enclave.manifest_digest.hex(),
        manifest_digest=enclave.manifest_digest.hex(),
        key_id=enclave.gateway_key.config.key_id,
        socket=args.socket,
        models=sorted(enclave.app.models),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
    log.info("enclave.stopping", signal="term")


def _loop_factory() -> Any:
    """uvloop when installed (uvicorn[standard] brings it): a cheaper event loop for the socket server."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="enclavia-enclave")
    parser.add_argument("--socket", required=True)
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--sim-dir", required=True)
    parser.add_argument("--tee", default="simulated", choices=["simulated", "sev-snp", "tdx", "nitro"])
    parser.add_argument("--embeddings", action="store_true", help="load the embedding model")
    parser.add_argument("--classification", default=None, help="data classification manifest (YAML)")
    parser.add_argument("--store-socket", default=None, help="host services socket (blob store, egress)")
    parser.add_argument("--chat-model", default=None, help="GGUF chat model (llama.cpp), measured by digest")
    parser.add_argument("--chat-threads", type=int, default=1, help="llama.cpp threads")
    parser.add_argument(
        "--kek-secret", default=None, help="broker secret path of the document store's KEK (measured)"
    )
    parser.add_argument(
        "--key-id", type=int, default=None, help="OHTTP key id (the host varies it per restart)"
    )
    parser.add_argument("--memory-limit", type=int, default=None, help="enclave memory size in bytes")
    parser.add_argument("--memory-mode", default="auto", choices=memory.MODES, help="how the limit is held")
    memory.pin_thread_pools()  # before numpy, torch or llama.cpp start their thread pools
    args = parser.parse_args(argv)
    elog.configure("enclave")
    # Before anything else runs: the interpreter flags and the environment are part of the measurement.
    unclean = launch.violations(sys.flags, os.environ)
    if unclean:
        _refuse(elog.get_logger(), UncleanProcessError(",".join(unclean)))
    from enclavia.observability.trace import configure_tracing

    configure_tracing("enclave")
    report = harden()
    log = elog.get_logger()
    log.info("enclave.hardening", dumpable=report.dumpable, netns=report.netns, reason=report.reason)
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(_run(args))


if __name__ == "__main__":
    main()
