"""Complete key releases per second: challenge, attest (simulated evidence), release; SQLite and PostgreSQL.

    .venv/bin/python benchmarks/broker_release.py [--seconds 10] [--concurrency 32] [--workers 2]
                                                  [--stores sqlite,postgresql] [--mode http,inprocess]

http:       `enclavia broker serve --workers N` as real processes; a client process with `concurrency` asyncio
            tasks, each looping over the three HTTP calls (it also plays the enclaves: it builds a simulated
            attestation bundle for every challenge, and opens every release with the enclave's HPKE key).
inprocess:  the same three calls on BrokerService from `concurrency` threads: no HTTP, no event loop. The
            difference is the cost of the HTTP layer on this machine.
ceiling:    the same client against three no-op FastAPI routes on the same server stack: the most complete
            flows per second this machine's HTTP stack (uvicorn/h11, httpx) allows, whatever the broker does.

One release = one complete flow (3 round trips, 3 audit records). Latency is per complete flow.
Target (issue 4): >= 500 releases/s and p99 < 50 ms on PostgreSQL at concurrency 32.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.broker_support import (  # noqa: E402
    ADMIN_TOKEN,
    PgSchemas,
    make_enclave,
    policy_text,
)
from tests.support import free_port  # noqa: E402

from enclavia.crypto.signing import SigningKey  # noqa: E402

RULES = "secrets:\n  - path: models/*\n    allow: [good-build]\n    condition: '!claims.debug'\n"
SECRET = b"\x42" * 32


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def _summary(name: str, latencies: list[float], seconds: float, errors: int) -> dict[str, Any]:
    return {
        "config": name,
        "releases": len(latencies),
        "per_s": len(latencies) / seconds,
        "p50_ms": _pct(latencies, 50) * 1000,
        "p99_ms": _pct(latencies, 99) * 1000,
        "mean_ms": (statistics.fmean(latencies) * 1000) if latencies else float("nan"),
        "errors": errors,
    }


# -- HTTP -----------------------------------------------------------------------------------------


def _start_broker(db_url: str, home: Path, policy: str, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    (home / "policy.yaml").write_text(policy)
    env = {**os.environ, "ENCLAVIA_BROKER_ADMIN_TOKEN": ADMIN_TOKEN, "ENCLAVIA_HOME": str(home)}
    cmd = [
        sys.executable,
        "-m",
        "enclavia.cli.main",
        "broker",
        "serve",
        "--db",
        db_url,
        "--keystore",
        f"file:{home / 'root.key'}",
        "--listen",
        f"127.0.0.1:{port}",
        "--policy",
        str(home / "policy.yaml"),
        "--workers",
        str(workers),
        "--challenge-rate",  # one client source drives the whole load: lift the per-source limit
        "1000000",
        "--challenge-burst",
        "1000000",
    ]
    log = (home / "broker.log").open("wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("broker did not start:\n" + (home / "broker.log").read_text()[-2000:])


async def _http_load(
    url: str, platform: SigningKey, concurrency: int, seconds: float, warmup: float
) -> dict[str, Any]:
    from enclavia.crypto.kbs import open_secret, release_aad

    enclaves = [make_enclave(platform) for _ in range(concurrency)]
    latencies: list[float] = []
    errors = 0
    start = time.monotonic()
    measure_from, stop_at = start + warmup, start + warmup + seconds
    limits = httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency * 2)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as http:

        async def worker(i: int) -> None:
            nonlocal errors
            enclave = enclaves[i]
            while (t0 := time.monotonic()) < stop_at:
                try:
                    nonce = (await http.post("/kbs/v1/challenge")).json()["nonce"]
                    bundle = enclave.attestation_bundle(bytes.fromhex(nonce)).to_json()
                    r = await http.post("/kbs/v1/attest", json={"bundle": bundle})
                    token = r.json()["token"]
                    r = await http.get(
                        "/kbs/v1/secrets/models/bench", headers={"authorization": f"Bearer {token}"}
                    )
                    out = r.json()
                    aad = release_aad(
                        out["path"],
                        out["version"],
                        out["policy_revision"],
                        out["jti"],
                        out.get("current_version"),
                    )
                    value = open_secret(
                        enclave.gateway_key.private_key,
                        base64.b64decode(out["enc"]),
                        base64.b64decode(out["ciphertext"]),
                        aad,
                    )
                    assert value == SECRET
                except Exception:
                    errors += 1
                    continue
                t1 = time.monotonic()
                if t0 >= measure_from and t1 <= stop_at:
                    latencies.append(t1 - t0)

        await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return {"latencies": latencies, "errors": errors}


def run_http(store: str, db_url: str, concurrency: int, seconds: float, workers: int) -> dict[str, Any]:
    platform = SigningKey.generate()
    measurement = make_enclave(platform).manifest_digest
    with tempfile.TemporaryDirectory(prefix="bench-broker-") as tmp:
        home = Path(tmp)
        proc, url = _start_broker(
            db_url, home, policy_text(platform, measurement, secrets_yaml=RULES), workers
        )
        try:
            r = httpx.post(
                url + "/kbs/v1/admin/secrets/models/bench",
                json={"value": base64.b64encode(SECRET).decode()},
                headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
            )
            assert r.status_code == 201, r.text
            res = asyncio.run(_http_load(url, platform, concurrency, seconds, warmup=2.0))
        finally:
            proc.terminate()
            proc.wait(15)
    return _summary(f"http {store} (broker workers={workers})", res["latencies"], seconds, res["errors"])


# -- HTTP ceiling ----------------------------------------------------------------------------------


def noop_app() -> Any:
    """uvicorn factory: three no-op routes shaped like the KBS ones (the machine's HTTP ceiling)."""
    from fastapi import FastAPI
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import Response

    app = FastAPI()

    def work() -> bytes:
        return b'{"nonce":"00","token":"t"}'

    @app.post("/kbs/v1/challenge")
    @app.post("/kbs/v1/attest")
    @app.get("/kbs/v1/secrets/models/bench")
    async def noop() -> Response:
        return Response(await run_in_threadpool(work), media_type="application/json")

    return app


async def _ceiling_load(url: str, concurrency: int, seconds: float, warmup: float) -> dict[str, Any]:
    latencies: list[float] = []
    start = time.monotonic()
    measure_from, stop_at = start + warmup, start + warmup + seconds
    limits = httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency * 2)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as http:

        async def worker() -> None:
            while (t0 := time.monotonic()) < stop_at:
                await http.post("/kbs/v1/challenge")
                await http.post("/kbs/v1/attest", content=b"{}")
                await http.get("/kbs/v1/secrets/models/bench")
                t1 = time.monotonic()
                if t0 >= measure_from and t1 <= stop_at:
                    latencies.append(t1 - t0)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {"latencies": latencies, "errors": 0}


def run_ceiling(concurrency: int, seconds: float, workers: int) -> dict[str, Any]:
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "--app-dir", str(REPO / "benchmarks"), "--factory"]
    cmd += [
        "broker_release:noop_app",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(cmd)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.post(url + "/kbs/v1/challenge", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        res = asyncio.run(_ceiling_load(url, concurrency, seconds, warmup=2.0))
    finally:
        proc.terminate()
        proc.wait(15)
    return _summary(f"http ceiling: 3 no-op requests (workers={workers})", res["latencies"], seconds, 0)


# -- in-process ------------------------------------------------------------------------------------


def run_inprocess(store: str, db_url: str, concurrency: int, seconds: float) -> dict[str, Any]:
    from enclavia.broker.service import BrokerConfig, BrokerService

    platform = SigningKey.generate()
    enclaves = [make_enclave(platform) for _ in range(concurrency)]
    with tempfile.TemporaryDirectory(prefix="bench-broker-") as tmp:
        config = BrokerConfig(
            db_url=db_url,
            keystore=f"file:{Path(tmp) / 'root.key'}",
            bootstrap_policy=policy_text(platform, enclaves[0].manifest_digest, secrets_yaml=RULES),
            challenge_rate=1e9,
            challenge_burst=1e9,
        )
        service = BrokerService(config)
        assert service.start()
        service.put_secret("models/bench", SECRET, rotate=False)
        latencies: list[float] = []
        errors = 0
        lock = threading.Lock()
        start = time.monotonic()
        measure_from, stop_at = start + 2.0, start + 2.0 + seconds

        def worker(i: int) -> None:
            nonlocal errors
            enclave = enclaves[i]
            while (t0 := time.monotonic()) < stop_at:
                try:
                    nonce = service.challenge()["nonce"]
                    bundle = enclave.attestation_bundle(bytes.fromhex(nonce)).to_json()
                    token = service.attest(json.dumps({"bundle": bundle}).encode())["token"]
                    service.release("models/bench", "Bearer " + token)
                except Exception:
                    with lock:
                        errors += 1
                    continue
                t1 = time.monotonic()
                if t0 >= measure_from and t1 <= stop_at:
                    with lock:
                        latencies.append(t1 - t0)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        service.close()
    return _summary(f"in-process {store}", latencies, seconds, errors)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--stores", default="sqlite,postgresql")
    ap.add_argument("--mode", default="ceiling,http,inprocess")
    args = ap.parse_args()
    schemas = PgSchemas()
    results = []
    try:
        if "ceiling" in args.mode.split(","):
            res = run_ceiling(args.concurrency, args.seconds, args.workers)
            results.append(res)
            print(
                f"{res['config']:<40} {res['per_s']:8.1f} flows/s   p99 {res['p99_ms']:7.1f} ms", flush=True
            )
        for store in args.stores.split(","):
            for mode in args.mode.split(","):
                if mode == "ceiling":
                    continue
                if store == "sqlite":
                    db_url = f"sqlite:///{tempfile.mkdtemp(prefix='bench-sqlite-')}/broker.db"
                else:
                    db_url = schemas.new()
                if mode == "http":
                    res = run_http(store, db_url, args.concurrency, args.seconds, args.workers)
                else:
                    res = run_inprocess(store, db_url, args.concurrency, args.seconds)
                results.append(res)
                print(
                    f"{res['config']:<40} {res['per_s']:8.1f} releases/s   p50 {res['p50_ms']:7.1f} ms   "
                    f"p99 {res['p99_ms']:7.1f} ms   errors {res['errors']}",
                    flush=True,
                )
    finally:
        schemas.drop_all()
    print()
    print(
        f"concurrency {args.concurrency}, {args.seconds:.0f} s measured after 2 s warm-up, "
        f"{os.cpu_count()} CPUs"
    )
    print("| configuration | releases/s | p50 ms | p99 ms | errors |")
    print("|---|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['config']} | {r['per_s']:.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['errors']} |")


if __name__ == "__main__":
    main()
