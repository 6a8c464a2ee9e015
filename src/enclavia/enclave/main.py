"""Entry point of the enclave process: `python -m enclavia.enclave.main --socket PATH ...`.

Started by the host supervisor; it is the only process that holds keys and sees plaintext.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from pathlib import Path

from enclavia.enclave.boot import EnclaveConfig, build_enclave
from enclavia.enclave.hardening import harden
from enclavia.enclave.server import EnclaveServer
from enclavia.observability import logging as elog
from enclavia.observability.metrics import EnclaveMetrics


async def _run(args: argparse.Namespace) -> None:
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
    )
    log.info("enclave.starting", tee=config.tee, suite="x25519-sha256-aes256gcm")
    metrics = EnclaveMetrics()
    enclave = build_enclave(config, metrics, log=log.info, key_id=args.key_id)
    metrics.measurement.labels(enclave.manifest_digest.hex()).set(1)
    if os.path.exists(args.socket):
        os.unlink(args.socket)
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
        "--key-id", type=int, default=None, help="OHTTP key id (the host varies it per restart)"
    )
    args = parser.parse_args(argv)
    elog.configure("enclave")
    report = harden()
    elog.get_logger().info(
        "enclave.hardening", dumpable=report.dumpable, netns=report.netns, reason=report.reason
    )
    asyncio.run(_run(args))


if __name__ == "__main__":
    main()
