"""Plain vs confidential, same models, same machine, same run: p50/p99 latency, throughput, ratios.

    .venv/bin/python benchmarks/overhead.py [--requests N] [--out docs/performance.md]

Plain: a FastAPI JSON endpoint serving the model in one process. Confidential: enclavia end to end
(client OHTTP encapsulation, host relay, enclave process over the Unix socket, inner route, back,
decapsulation). Scenarios: the clinical-risk classifier (about 1 KiB request) and all-MiniLM-L6-v2
embeddings of a 1 KiB clinical paragraph.
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
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support import ensure_model, free_port, start_served  # noqa: E402

PARAGRAPH = (
    "Discharge summary. 67-year-old patient admitted with community-acquired pneumonia, treated with "
    "ceftriaxone and azithromycin, improving oxygen saturation on room air by day three. History of type 2 "
    "diabetes managed with metformin, hypertension on lisinopril, and chronic kidney disease stage 3a. "
    "Follow-up chest radiograph in six weeks; primary care visit within seven days to review glucose "
    "control and renal function. Counselled on smoking cessation and vaccination. "
) * 2


def _features() -> dict[str, float]:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    return {str(n): float(v) for n, v in zip(data.feature_names, data.data[0], strict=True)}


def _run(make_call: Callable[[], Callable[[], Any]], concurrency: int, per_worker: int) -> dict[str, float]:
    latencies: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(concurrency + 1)

    def worker() -> None:
        call = make_call()
        for _ in range(5):  # warm-up
            call()
        barrier.wait()
        mine = []
        for _ in range(per_worker):
            t = time.perf_counter()
            call()
            mine.append(time.perf_counter() - t)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    latencies.sort()
    return {
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[max(int(len(latencies) * 0.99) - 1, 0)] * 1000,
        "rps": len(latencies) / wall,
    }


def _wait(url: str) -> None:
    for _ in range(600):
        try:
            httpx.get(url + "/docs", timeout=0.5)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit("plain server did not start")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000, help="classifier requests per scenario")
    parser.add_argument("--embedding-requests", type=int, default=300)
    parser.add_argument("--no-embeddings", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="append the markdown table to this file")
    args = parser.parse_args()
    from enclavia.client.sdk import Client
    from enclavia.policy.document import parse_policy

    embeddings = not args.no_embeddings
    features = _features()
    predict_body = json.dumps({"features": features}).encode()
    emb_body = json.dumps({"input": PARAGRAPH, "model": "all-minilm-l6-v2"}).encode()
    model_dir = ensure_model()
    port = free_port()
    plain_url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, str(REPO / "benchmarks" / "plain_server.py"), str(port), str(model_dir)]
    plain = subprocess.Popen(cmd + (["--embeddings"] if embeddings else []))
    rows: list[tuple[str, int, dict[str, float], dict[str, float]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        served = start_served(Path(tmp), embeddings=embeddings)
        policy = parse_policy(served.policy_text)
        try:
            _wait(plain_url)
            scenarios: list[tuple[str, str, bytes, Callable[[Client], Any], int]] = [
                (
                    "classifier",
                    "/v1/predict/clinical-risk",
                    predict_body,
                    lambda c: c.predict("clinical-risk", features),
                    args.requests,
                ),
            ]
            if embeddings:
                scenarios.append(
                    (
                        "embeddings",
                        "/v1/embeddings",
                        emb_body,
                        lambda c: c.embeddings(PARAGRAPH),
                        args.embedding_requests,
                    )
                )
            for name, path, body, conf, total in scenarios:
                for conc in (1, 8):
                    n = max(total // conc, 20)

                    def plain_call(path: str = path, body: bytes = body) -> Callable[[], Any]:
                        c = httpx.Client()
                        hdr = {"content-type": "application/json"}
                        return lambda: c.post(plain_url + path, content=body, headers=hdr).json()

                    def conf_call(conf: Callable[[Client], Any] = conf) -> Callable[[], Any]:
                        c = Client(served.url, policy)
                        c.attest()
                        return lambda: conf(c)

                    rows.append((name, conc, _run(plain_call, conc, n), _run(conf_call, conc, n)))
        finally:
            served.stop()
            plain.terminate()
            plain.wait()
    table = _table(rows, len(predict_body), len(emb_body))
    print(table)
    if args.out:
        with args.out.open("a") as f:
            f.write(table + "\n")


def _table(rows: list[tuple[str, int, dict[str, float], dict[str, float]]], psize: int, esize: int) -> str:
    lines = [
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} CPUs; "
        f"classifier request {psize} bytes of JSON, embeddings request {esize} bytes.",
        "",
        "| model | conc. | plain p50 ms | conf. p50 ms | added p50 ms | p50 ratio | plain p99 ms"
        " | conf. p99 ms | p99 ratio | plain req/s | conf. req/s | throughput ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, conc, p, c in rows:
        lines.append(
            f"| {name} | {conc} | {p['p50_ms']:.3f} | {c['p50_ms']:.3f} "
            f"| {c['p50_ms'] - p['p50_ms']:+.3f} "
            f"| {c['p50_ms'] / p['p50_ms']:.2f} | {p['p99_ms']:.3f} | {c['p99_ms']:.3f} "
            f"| {c['p99_ms'] / p['p99_ms']:.2f} | {p['rps']:.0f} | {c['rps']:.0f} "
            f"| {c['rps'] / p['rps']:.2f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
