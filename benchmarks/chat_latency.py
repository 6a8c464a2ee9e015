"""Chat: time to first token and tokens/s, llama.cpp called directly vs through the proxy and the enclave.

    .venv/bin/python benchmarks/chat_latency.py [--trials 5] [--max-tokens 32]

Same model file (the bundled Gemma 3 270M Q4_K_M GGUF), same prompt, greedy decoding (temperature 0, fixed
seed), same llama.cpp thread count, same run, trials interleaved (direct, confidential, direct, ...) so that
load from other work on the machine falls on both alike.

Direct: ``enclavia.inference.chat.ChatModel`` in this process, streaming callback; TTFT is the time from the
call to the first non-empty text piece. Confidential: the official ``openai`` client (stream=True) against
``enclavia proxy`` (attested once), which seals the request as chunked OHTTP to ``enclavia serve
--chat-model``; TTFT is the time from ``create()`` to the first non-empty content delta. Tokens/s counts the
pieces after the first over the time from the first to the last one (decode rate, without the prompt).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support import chat_model_path, free_port, start_served  # noqa: E402

# Greedy decoding of this prompt runs to max_tokens with the bundled model (no early stop), so the decode
# rate is measured over the same number of pieces on both paths.
MESSAGES = [
    {"role": "user", "content": "Write a detailed discharge summary for a patient treated for pneumonia."}
]


def _rate(times: list[float]) -> float:
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0


def direct_trial(model: object, max_tokens: int) -> tuple[float, float, int]:
    from enclavia.inference.chat import ChatModel, GenerationParams, build_prompt

    assert isinstance(model, ChatModel)
    prompt = build_prompt([(m["role"], m["content"]) for m in MESSAGES])
    params = GenerationParams(max_tokens=max_tokens, temperature=0.0, seed=7)
    times: list[float] = []
    start = time.perf_counter()
    model.generate(prompt, params, on_text=lambda t: times.append(time.perf_counter()) or True)
    return times[0] - start, _rate(times), len(times)


def proxied_trial(client: object, model_id: str, max_tokens: int) -> tuple[float, float, int]:
    import openai

    assert isinstance(client, openai.OpenAI)
    times: list[float] = []
    start = time.perf_counter()
    stream = client.chat.completions.create(
        model=model_id, messages=MESSAGES, max_tokens=max_tokens, temperature=0, seed=7, stream=True
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            times.append(time.perf_counter())
    return times[0] - start, _rate(times), len(times)


def enclave_inprocess(model: object) -> object:
    """The enclave's own code path (chunked OHTTP open, routing, OpenAI chat, sealing each piece) around
    the same in-process model, without processes or sockets: isolates the enclave-side cost."""
    from enclavia.attestation.manifest import ImageManifest
    from enclavia.enclave.core import Enclave
    from enclavia.enclave.routes import InnerApp
    from enclavia.inference.chat import ChatModel
    from enclavia.tee.simulated import SimulatedAttester, init_platform_key, load_platform_key

    assert isinstance(model, ChatModel)
    sim = Path(tempfile.mkdtemp(prefix="enclavia-chat-bench-sim-"))
    init_platform_key(sim)
    manifest = ImageManifest("bench", {}, (), {model.name: model.digest}, {})
    attester = SimulatedAttester(platform_key=load_platform_key(sim), measurement=manifest.digest())
    return Enclave(attester, manifest, InnerApp(models={}, chat=model), key_id=1)


def enclave_trial(enclave: object, model_id: str, max_tokens: int) -> tuple[float, float, int]:
    import json

    from enclavia.crypto.bhttp import Request, encode_request
    from enclavia.crypto.chunked_ohttp import encapsulate_chunked_request
    from enclavia.enclave.core import Enclave

    assert isinstance(enclave, Enclave)
    body = {"model": model_id, "messages": MESSAGES, "max_tokens": max_tokens, "temperature": 0, "seed": 7}
    content = json.dumps({**body, "stream": True}).encode()
    inner = Request(
        "POST", "https", "enclave", "/v1/chat/completions", (("content-type", "application/json"),), content
    )
    message, _ = encapsulate_chunked_request(enclave.gateway_key.config, encode_request(inner))
    times: list[float] = []
    start = time.perf_counter()
    enclave.open_stream(message)(lambda _: times.append(time.perf_counter()) or True)
    tokens = times[3:-3]  # after the nonce, the head and the role event; before finish, [DONE], final
    return tokens[0] - start, _rate(tokens), len(tokens)


def relay_round_trip(client: object, n: int = 30) -> float:
    """p50 of GET /v1/models through openai -> proxy -> host -> enclave and back (no generation)."""
    import openai

    assert isinstance(client, openai.OpenAI)
    client.models.list()
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        client.models.list()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def start_proxy(upstream: str, policy: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "enclavia.cli.main",
        "proxy",
        "--upstream",
        upstream,
        "--policy",
        str(policy),
    ]
    proc = subprocess.Popen(
        [*cmd, "--listen", f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).json().get("attested"):
                return proc, url
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("proxy did not attest")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=15)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import openai

    from enclavia.inference.chat import ChatModel

    path = chat_model_path()
    home = Path(tempfile.mkdtemp(prefix="enclavia-chat-bench-"))
    served = start_served(home, chat=True)
    proxy, url = start_proxy(served.url, home / "dev-policy.yaml")
    try:
        model = ChatModel(path, threads=args.threads)
        enclave = enclave_inprocess(model)
        client = openai.OpenAI(base_url=url + "/v1", api_key="local", max_retries=0, timeout=300)
        direct_trial(model, 4)  # warm-up every path
        enclave_trial(enclave, model.name, 4)
        proxied_trial(client, model.name, 4)
        rows: dict[str, list[tuple[float, float, int]]] = {"direct": [], "enclave": [], "proxied": []}
        for _ in range(args.trials):
            rows["direct"].append(direct_trial(model, args.max_tokens))
            rows["enclave"].append(enclave_trial(enclave, model.name, args.max_tokens))
            rows["proxied"].append(proxied_trial(client, model.name, args.max_tokens))
        relay = relay_round_trip(client)
    finally:
        proxy.terminate()
        proxy.wait(timeout=15)
        served.stop()

    def stat(name: str, i: int, fn: object = statistics.median) -> float:
        assert callable(fn)
        return float(fn(r[i] for r in rows[name]))

    labels = {
        "direct": "llama.cpp direct (in process)",
        "enclave": "enclave code path, in process (open, route, seal each piece)",
        "proxied": "openai -> proxy -> host -> enclave process",
    }
    tokens = {name: sorted({r[2] for r in rs}) for name, rs in rows.items()}
    print(f"model {model.name} ({model.digest[:16]}...), {args.trials} trials each, interleaved,")
    print(f"max_tokens {args.max_tokens}, llama.cpp threads {args.threads}, pieces per trial: {tokens}")
    print()
    print("| path | TTFT p50 ms | TTFT min ms | tokens/s p50 | tokens/s max |")
    print("|---|---|---|---|---|")
    for name, label in labels.items():
        ttft, ttft_min = stat(name, 0) * 1000, stat(name, 0, min) * 1000
        print(f"| {label} | {ttft:.1f} | {ttft_min:.1f} | {stat(name, 1):.2f} | {stat(name, 1, max):.2f} |")
    print()
    for name in ("enclave", "proxied"):
        added = (stat(name, 0) - stat("direct", 0)) * 1000
        added_min = (stat(name, 0, min) - stat("direct", 0, min)) * 1000
        ratio, ratio_max = stat(name, 1) / stat("direct", 1), stat(name, 1, max) / stat("direct", 1, max)
        print(
            f"{name}: added TTFT p50 {added:+.1f} ms, min {added_min:+.1f} ms (target <= 5 ms);"
            f" tokens/s ratio p50 {ratio:.3f}, max {ratio_max:.3f} (target >= 0.97)"
        )
    print(f"relay round trip without generation (GET /v1/models via the proxy), p50: {relay * 1000:.2f} ms")
    for name, trials in rows.items():
        per = ", ".join(f"{r[0] * 1000:.0f}/{r[1]:.1f}" for r in trials)
        print(f"{name} per trial (TTFT ms/tokens per s): {per}")


if __name__ == "__main__":
    main()
