"""Load: 100 concurrent attestations, then a sustained mixed load, with errors and memory over time.

    .venv/bin/python benchmarks/load.py [--duration 300] [--concurrency 4] [--attestations 100]
                                        [--no-embeddings] [--sample-every 5] [--out load.json]

Everything runs on loopback, as real processes: `enclavia serve --embeddings --classification ...` (host and
enclave) and `enclavia broker serve` on SQLite. This process is the clients.

1. Attestation burst: ``--attestations`` client threads, released together by a barrier, each attest with a
   fresh nonce and verify the bundle completely (evidence, binding, policy). Wall time, p50/p99, errors.
2. Sustained mix for ``--duration`` seconds, ``--concurrency`` threads, each a loop bounded by the deadline
   (and a hard cap on iterations): classifier predictions (OHTTP to the enclave), embeddings, RAG queries
   over documents ingested beforehand (encrypted store on the host, index in the enclave), and complete key
   releases against the broker (challenge, attest with simulated evidence, release, open). Every response
   is checked (a wrong answer counts as an error).
3. Memory: RSS of the host, enclave and broker processes sampled every ``--sample-every`` seconds. After a
   warm-up (the first fifth of the run), "flat" means the last third's mean RSS is within max(8 MiB, 3 %)
   of the first third's, per process; the least-squares slope (MiB/min) is reported as well.

Without --no-embeddings the enclave loads all-MiniLM-L6-v2 (about 600 MiB): embeddings and RAG join the
mix. The chat model is not loaded (llama.cpp would take the machine's two cores by itself).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.broker_support import ADMIN_TOKEN, make_enclave, policy_text, start_broker  # noqa: E402
from tests.support import Served, start_served  # noqa: E402

from enclavia.client.sdk import Client  # noqa: E402
from enclavia.crypto.bhttp import Request, decode_response, encode_request  # noqa: E402
from enclavia.crypto.hpke import DEFAULT_SUITE  # noqa: E402
from enclavia.crypto.kbs import open_secret, release_aad  # noqa: E402
from enclavia.crypto.ohttp import REQUEST_MEDIA_TYPE, encapsulate_request  # noqa: E402
from enclavia.crypto.signing import SigningKey  # noqa: E402
from enclavia.errors import EnclaviaError, UnknownKeyIdError  # noqa: E402
from enclavia.policy.document import Policy, parse_policy  # noqa: E402

TOKEN = "tok-load-" + "7" * 24
SECRET = b"\x42" * 32
RULES = "secrets:\n  - path: models/*\n    allow: [good-build]\n    condition: '!claims.debug'\n"
MAX_ITERATIONS = 1_000_000  # a hard bound on every loop, whatever the clock says
DOCS = [
    ("cardio-1", "Cardiology", "Atrial fibrillation with rapid ventricular response; started apixaban."),
    (
        "onco-1",
        "Oncology",
        "Chemotherapy cycle three tolerated; neutrophils recovering; next cycle in 3 weeks.",
    ),
    (
        "renal-1",
        "Nephrology",
        "Chronic kidney disease stage 3a; eGFR 52; continue ACE inhibitor, recheck labs.",
    ),
    ("pulm-1", "Pulmonology", "Community-acquired pneumonia treated with ceftriaxone; saturations normal."),
    ("endo-1", "Endocrinology", "Type 2 diabetes, HbA1c 7.9 percent; metformin increased; diet counselling."),
]
QUERIES = ["anticoagulation for atrial fibrillation", "kidney function", "pneumonia antibiotics", "diabetes"]


def _features() -> list[dict[str, float]]:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    return [
        {str(n): float(v) for n, v in zip(data.feature_names, row, strict=True)} for row in data.data[:50]
    ]


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def _rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


# -- processes ----------------------------------------------------------------------------------------


def _classification(home: Path) -> Path:
    import yaml

    doc = yaml.safe_load((REPO / "src/enclavia/protect/default-classification.yaml").read_text())
    doc["requesters"] = [
        {
            "id": "load",
            "tenant": "hospital",
            "clearance": ["PHI", "PCI", "PII", "CONFIDENTIAL"],
            "actions": ["ingest", "query"],
            "token_sha256": hashlib.sha256(TOKEN.encode()).hexdigest(),
        }
    ]
    path = home / "classification.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@dataclass
class World:
    served: Served
    policy: Policy
    broker_url: str
    broker_pid: int
    platform: SigningKey
    embeddings: bool
    stop: Callable[[], None]


def start(home: Path, embeddings: bool) -> World:
    (home / "serve").mkdir()
    served = start_served(
        home / "serve", embeddings=embeddings, classification=_classification(home) if embeddings else None
    )
    platform = SigningKey.generate()
    measurement = make_enclave(platform).manifest_digest
    (home / "broker").mkdir()
    broker = start_broker(
        home / "broker",
        f"sqlite:///{home / 'broker' / 'broker.db'}",
        policy_text(platform, measurement, secrets_yaml=RULES),
        extra=("--challenge-rate", "1000000", "--challenge-burst", "1000000"),  # one source: the load client
    )
    r = httpx.post(
        broker.url + "/kbs/v1/admin/secrets/models/load",
        json={"value": base64.b64encode(SECRET).decode()},
        headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=30,
    )
    assert r.status_code == 201, r.text

    def stop() -> None:
        served.stop()
        broker.stop()

    return World(
        served, parse_policy(served.policy_text), broker.url, broker.proc.pid, platform, embeddings, stop
    )


# -- client operations -----------------------------------------------------------------------------------


class Worker:
    """One client thread's state: an attested SDK client, a broker session, its own simulated enclave."""

    def __init__(self, world: World, rows: list[dict[str, float]], seed: int) -> None:
        self.world = world
        self.rows = rows
        self.rng = random.Random(seed)
        self.client = Client(world.served.url, world.policy, timeout=120)
        self.client.attest()
        self.http = httpx.Client(timeout=120)
        self.broker = httpx.Client(base_url=world.broker_url, timeout=60)
        self.enclave = make_enclave(world.platform)

    def predict(self) -> None:
        out = self.client.predict("clinical-risk", self.rng.choice(self.rows))
        if not isinstance(out.get("class"), str) or not 0 <= out["probability"] <= 1:
            raise AssertionError("prediction shape")

    def embeddings(self) -> None:
        out = self.client.embeddings(["chest pain radiating to the left arm", "stable angina"])
        if len(out["data"]) != 2 or len(out["data"][0]["embedding"]) != 384:
            raise AssertionError("embedding shape")

    def _inner(self, path: str, body: Any) -> tuple[int, Any]:
        headers = (("content-type", "application/json"), ("authorization", f"Bearer {TOKEN}"))
        inner = encode_request(Request("POST", "https", "enclave", path, headers, json.dumps(body).encode()))
        for attempt in (0, 1):
            config = self.client.enclave.key_config
            message, ctx = encapsulate_request(config, inner, suite=DEFAULT_SUITE)
            resp = self.http.post(
                self.world.served.url + "/v1/gateway",
                content=message,
                headers={"content-type": REQUEST_MEDIA_TYPE},
            )
            if resp.status_code == 200:
                out = decode_response(ctx.decapsulate_response(resp.content))
                return out.status, json.loads(out.content)
            code = (
                resp.json().get("code")
                if resp.headers.get("content-type", "").startswith("application/")
                else ""
            )
            if code == UnknownKeyIdError.code and attempt == 0:
                self.client.attest()
                continue
            raise EnclaviaError(f"gateway {resp.status_code} {code}")
        raise AssertionError("unreachable")

    def ingest(self) -> None:
        docs = [{"id": d, "title": t, "text": x} for d, t, x in DOCS]
        status, out = self._inner("/v1/documents", {"documents": docs})
        if status != 200:
            raise EnclaviaError(f"ingest {status} {out.get('code')}")

    def rag(self) -> None:
        status, out = self._inner("/v1/rag/query", {"query": self.rng.choice(QUERIES), "k": 3})
        if status != 200 or not out.get("context"):
            raise AssertionError(f"rag {status}")

    def release(self) -> None:
        nonce = self.broker.post("/kbs/v1/challenge").json()["nonce"]
        bundle = self.enclave.attestation_bundle(bytes.fromhex(nonce)).to_json()
        r = self.broker.post("/kbs/v1/attest", json={"bundle": bundle})
        if r.status_code != 200:
            raise EnclaviaError(f"attest {r.status_code} {r.json().get('code')}")
        r = self.broker.get(
            "/kbs/v1/secrets/models/load", headers={"authorization": f"Bearer {r.json()['token']}"}
        )
        if r.status_code != 200:
            raise EnclaviaError(f"release {r.status_code} {r.json().get('code')}")
        out = r.json()
        value = open_secret(
            self.enclave.gateway_key.private_key,
            base64.b64decode(out["enc"]),
            base64.b64decode(out["ciphertext"]),
            release_aad(
                out["path"], out["version"], out["policy_revision"], out["jti"], out.get("current_version")
            ),
        )
        if value != SECRET:
            raise AssertionError("released secret differs")

    def close(self) -> None:
        self.client.close()
        self.http.close()
        self.broker.close()


# -- phases -------------------------------------------------------------------------------------------


def attestation_burst(world: World, n: int) -> dict[str, Any]:
    barrier = threading.Barrier(n + 1)
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    lock = threading.Lock()

    def one() -> None:
        client = Client(world.served.url, world.policy, timeout=120)
        try:
            barrier.wait()
            t0 = time.perf_counter()
            try:
                client.attest()
            except Exception as err:
                with lock:
                    errors[type(err).__name__] += 1
                return
            with lock:
                latencies.append(time.perf_counter() - t0)
        finally:
            client.close()

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join(300)
    wall = time.perf_counter() - start
    return {
        "attestations": n,
        "ok": len(latencies),
        "errors": dict(errors),
        "wall_s": round(wall, 2),
        "per_s": round(len(latencies) / wall, 1),
        "p50_ms": round(_pct(latencies, 50) * 1000, 1),
        "p99_ms": round(_pct(latencies, 99) * 1000, 1),
    }


@dataclass
class Sampler:
    pids: dict[str, Callable[[], int | None]]
    every: float
    samples: list[dict[str, float | None]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self, deadline: float) -> None:
        t0 = time.monotonic()
        for _ in range(MAX_ITERATIONS):
            now = time.monotonic()
            sample: dict[str, float | None] = {"t": now - t0}
            for name, pid in self.pids.items():
                p = pid()
                sample[name] = _rss_mib(p) if p else None
            self.samples.append(sample)
            if self._stop.wait(self.every) or time.monotonic() > deadline:
                return

    def stop(self) -> None:
        self._stop.set()

    def verdict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        rest = self.samples[max(1, len(self.samples) // 5) :]
        for name in self.pids:
            pts = [(s["t"], s[name]) for s in rest if s.get(name) is not None]
            if len(pts) < 6:
                out[name] = {"samples": len(pts)}
                continue
            third = len(pts) // 3
            first = statistics.fmean(v for _, v in pts[:third])  # type: ignore[misc]
            last = statistics.fmean(v for _, v in pts[-third:])  # type: ignore[misc]
            ts = [t for t, _ in pts]
            vs = [v for _, v in pts]
            slope = statistics.linear_regression(ts, vs).slope * 60  # type: ignore[arg-type]
            all_vs = [s[name] for s in self.samples if s.get(name) is not None]
            out[name] = {
                "start_mib": round(all_vs[0], 1),  # type: ignore[arg-type]
                "first_third_mib": round(first, 1),
                "last_third_mib": round(last, 1),
                "max_mib": round(max(all_vs), 1),  # type: ignore[type-var]
                "slope_mib_per_min": round(slope, 2),
                "flat": abs(last - first) <= max(8.0, 0.03 * first),
            }
        return out


def sustained(world: World, duration: float, concurrency: int, sample_every: float) -> dict[str, Any]:
    rows = _features()
    ops: list[tuple[str, float]] = [("predict", 0.55), ("release", 0.15)]
    if world.embeddings:
        ops += [("embeddings", 0.15), ("rag", 0.15)]
    names, weights = zip(*ops, strict=True)
    setup = Worker(world, rows, seed=0)
    if world.embeddings:
        setup.ingest()
    setup.close()

    counts: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    latencies: dict[str, list[float]] = {n: [] for n in names}
    lock = threading.Lock()
    deadline = time.monotonic() + duration

    def enclave_pid() -> int | None:
        try:
            return world.served.enclave_pid()
        except LookupError:
            return None

    sampler = Sampler(
        {"host": lambda: world.served.proc.pid, "enclave": enclave_pid, "broker": lambda: world.broker_pid},
        sample_every,
    )
    sampler_thread = threading.Thread(target=sampler.run, args=(deadline + sample_every,))
    sampler_thread.start()
    first_enclave = enclave_pid()

    def loop(i: int) -> None:
        w = Worker(world, rows, seed=i + 1)
        try:
            for _ in range(MAX_ITERATIONS):
                if time.monotonic() >= deadline:
                    return
                op = w.rng.choices(names, weights)[0]
                t0 = time.perf_counter()
                try:
                    getattr(w, op)()
                except Exception as err:
                    with lock:
                        errors[f"{op}: {type(err).__name__} {str(err)[:60]}"] += 1
                    continue
                dt = time.perf_counter() - t0
                with lock:
                    counts[op] += 1
                    latencies[op].append(dt)
        finally:
            w.close()

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(duration + 300)
    sampler.stop()
    sampler_thread.join(30)
    return {
        "duration_s": duration,
        "concurrency": concurrency,
        "operations": dict(counts),
        "total": sum(counts.values()),
        "per_s": round(sum(counts.values()) / duration, 1),
        "errors": dict(errors),
        "latency_ms": {
            op: {"p50": round(_pct(v, 50) * 1000, 1), "p99": round(_pct(v, 99) * 1000, 1)}
            for op, v in latencies.items()
            if v
        },
        "enclave_restarted": enclave_pid() != first_enclave,
        "memory": sampler.verdict(),
        "rss_samples": sampler.samples,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=300.0)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--attestations", type=int, default=100)
    ap.add_argument("--sample-every", type=float, default=5.0)
    ap.add_argument("--no-embeddings", action="store_true")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="enclavia-load-") as tmp:
        t0 = time.monotonic()
        world = start(Path(tmp), embeddings=not args.no_embeddings)
        print(f"started host, enclave and broker in {time.monotonic() - t0:.1f} s", flush=True)
        try:
            burst = attestation_burst(world, args.attestations)
            print("attestation burst:", json.dumps(burst), flush=True)
            load = sustained(world, args.duration, args.concurrency, args.sample_every)
        finally:
            world.stop()
    report = {"burst": burst, "sustained": {k: v for k, v in load.items() if k != "rss_samples"}}
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps({**report, "rss_samples": load["rss_samples"]}, indent=2))


if __name__ == "__main__":
    main()
