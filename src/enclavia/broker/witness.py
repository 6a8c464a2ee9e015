"""Witnesses: copies of the ledger's signed checkpoints kept outside the broker's database.

Someone with write access to the database can cut the ledger's tail, or rewrite it and re-sign nothing: the
hash chain then breaks, unless the checkpoints after the edit are deleted too. A checkpoint that was
published elsewhere when it was signed is what shows that: ``enclavia audit verify --checkpoint FILE``
fails when the ledger no longer reaches it, and the broker itself refuses to start on a ledger that is
behind the last checkpoint in its file witness (``LedgerBehindWitnessError``).

Sinks (``--witness``, repeatable):

* ``file:PATH``: one JSON checkpoint per line, appended and fsynced (put it on storage the database's
  operators cannot write: another host's mount, a WORM bucket's sync directory).
* ``http://...`` / ``https://...``: each checkpoint POSTed as JSON (a transparency log, an external
  monitor). The receiver stores it; the broker does not read it back.

Publishing happens after the checkpoint's transaction commits and never fails the decision it follows: a
sink that is down is counted (``enclavia_broker_witness_failures``) and logged, and the next checkpoint is
published again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from enclavia.broker.audit import Checkpoint
from enclavia.errors import AuditVerificationError

MAX_LINE = 4096


class Witness(Protocol):
    kind: str

    def publish(self, checkpoint: Checkpoint, public_key: bytes) -> None: ...


def _line(checkpoint: Checkpoint, public_key: bytes) -> bytes:
    doc = {**checkpoint.to_json(), "public_key": public_key.hex()}
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode() + b"\n"


class FileWitness:
    kind = "file"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def publish(self, checkpoint: Checkpoint, public_key: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, _line(checkpoint, public_key))
            os.fsync(fd)
        finally:
            os.close(fd)

    def last(self, public_key: bytes) -> Checkpoint | None:
        """The highest checkpoint in the file that verifies under ``public_key`` (others are ignored)."""
        if not self.path.exists():
            return None  # nothing published yet
        return max(read_checkpoints(self.path, public_key, strict=False), key=lambda c: c.seq, default=None)


class HttpWitness:
    kind = "http"

    def __init__(self, url: str, timeout_s: float = 3.0) -> None:
        self.url = url
        self.timeout_s = timeout_s

    def publish(self, checkpoint: Checkpoint, public_key: bytes) -> None:
        import httpx

        resp = httpx.post(
            self.url,
            content=_line(checkpoint, public_key),
            headers={"content-type": "application/json"},
            timeout=self.timeout_s,
        )
        resp.raise_for_status()


def open_witness(spec: str) -> FileWitness | HttpWitness:
    if spec.startswith("file:"):
        return FileWitness(spec[len("file:") :])
    if spec.startswith(("http://", "https://")):
        return HttpWitness(spec)
    raise ValueError("a witness is file:PATH or an http(s):// URL")


def read_checkpoints(path: Path, public_key: bytes, *, strict: bool = True) -> list[Checkpoint]:
    """Checkpoints from a file: one JSON object, JSON lines (a file witness), or an evidence report that
    holds its ledger's last checkpoint. ``strict``: any entry that does not verify is an error."""
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise AuditVerificationError("checkpoint file unreadable") from None
    docs: list[Any] = []
    try:
        whole = json.loads(raw)
    except ValueError:
        whole = None
        docs = [_loads(line) for line in raw.splitlines() if line.strip()]
    if whole is not None:
        docs = [_from_report(whole)]
    out = []
    for doc in docs:
        try:
            cp = Checkpoint.from_json(doc)
            cp.verify(public_key)
        except AuditVerificationError:
            if strict:
                raise
            continue
        out.append(cp)
    if strict and not out:
        raise AuditVerificationError("checkpoint file holds no checkpoint")
    return out


def _loads(line: str) -> Any:
    if len(line) > MAX_LINE:
        return None
    try:
        return json.loads(line)
    except ValueError:
        return None


def _from_report(doc: Any) -> Any:
    """An evidence report (enclavia.evidence.report) keeps the checkpoint under
    broker.ledger.last_checkpoint (the ops summary under ledger.last_checkpoint)."""
    if not isinstance(doc, dict) or "signature" in doc:
        return doc
    for holder in (doc, doc.get("broker")):
        ledger = holder.get("ledger") if isinstance(holder, dict) else None
        if isinstance(ledger, dict) and isinstance(ledger.get("last_checkpoint"), dict):
            return ledger["last_checkpoint"]
    return doc


class Witnesses:
    """The configured sinks; ``publish`` is the store's after-commit hook."""

    def __init__(
        self,
        specs: Sequence[str],
        public_key: Callable[[], bytes],
        on_result: Callable[[str, bool, int], None],
    ) -> None:
        self.sinks = [open_witness(s) for s in specs]
        self._public_key = public_key
        self._on_result = on_result

    def publish(self, checkpoints: Sequence[Checkpoint]) -> None:
        for cp in checkpoints:
            for sink in self.sinks:
                try:
                    sink.publish(cp, self._public_key())
                except Exception:  # noqa: BLE001 - a witness that is down never fails a decision
                    self._on_result(sink.kind, False, cp.seq)
                else:
                    self._on_result(sink.kind, True, cp.seq)

    def last_published(self, public_key: bytes) -> Checkpoint | None:
        files = [s.last(public_key) for s in self.sinks if isinstance(s, FileWitness)]
        return max((c for c in files if c is not None), key=lambda c: c.seq, default=None)
