"""Warm verification latency for Intel TDX and NVIDIA GPU evidence, side by side in one run.

    .venv/bin/python benchmarks/verify_latency_tdx.py [--n 500]

Rows: dcap-qvl alone (the floor), enclavia's TDX verify (parse + pinned-root checks + dcap-qvl + claims), the
same through the dispatcher, NVIDIA SPDM verify without and with a chain cache, and the 8-GPU JSON list.
Target: TDX warm p50 <= 2 ms.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import dcap_qvl  # noqa: E402

from enclavia.attestation.claims import Tee  # noqa: E402
from enclavia.attestation.platforms.nvidia.verify import verify as verify_gpu  # noqa: E402
from enclavia.attestation.platforms.nvidia.verify import verify_evidence_list  # noqa: E402
from enclavia.attestation.platforms.tdx.verify import verify as verify_tdx  # noqa: E402
from enclavia.attestation.roots.intel import INTEL_SGX_ROOT_CA_DER  # noqa: E402
from enclavia.attestation.verifier import verify_evidence  # noqa: E402
from enclavia.crypto.pki import ChainCache  # noqa: E402

VECTORS = REPO / "tests" / "assets" / "vectors"


def measure(fn: Callable[[], object], n: int) -> tuple[float, float]:
    for _ in range(20):
        fn()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    samples.sort()
    return statistics.median(samples) * 1e3, samples[int(len(samples) * 0.99) - 1] * 1e3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=500)
    args = ap.parse_args()

    tdx = VECTORS / "tdx" / "dcap-qvl"
    quote = (tdx / "tdx_quote").read_bytes()
    collateral = (tdx / "tdx_quote_collateral.json").read_bytes()
    at = datetime(2025, 6, 20, tzinfo=UTC)
    col_obj = dcap_qvl.QuoteCollateralV3.from_json(collateral.decode())

    gpu = VECTORS / "nvidia" / "nvtrust"
    report = bytes.fromhex((gpu / "hopperAttestationReport.txt").read_text().strip())
    chain = (gpu / "hopperCertChain.pem").read_bytes()
    ppcie = (gpu / "ppcie_gpu_evidence_8xH100.json").read_bytes()
    gpu_at = datetime(2025, 1, 1, tzinfo=UTC)
    cache = ChainCache()

    rows: list[tuple[str, Callable[[], object]]] = [
        (
            "tdx: dcap-qvl verify_with_root_ca only",
            lambda: dcap_qvl.verify_with_root_ca(quote, col_obj, INTEL_SGX_ROOT_CA_DER, int(at.timestamp())),
        ),
        ("tdx: enclavia verify (collateral bytes)", lambda: verify_tdx(quote, collateral=collateral, now=at)),
        (
            "tdx: verify_evidence dispatcher",
            lambda: verify_evidence(Tee.TDX, quote, now=at, collateral=collateral),
        ),
        (
            "nvidia: verify, no chain cache",
            lambda: verify_gpu(report, cert_chain_pem=chain, nonce=None, now=gpu_at),
        ),
        (
            "nvidia: verify, chain cache warm",
            lambda: verify_gpu(report, cert_chain_pem=chain, nonce=None, now=gpu_at, cache=cache),
        ),
        (
            "nvidia: 8xH100 JSON list, cache warm",
            lambda: verify_evidence_list(ppcie, nonce=None, now=gpu_at, cache=cache),
        ),
    ]
    results = {}
    base = None
    print(f"{'case':45} {'p50 ms':>8} {'p99 ms':>8} {'x floor':>8}")
    for name, fn in rows:
        p50, p99 = measure(fn, args.n)
        if base is None:
            base = p50
        results[name] = {"p50_ms": round(p50, 3), "p99_ms": round(p99, 3)}
        ratio = f"{p50 / base:8.2f}" if name.startswith("tdx") else f"{'':>8}"
        print(f"{name:45} {p50:8.3f} {p99:8.3f} {ratio}")
    tdx_p50 = results["tdx: enclavia verify (collateral bytes)"]["p50_ms"]
    print(f"\nTDX warm p50 {tdx_p50} ms (target <= 2 ms): {'OK' if tdx_p50 <= 2.0 else 'OVER'}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
