"""Enclave memory and cold start against the issue 10 budgets, through `enclavia fit`'s machinery.

    .venv/bin/python benchmarks/memory_budget.py [--runs 5] [--no-embeddings] [--no-chat] [--out FILE]
    .venv/bin/python benchmarks/memory_budget.py --calibrate     # the constants of enclavia.enclave.memory

Budgets: enclave peak memory at most 200 MiB for the bundled classifier, 600 MiB with the embedding model,
800 MiB with the bundled GGUF chat model; cold start (enclave process start to first answer) at most 2 s for
the classifier. Each scenario runs a real `enclavia serve` with `--enclave-memory` set to the budget; if the
enclave refuses to start there (its estimate is over the budget), it is run again under 2 GiB so the real peak
is still measured. Peak memory is the enclave process's VmHWM (resident, including library code pages).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support import chat_model_path, ensure_model  # noqa: E402

MIB = 1 << 20
FALLBACK = 2048 * MIB


def fit(model: str, memory: int, requests: int) -> dict[str, Any]:
    from enclavia.cli.fit import generated_samples, resolve_target, run_fit

    with tempfile.TemporaryDirectory(prefix="enclavia-budget-") as tmp:
        work = Path(tmp)
        target = resolve_target(model, ensure_model(), work)
        return run_fit(target, generated_samples(target, requests), memory, work=work)


def scenario(name: str, model: str, budget_mib: int, requests: int) -> dict[str, Any]:
    report = fit(model, budget_mib * MIB, requests)
    row: dict[str, Any] = {"scenario": name, "budget_mib": budget_mib, "at_budget": report}
    if report.get("refused"):
        row["measured"] = fit(model, FALLBACK, requests)
    return row


def cold_starts(runs: int) -> list[dict[str, Any]]:
    return [fit("clinical-risk", 200 * MIB, 20) for _ in range(runs)]


def table(rows: list[dict[str, Any]], starts: list[dict[str, Any]]) -> str:
    lines = [
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} CPUs (shared), "
        "`--enclave-memory` = the budget, data rlimit.",
        "",
        "| enclave serving | budget MiB | at budget | estimated need MiB | peak resident MiB | within budget "
        "| cold start s | plain p50 ms | conf. p50 ms | p50 ratio |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        at = row["at_budget"]
        measured = row.get("measured", at)
        need = (at.get("refused") or {}).get("need_bytes") or at.get("estimated_need_bytes") or 0
        peak = measured.get("peak_memory_bytes", 0) / MIB
        verdict = (
            "starts, fits"
            if at.get("fits")
            else ("refused at start" if at.get("refused") else "starts, over")
        )
        p, c = measured.get("plain", {}), measured.get("confidential", {})
        lines.append(
            f"| {row['scenario']} | {row['budget_mib']} | {verdict} | {need / MIB:.0f} | {peak:.0f} "
            f"| {'yes' if peak <= row['budget_mib'] else 'NO'} | {measured.get('cold_start_s', '-')} "
            f"| {p.get('p50_ms', '-')} | {c.get('p50_ms', '-')} "
            f"| {measured.get('ratio', {}).get('p50', '-')} |"
        )
    if starts:
        cs = [s["cold_start_s"] for s in starts if "cold_start_s" in s]
        ready = [s["enclave_ready_s"] for s in starts if s.get("enclave_ready_s") is not None]
        lines += [
            "",
            f"Classifier cold start over {len(cs)} fresh starts (budget 2 s): enclave process start to first "
            f"answer median {statistics.median(cs):.3f} s, max {max(cs):.3f} s; of which process start to "
            f"socket ready median {statistics.median(ready):.3f} s, max {max(ready):.3f} s.",
        ]
    return "\n".join(lines)


# -- calibration ---------------------------------------------------------------------------------

_PROBE = r"""
import json, os, sys
from enclavia.enclave.memory import pin_thread_pools, read_status
pin_thread_pools()
os.environ.setdefault("HF_HUB_OFFLINE", "1")
import enclavia.enclave.boot, enclavia.enclave.server  # the enclave's own code: the baseline
def snap():
    s = read_status()
    return {"rss": s.rss, "data": s.data, "vas": s.vm_size, "peak_rss": s.peak_rss}
out = {"base": snap()}
for step in sys.argv[1:]:
    if step == "torch": import torch
    elif step == "transformers": import transformers; from transformers import AutoModel, AutoTokenizer
    elif step == "spacy": import spacy
    elif step == "presidio": import presidio_analyzer
    elif step == "llama.cpp": import xllamacpp
    elif step == "embeddings":
        from enclavia.inference.embeddings import EmbeddingModel
        m = EmbeddingModel(); m.embed(["Discharge summary: pneumonia, treated, improving. " * 20] * 4)
    elif step == "ner":
        from enclavia.protect.detect import Detector
        Detector().detect("John Smith, 12 Main Street, Springfield, 555-123-4567. " * 10)
    elif step == "gguf":
        from enclavia.inference.chat import ChatModel, GenerationParams
        c = ChatModel(__import__("pathlib").Path(os.environ["GGUF"]))
        c.generate("User: Say hello.\nAssistant:", GenerationParams(max_tokens=16))
    out[step] = snap()
print(json.dumps(out))
"""


def calibrate() -> None:
    env = {**os.environ, "GGUF": str(chat_model_path())}
    chains = [
        ["torch", "transformers", "embeddings"],
        ["torch", "spacy", "presidio", "ner"],
        ["llama.cpp", "gguf"],
    ]
    for chain in chains:
        done = subprocess.run(
            [sys.executable, "-c", _PROBE, *chain], capture_output=True, text=True, env=env, check=True
        )
        steps = json.loads(done.stdout.strip().splitlines()[-1])
        prev = steps["base"]
        print(
            f"base: rss {prev['rss'] / MIB:.0f} data {prev['data'] / MIB:.0f} vas {prev['vas'] / MIB:.0f} MiB"
        )
        for step in chain:
            cur = steps[step]
            delta = {k: (cur[k] - prev[k]) / MIB for k in ("rss", "data", "vas")}
            if step in {"embeddings", "ner", "gguf"}:
                delta["rss"] = (cur["peak_rss"] - prev["rss"]) / MIB  # load + a request: the peak counts
            rss, data, vas = delta["rss"], delta["data"], delta["vas"]
            print(f"  {step:22s} rss {rss:+7.0f}  data {data:+7.0f}  vas {vas:+7.0f} MiB")
            prev = cur


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--runs", type=int, default=5, help="fresh classifier starts for the cold-start figure"
    )
    parser.add_argument("--no-embeddings", action="store_true")
    parser.add_argument("--no-chat", action="store_true")
    parser.add_argument("--calibrate", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="append the markdown to this file")
    args = parser.parse_args()
    if args.calibrate:
        calibrate()
        return
    rows = [scenario("clinical-risk classifier", "clinical-risk", 200, 200)]
    if not args.no_embeddings:
        rows.append(scenario("all-MiniLM-L6-v2 embeddings", "all-minilm-l6-v2", 600, 40))
    if not args.no_chat:
        rows.append(scenario("Gemma 3 270M Q4_K_M chat (GGUF)", str(chat_model_path()), 800, 6))
    starts = cold_starts(args.runs)
    text = table(rows, starts)
    print(text)
    print(json.dumps({"rows": rows, "cold_starts": starts}, default=str)[:2000], file=sys.stderr)
    if args.out:
        with args.out.open("a") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
