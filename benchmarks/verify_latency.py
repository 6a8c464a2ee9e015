"""Warm verification latency of the AWS Nitro and AMD SEV-SNP verifiers (target: p50 <= 1 ms each).

    .venv/bin/python benchmarks/verify_latency.py [--iterations N]

Warm = one ChainCache shared across calls, as a broker or client keeps it: the certificate chain is verified
once and then only its validity window is checked; every call still parses the evidence and verifies the
evidence signature (ECDSA P-384), which dominates. Cold numbers (no cache: full chain every time: two
RSA-4096 PSS verifications for SEV-SNP, four ECDSA P-384 for Nitro) are printed beside them for the
ratio. Vectors come from tests/assets/vectors, at the times SOURCE.md pins.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from enclavia.attestation.platforms.nitro import verify as nitro
from enclavia.attestation.platforms.sevsnp import verify as snp
from enclavia.crypto.pki import ChainCache

REPO = Path(__file__).resolve().parents[1]
VECTORS = REPO / "tests" / "assets" / "vectors"
TARGET_US = 1000.0


def measure(fn: Callable[[], object], iterations: int) -> list[float]:
    for _ in range(min(20, iterations)):
        fn()
    out = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e6)
    return out


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=1000)
    args = ap.parse_args()
    n = args.iterations

    doc = (VECTORS / "nitro/cape-js/spec_attestationDocument.cbor").read_bytes()
    nitro_at = datetime(2022, 9, 15, 17, 44, 24, tzinfo=UTC)
    report = (VECTORS / "snp/trustee/test-report.bin").read_bytes()
    vcek = (VECTORS / "snp/trustee/test-vcek.der").read_bytes()
    chain = (VECTORS / "snp/trustee/milan_ask_ark_asvk.pem").read_bytes()
    snp_at = datetime(2025, 6, 1, tzinfo=UTC)

    nitro_cache, snp_cache = ChainCache(), ChainCache()
    cases: list[tuple[str, Callable[[], object], int]] = [
        ("nitro  warm (cache)", lambda: nitro.verify(doc, now=nitro_at, cache=nitro_cache), n),
        ("sev-snp warm (cache)", lambda: snp.verify(report, now=snp_at, vcek_der=vcek, cache=snp_cache), n),
        (
            "sev-snp warm (cache, chain_pem)",
            lambda: snp.verify(report, now=snp_at, vcek_der=vcek, chain_pem=chain, cache=snp_cache),
            n,
        ),
        ("nitro  cold (no cache)", lambda: nitro.verify(doc, now=nitro_at), max(50, n // 10)),
        ("sev-snp cold (no cache)", lambda: snp.verify(report, now=snp_at, vcek_der=vcek), max(50, n // 10)),
    ]
    print(f"{'case':34} {'n':>6} {'p50 us':>9} {'p90 us':>9} {'mean us':>9}")
    results: dict[str, float] = {}
    for name, fn, iters in cases:
        xs = measure(fn, iters)
        results[name] = pct(xs, 0.5)
        print(f"{name:34} {iters:>6} {pct(xs, 0.5):>9.0f} {pct(xs, 0.9):>9.0f} {statistics.fmean(xs):>9.0f}")
    print()
    for warm, cold in (
        ("nitro  warm (cache)", "nitro  cold (no cache)"),
        ("sev-snp warm (cache)", "sev-snp cold (no cache)"),
    ):
        verdict = "OK" if results[warm] <= TARGET_US else "ABOVE TARGET"
        print(
            f"{warm.split()[0]:8} warm p50 {results[warm]:7.0f} us  target {TARGET_US:.0f} us: {verdict};"
            f"  cold/warm = {results[cold] / results[warm]:.1f}x"
        )
    print(f"cache hits: nitro {nitro_cache.hits}, sev-snp {snp_cache.hits}")


if __name__ == "__main__":
    main()
