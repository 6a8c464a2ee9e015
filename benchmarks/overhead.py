"""Plain vs confidential, same model, same machine, same run: p50/p99 latency, throughput, ratios.

    .venv/bin/python benchmarks/overhead.py [--requests N] [--out docs/performance.md]

Plain: a FastAPI JSON endpoint serving the model. Confidential: enclavia end to end (client OHTTP
encapsulation, host relay, enclave process over the Unix socket, inner route, back, decapsulation).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support import ensure_model, free_port, start_served  # noqa: E402


def _features() -> dict[str, float]:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    return {str(n): float(v) for n, v in zip(data.feature_names, data.data[0], strict=True)}


def _run(make_call: Callable[[], Callable[[], None]], concurrency: int, per_worker: int) -> dict[str, float]:
    latencies: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        call = make_call()
        for _ in range(10):  # warm-up
            call()
        mine = []
        for _ in range(per_worker):
            t = time.perf_counter()
            call()
            mine.append(time.perf_counter() - t)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    latencies.sort()
    return {
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "rps": len(latencies) / wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000, help="requests per scenario")
    parser.add_argument("--out", type=Path, default=None, help="append a markdown table to this file")
    args = parser.parse_args()
    from enclavia.client.sdk import Client
    from enclavia.policy.document import parse_policy

    features = _features()
    body = json.dumps({"features": features}).encode()
    model_dir = ensure_model()
    port = free_port()
    plain = subprocess.Popen([sys.executable, str(REPO / "benchmarks" / "plain_server.py"), str(port), str(model_dir)])
    with tempfile.TemporaryDirectory() as tmp:
        served = start_served(Path(tmp))
        policy = parse_policy(served.policy_text)
        try:
            _wait(f"http://127.0.0.1:{port}")
            rows = []
            for conc in (1, 8):
                n = max(args.requests // conc, 50)

                def plain_call() -> Callable[[], None]:
                    c = httpx.Client()
                    url = f"http://127.0.0.1:{port}/v1/predict/clinical-risk"
                    return lambda: c.post(url, content=body, headers={"content-type": "application/json"}).json()

                def conf_call() -> Callable[[], None]:
                    c = Client(served.url, policy)
                    c.attest()
                    return lambda: c.predict("clinical-risk", features)

                p = _run(plain_call, conc, n)
                c = _run(conf_call, conc, n)
                rows.append((conc, p, c))
        finally:
            served.stop()
            plain.terminate()
            plain.wait()
    table = _table(rows, len(body))
    print(table)
    if args.out:
        with args.out.open("a") as f:
            f.write(table + "\n")


def _wait(url: str) -> None:
    for _ in range(200):
        try:
            httpx.get(url + "/docs", timeout=0.5)
            return
        except httpx.HTTPError:
            time.sleep(0.05)


def _table(rows: list[tuple[int, dict[str, float], dict[str, float]]], size: int) -> str:
    lines = [
        f"clinical-risk predict, request body {size} bytes, {os.cpu_count()} CPUs, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        "| concurrency | plain p50 ms | conf. p50 ms | added p50 ms | p50 ratio | plain p99 ms | conf. p99 ms"
        " | p99 ratio | plain req/s | conf. req/s | throughput ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for conc, p, c in rows:
        lines.append(
            f"| {conc} | {p['p50_ms']:.3f} | {c['p50_ms']:.3f} | {c['p50_ms'] - p['p50_ms']:.3f} "
            f"| {c['p50_ms'] / p['p50_ms']:.2f} | {p['p99_ms']:.3f} | {c['p99_ms']:.3f} "
            f"| {c['p99_ms'] / p['p99_ms']:.2f} | {p['rps']:.0f} | {c['rps']:.0f} | {c['rps'] / p['rps']:.2f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
