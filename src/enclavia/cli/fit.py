"""`enclavia fit MODEL`: will this model fit an enclave, and what does confidentiality cost it?

Starts a real `enclavia serve` (host process plus a separate simulated enclave process) with the enclave
memory size to test, replays representative requests through the attested OHTTP client, then serves the
same model with the same inner routes in one plain process over plain HTTP and replays the same requests
there. Reports: whether it fits (not refused at start, no allocation failure, resident peak within the
size), the enclave's peak memory, its cold start (enclave process start to first answer), p50/p99 latency
plain versus confidential and their ratio, and a recommendation: full inference inside, or split mode
(docs/split-mode.md) with the reason.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from enclavia.cli import paths

EXIT_DOES_NOT_FIT = 1
EXIT_USAGE = 2
DEFAULT_MEMORY = "512MiB"
DEFAULT_REQUESTS = {"classifier": 300, "embeddings": 60, "chat": 8}
MAX_RATIO = 2.0  # p50 latency ratio confidential / plain above which split mode is suggested ...
MIN_ADDED_MS = 20.0  # ... when the added time is also this large (a fixed few ms is not what split removes)
START_TIMEOUT = 240.0

CLINICAL_SENTENCES = (
    "Patient admitted with community-acquired pneumonia, treated with ceftriaxone and azithromycin.",
    "History of type 2 diabetes managed with metformin; HbA1c 7.9% at the last visit.",
    "Chest radiograph shows right lower lobe consolidation without effusion.",
    "Follow-up in six weeks to review renal function and blood pressure control.",
    "Discharge summary: 67-year-old with atrial fibrillation, anticoagulation started, rate controlled "
    "with metoprolol, echocardiogram shows preserved ejection fraction and mild mitral regurgitation.",
    "Allergies: penicillin (rash). Current medications: lisinopril 10 mg daily, atorvastatin 20 mg nightly.",
    "Counselled on smoking cessation; nicotine replacement therapy offered and accepted.",
    "MRI of the lumbar spine demonstrates L4-L5 disc protrusion with mild foraminal narrowing.",
)
CHAT_PROMPTS = (
    "Summarise in one sentence: the patient was treated for pneumonia and improved by day three.",
    "List two questions to ask at a diabetes follow-up visit.",
    "Explain atrial fibrillation in plain language, briefly.",
)


@dataclass
class Target:
    name: str
    kind: str  # classifier | embeddings | chat
    route: str
    model_dir: Path  # what the enclave loads from (only this model's artifact for a classifier)
    embeddings: bool = False
    chat_model: Path | None = None
    artifact: Path | None = None

    def serve_args(self) -> list[str]:
        args = ["--model-dir", str(self.model_dir)]
        if self.embeddings:
            args.append("--embeddings")
        if self.chat_model is not None:
            args += ["--chat-model", str(self.chat_model)]
        return args


@dataclass
class Replay:
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies)
        if not lat:
            return {"requests": 0, "errors": dict(self.errors)}
        return {
            "requests": len(lat),
            "errors": dict(self.errors),
            "p50_ms": round(statistics.median(lat) * 1000, 3),
            "p99_ms": round(lat[max(math.ceil(0.99 * len(lat)) - 1, 0)] * 1000, 3),
        }


# -- targets and samples -------------------------------------------------------------------------


def resolve_target(model: str, model_dir: Path, work: Path) -> Target:
    """A bundled model name (clinical-risk, all-minilm-l6-v2, the bundled GGUF), a linear artifact in
    ``model_dir``, or a path to a ``.json`` linear artifact or a ``.gguf`` chat model."""
    from enclavia.inference.embeddings import MODEL_ID as EMBEDDING_ID

    only = work / "models"
    only.mkdir(parents=True, exist_ok=True)
    if model in {EMBEDDING_ID, "embeddings"}:
        return Target(EMBEDDING_ID, "embeddings", "/v1/embeddings", only, embeddings=True)
    path = Path(model)
    if model in {"chat", "gemma3-270m-q4-k-m"} or path.suffix == ".gguf":
        from enclavia.inference.chat import bundled_model_path, file_digest, model_id_for

        gguf = path if path.suffix == ".gguf" else bundled_model_path(paths.state_dir() / "models")
        if not gguf.is_file():
            raise FileNotFoundError(str(gguf))
        return Target(
            model_id_for(gguf, file_digest(gguf)), "chat", "/v1/chat/completions", only, chat_model=gguf
        )
    artifact = path if path.suffix == ".json" and path.is_file() else model_dir / f"{model}.json"
    if not artifact.is_file():
        raise FileNotFoundError(str(artifact))
    from enclavia.inference.linear import LinearClassifier

    name = LinearClassifier(artifact.read_bytes()).name
    shutil.copyfile(artifact, only / artifact.name)
    return Target(name, "classifier", f"/v1/predict/{name}", only, artifact=only / artifact.name)


def generated_samples(target: Target, n: int) -> list[tuple[str, Any]]:
    """Representative requests for the bundled models: rows of the Wisconsin breast cancer data set for the
    classifier (any other linear model: values drawn around its scaler's means), clinical sentences for
    embeddings, short prompts for chat."""
    if target.kind == "embeddings":
        return [
            (target.route, {"input": CLINICAL_SENTENCES[i % len(CLINICAL_SENTENCES)], "model": target.name})
            for i in range(n)
        ]
    if target.kind == "chat":
        return [
            (
                target.route,
                {
                    "model": target.name,
                    "messages": [{"role": "user", "content": CHAT_PROMPTS[i % len(CHAT_PROMPTS)]}],
                    "max_tokens": 16,
                    "temperature": 0.0,
                    "seed": 0,
                },
            )
            for i in range(n)
        ]
    assert target.artifact is not None
    doc = json.loads(target.artifact.read_bytes())
    names = [str(x) for x in doc["feature_names"]]
    rows: list[list[float]]
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    if [str(x) for x in data.feature_names] == names:
        rows = [[float(v) for v in row] for row in data.data]
    else:
        import numpy as np

        rng = np.random.default_rng(0)
        mean, scale = np.asarray(doc["scaler"]["mean"]), np.asarray(doc["scaler"]["scale"])
        rows = [[float(v) for v in mean + scale * rng.standard_normal(len(names))] for _ in range(64)]
    return [
        (target.route, {"features": dict(zip(names, rows[i % len(rows)], strict=True))}) for i in range(n)
    ]


def load_samples(path: Path, target: Target) -> list[tuple[str, Any]]:
    """JSON lines: a request body for the model's route, or {"path": "/v1/...", "body": {...}}."""
    out: list[tuple[str, Any]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        doc = json.loads(line)
        if isinstance(doc, dict) and set(doc) == {"path", "body"} and str(doc["path"]).startswith("/v1/"):
            out.append((str(doc["path"]), doc["body"]))
        else:
            out.append((target.route, doc))
    if not out:
        raise ValueError("samples file has no requests")
    return out


# -- processes -----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _events(log: Path) -> list[dict[str, Any]]:
    out = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
    return out


def _when(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00")).timestamp()


def _wait_up(url: str, proc: subprocess.Popen[bytes], timeout: float) -> bool:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/healthz", timeout=1.0).status_code == 200:
                return True
        time.sleep(0.02)
    return False


@contextlib.contextmanager
def _process(
    cmd: Sequence[str], log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(list(cmd), stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _enclave_metrics(url: str) -> dict[str, float]:
    import httpx

    text = httpx.get(url + "/metrics", timeout=10).text
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("enclavia_enclave_memory"):
            name, value = line.rsplit(" ", 1)
            out[name.split("{", 1)[0]] = float(value)
    return out


def _peak_rss(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


# -- the check -----------------------------------------------------------------------------------


def run_fit(
    target: Target,
    samples: Sequence[tuple[str, Any]],
    memory_limit: int,
    *,
    mode: str = "auto",
    work: Path,
    max_ratio: float = MAX_RATIO,
    min_added_ms: float = MIN_ADDED_MS,
) -> dict[str, Any]:
    from enclavia.cli.core import dev_policy_text
    from enclavia.enclave.boot import EnclaveConfig, load_models, manifest_for
    from enclavia.enclave.memory import mib
    from enclavia.tee.simulated import init_platform_key

    home = work / "home"
    home.mkdir(parents=True, exist_ok=True)
    pub = init_platform_key(home / "sim")
    config = EnclaveConfig(
        target.model_dir, home / "sim", embeddings=target.embeddings, chat_model=target.chat_model
    )
    policy_text = dev_policy_text(
        manifest_for(config, load_models(target.model_dir)).digest().hex(), pub.hex()
    )
    report: dict[str, Any] = {
        "model": target.name,
        "kind": target.kind,
        "memory_limit_bytes": memory_limit,
        "memory_limit_mib": mib(memory_limit),
        "requests": len(samples),
    }
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [
        *(sys.executable, "-m", "enclavia.cli.main", "serve", "--listen", f"127.0.0.1:{port}"),
        *("--state-dir", str(home), "--enclave-memory", f"{memory_limit}B", "--enclave-memory-mode", mode),
        *target.serve_args(),
    ]
    log = work / "serve.log"
    env = {**os.environ, "ENCLAVIA_HOME": str(home)}
    with contextlib.ExitStack() as stack:
        proc = stack.enter_context(_process(cmd, log, env))
        up = _wait_up(url, proc, START_TIMEOUT)
        events = _events(log)
        memory_event = next((e for e in events if e.get("event") == "enclave.memory"), {})
        report["mechanism"] = memory_event.get("mechanism")
        report["estimated_need_bytes"] = memory_event.get("need_bytes")
        if not up:
            refused = next((e for e in events if e.get("event") == "enclave.refused"), None)
            report.update(
                fits=False,
                refused=refused
                and {k: refused.get(k) for k in ("error_code", "detail", "need_bytes", "limit_bytes")},
            )
            if refused is None:
                report["refused"] = {"error_code": "enclave.did_not_start", "detail": "see the serve log"}
            report["recommendation"] = _recommend(report, max_ratio, min_added_ms)
            return report
        with _confidential_caller(url, policy_text, samples[0], log, report) as conf_call:
            plain_call, plain_pid = _plain_caller(target, work, stack)
            conf, plain = _replay_pair(conf_call, plain_call, samples)
            m = _enclave_metrics(url)
            report["plain_peak_memory_bytes"] = _peak_rss(plain_pid) if plain_pid else None
    report["peak_memory_bytes"] = int(m.get("enclavia_enclave_memory_peak_rss_bytes", 0))
    report["memory_usage_bytes"] = int(m.get("enclavia_enclave_memory_usage_bytes", 0))
    report["peak_memory_mib"] = mib(report["peak_memory_bytes"])
    report["confidential"], report["plain"] = conf.summary(), plain.summary()
    exhausted = conf.errors.get("enclave.memory_exhausted", 0)
    report["fits"] = bool(exhausted == 0 and report["peak_memory_bytes"] <= memory_limit)
    _ratios(report)
    report["recommendation"] = _recommend(report, max_ratio, min_added_ms)
    return report


Call = Callable[[str, Any], tuple[int, str | None]]


@contextlib.contextmanager
def _confidential_caller(
    url: str, policy_text: str, first: tuple[str, Any], log: Path, report: dict[str, Any]
) -> Iterator[Call]:
    """Attest, send the first request at once (cold start: enclave process start to this answer), then
    yield a caller for the replay."""
    from enclavia.client.sdk import Client
    from enclavia.errors import EnclaviaError
    from enclavia.policy.document import parse_policy

    client = Client(url, parse_policy(policy_text), timeout=300)
    try:
        client.attest()
        status, _ = client.request("POST", *first)
        answered = time.time()
        events = _events(log)
        spawned = next(e for e in events if e.get("event") == "host.enclave_spawned")
        ready = next((e for e in events if e.get("event") == "enclave.ready"), None)
        report["cold_start_s"] = round(answered - _when(spawned), 3)
        report["enclave_ready_s"] = round(_when(ready) - _when(spawned), 3) if ready else None
        report["first_answer_status"] = status

        def call(path: str, body: Any) -> tuple[int, str | None]:
            try:
                st, out = client.request("GET" if body is None else "POST", path, body)
            except EnclaviaError as err:
                return 0, err.code
            return st, (str(out.get("code")) if isinstance(out, dict) and st != 200 else None)

        yield call
    finally:
        client.close()


def _plain_caller(target: Target, work: Path, stack: contextlib.ExitStack) -> tuple[Call, int | None]:
    """The same model and inner routes in one plain process over plain HTTP (enclavia.cli.plain)."""
    import httpx

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [
        sys.executable,
        "-m",
        "enclavia.cli.plain",
        "--port",
        str(port),
        "--model-dir",
        str(target.model_dir),
    ]
    if target.embeddings:
        cmd.append("--embeddings")
    if target.chat_model is not None:
        cmd += ["--chat-model", str(target.chat_model)]
    proc = stack.enter_context(_process(cmd, work / "plain.log"))
    http = stack.enter_context(httpx.Client(timeout=300))
    if not _wait_up(url, proc, START_TIMEOUT):
        return (lambda _p, _b: (0, "plain.did_not_start")), None

    def call(path: str, body: Any) -> tuple[int, str | None]:
        resp = http.post(url + path, json=body) if body is not None else http.get(url + path)
        return resp.status_code, None if resp.status_code == 200 else str(resp.json().get("code"))

    return call, proc.pid


def _replay_pair(
    conf: Call, plain: Call, samples: Sequence[tuple[str, Any]], warmup: int = 3
) -> tuple[Replay, Replay]:
    """Each sample through both, alternating which goes first, so both see the same machine load."""
    out = (Replay(), Replay())
    for path, body in samples[:warmup]:
        conf(path, body)
        plain(path, body)
    for i, (path, body) in enumerate(samples):
        order = ((0, conf), (1, plain)) if i % 2 == 0 else ((1, plain), (0, conf))
        for which, call in order:
            t = time.perf_counter()
            status, code = call(path, body)
            elapsed = time.perf_counter() - t
            if status == 200:
                out[which].latencies.append(elapsed)
            else:
                key = code or str(status)
                out[which].errors[key] = out[which].errors.get(key, 0) + 1
    return out


def _ratios(report: dict[str, Any]) -> None:
    p, c = report.get("plain", {}), report.get("confidential", {})
    if "p50_ms" in p and "p50_ms" in c and p["p50_ms"] > 0 and p["p99_ms"] > 0:
        report["ratio"] = {
            "p50": round(c["p50_ms"] / p["p50_ms"], 2),
            "p99": round(c["p99_ms"] / p["p99_ms"], 2),
        }
        report["added_p50_ms"] = round(c["p50_ms"] - p["p50_ms"], 3)


def _recommend(report: dict[str, Any], max_ratio: float, min_added_ms: float) -> dict[str, Any]:
    from enclavia.enclave.memory import mib

    limit = report["memory_limit_bytes"]
    refused = report.get("refused")
    if refused:
        need = refused.get("need_bytes")
        why = f"memory: needs about {mib(need)} MiB, limit {mib(limit)} MiB" if need else "did not start"
        return {"mode": "split", "reason": why}
    if not report.get("fits"):
        if report.get("confidential", {}).get("errors", {}).get("enclave.memory_exhausted"):
            return {"mode": "split", "reason": f"memory: allocations failed under the {mib(limit)} MiB limit"}
        return {
            "mode": "split",
            "reason": f"memory: resident peak {report.get('peak_memory_mib')} MiB over {mib(limit)} MiB",
        }
    ratio, added = report.get("ratio", {}).get("p50"), report.get("added_p50_ms")
    if ratio is not None and added is not None and ratio > max_ratio and added > min_added_ms:
        return {
            "mode": "split",
            "reason": f"latency: p50 {ratio}x plain (+{added} ms), over {max_ratio}x and {min_added_ms} ms",
        }
    return {"mode": "full", "reason": "fits the memory size; latency ratio within the threshold"}


def render(report: dict[str, Any]) -> str:
    held = report.get("mechanism") or "refused before it applied"
    lines = [
        f"model:            {report['model']} ({report['kind']})",
        f"enclave memory:   {report['memory_limit_mib']} MiB ({held})",
        f"fits:             {'yes' if report.get('fits') else 'NO'}",
    ]
    if report.get("refused"):
        r = report["refused"]
        lines.append(f"refused at start: {r.get('error_code')}: {r.get('detail')}")
    if report.get("estimated_need_bytes"):
        lines.append(f"estimated need:   {round(report['estimated_need_bytes'] / 2**20, 1)} MiB")
    if "peak_memory_bytes" in report:
        lines.append(f"peak memory:      {report['peak_memory_mib']} MiB resident (enclave process)")
        lines.append(f"cold start:       {report.get('cold_start_s')} s to first answer")
    c, p = report.get("confidential"), report.get("plain")
    if c and p and "p50_ms" in c and "p50_ms" in p:
        r = report.get("ratio", {})
        lines.append(
            f"latency p50:      plain {p['p50_ms']} ms, confidential {c['p50_ms']} ms ({r.get('p50')}x)"
        )
        lines.append(
            f"latency p99:      plain {p['p99_ms']} ms, confidential {c['p99_ms']} ms ({r.get('p99')}x)"
        )
        if c.get("errors") or p.get("errors"):
            lines.append(f"errors:           confidential {c.get('errors')}, plain {p.get('errors')}")
    rec = report["recommendation"]
    what = "full inference inside the enclave" if rec["mode"] == "full" else "split mode (docs/split-mode.md)"
    lines.append(f"recommendation:   {what}: {rec['reason']}")
    return "\n".join(lines)


# -- command ---------------------------------------------------------------------------------------


def fit(  # noqa: PLR0917 - typer options
    model: Annotated[
        str, typer.Argument(help="clinical-risk, all-minilm-l6-v2, chat, or a .json/.gguf file")
    ],
    memory: Annotated[str, typer.Option(help="Enclave memory size to test (512MiB, 2GiB)")] = DEFAULT_MEMORY,
    samples: Annotated[
        Path | None, typer.Option(help="JSON lines of request bodies (or {path, body}); default: generated")
    ] = None,
    requests: Annotated[int | None, typer.Option(help="Requests to replay (default by model kind)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
    model_dir: Annotated[Path | None, typer.Option(help="Where named linear artifacts are")] = None,
    mode: Annotated[
        str, typer.Option(help="Memory enforcement: auto, cgroup, rlimit-data, rlimit-as")
    ] = "auto",
    max_ratio: Annotated[
        float, typer.Option(help="p50 ratio above which split mode is suggested")
    ] = MAX_RATIO,
    min_added_ms: Annotated[
        float, typer.Option(help="... if the added p50 is also above this")
    ] = MIN_ADDED_MS,
) -> None:
    """Load MODEL in a simulated enclave under a memory size, replay requests, and compare with plain serving.
    Exit 0 when it fits, 1 when it does not, 2 on usage errors."""
    from enclavia.enclave.memory import parse_size

    try:
        limit = parse_size(memory)
    except ValueError as err:
        typer.echo(f"--memory: {err}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    with tempfile.TemporaryDirectory(prefix="enclavia-fit-") as tmp:
        work = Path(tmp)
        try:
            target = resolve_target(model, model_dir or paths.default_model_dir(), work)
        except (FileNotFoundError, ValueError, ImportError):
            typer.echo(f"unknown model or unreadable artifact: {model}", err=True)
            raise typer.Exit(EXIT_USAGE) from None
        n = requests or DEFAULT_REQUESTS[target.kind]
        try:
            replay = load_samples(samples, target) if samples else generated_samples(target, n)
        except (OSError, ValueError):
            typer.echo("--samples must be a readable JSON lines file", err=True)
            raise typer.Exit(EXIT_USAGE) from None
        if samples and requests:
            replay = [replay[i % len(replay)] for i in range(n)]
        report = run_fit(
            target, replay, limit, mode=mode, work=work, max_ratio=max_ratio, min_added_ms=min_added_ms
        )
        report["samples"] = str(samples) if samples else "generated"
    typer.echo(json.dumps(report, indent=2, sort_keys=True) if as_json else render(report))
    if not report.get("fits"):
        raise typer.Exit(EXIT_DOES_NOT_FIT)


def tcb(
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole report as JSON")] = False,
    source: Annotated[
        Path | None, typer.Option(help="The enclavia package directory to measure (default: installed)")
    ] = None,
    model_dir: Annotated[Path | None, typer.Option(help="Model directory the enclave will load")] = None,
) -> None:
    """The trusted base: what is inside the measured enclave image, by category (alias of `enclavia release
    build --tcb`, with a summary). The allow-list check of the enclave's start: exit 1 if host, broker or
    database code is reachable from the enclave's code, or if the code imports a third-party module that no
    distribution in the manifest's lock provides (the enclave would refuse to start with it loaded)."""
    import enclavia
    from enclavia.enclave.boot import EnclaveConfig, load_models, manifest_for
    from enclavia.release.build import tcb_report

    root = (source or Path(enclavia.__file__).parent).resolve()
    if not (root / "__init__.py").is_file():
        typer.echo("--source must be an enclavia package directory", err=True)
        raise typer.Exit(EXIT_USAGE)
    models_path = model_dir or paths.default_model_dir()
    try:
        models = load_models(models_path)
    except (OSError, ValueError):
        typer.echo(f"cannot load models from {models_path}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    manifest = manifest_for(EnclaveConfig(model_dir=models_path, sim_dir=paths.sim_dir()), models, root)
    report = tcb_report(manifest, root)
    imports = report["imports"]
    bad = (
        imports["never_in_enclave_found"]
        or imports["outside_modules_imported"]
        or imports["direct_not_in_manifest_lock"]
    )
    if as_json:
        typer.echo(json.dumps(report, indent=2, sort_keys=True))
    else:
        typer.echo(render_tcb(report))
    if bad:
        raise typer.Exit(EXIT_DOES_NOT_FIT)


def render_tcb(report: dict[str, Any]) -> str:
    imports = report["imports"]
    biggest = sorted(imports["distributions"], key=lambda d: -int(d["installed_bytes"]))[:8]
    cat = report["categories"]
    return "\n".join(
        [
            "measured, by category:",
            f"  enclavia modules:  {cat['enclavia_modules']['count']} (import closure of the entry point)",
            f"  enclavia data:     {cat['enclavia_data_files']['count']} files",
            f"  third-party:       {cat['third_party']['distributions']} distributions,"
            f" {cat['third_party']['record_files']} RECORD files (by version; loaded files checked at start)",
            "  standard library:  by location (not by content)",
            f"  process:           {' '.join((cat['process'] or {}).get('flags', []))}"
            f" -m {(cat['process'] or {}).get('entry', '?')},"
            f" {len((cat['process'] or {}).get('env_allow', []))} environment names allowed",
            f"  models:            {cat['models']['count']}",
            f"manifest digest:    {report['manifest_digest']}",
            f"enclavia code:      {report['file_count']} files ({report['python_files']} Python),"
            f" {report['enclavia_lines']} lines",
            f"manifest lock:      {len(report['third_party'])} third-party distributions pinned",
            f"imported closure:   {imports['distribution_count']} distributions,"
            f" {imports['installed_bytes'] / 2**20:.0f} MiB installed",
            "largest:            "
            + ", ".join(f"{d['name']} {d['installed_bytes'] / 2**20:.0f} MiB" for d in biggest),
            f"direct, unpinned:   {', '.join(imports['direct_not_in_manifest_lock']) or 'none'}",
            f"transitive, unpinned: {len(imports['not_in_manifest_lock'])}",
            f"host/broker/db:     {', '.join(imports['never_in_enclave_found']) or 'none'}",
            f"outside enclavia:   {', '.join(imports['outside_modules_imported']) or 'none'}",
        ]
    )


def register(app: typer.Typer) -> None:
    app.command("fit")(fit)
    app.command("tcb")(tcb)
