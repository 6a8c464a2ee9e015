"""Client side of the transparency log: an HTTP reader and a small file store for the last tree head.

The checks themselves are pure and live in :mod:`enclavia.attestation.tlog`.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import httpx

from enclavia.attestation.claims import Claims
from enclavia.attestation.release import ApproverSet
from enclavia.attestation.tlog import (
    InclusionCheck,
    InclusionProof,
    LogEntry,
    LogReader,
    MemoryTreeHeadStore,
    SignedTreeHead,
    TreeHeadStore,
    check_release_included,
    parse_entry,
    parse_hash_list,
    parse_inclusion_proof,
    parse_tree_head,
)
from enclavia.errors import (
    ConsistencyProofError,
    InclusionProofError,
    TransportError,
    TreeHeadInvalidError,
    error_for_code,
)

MAX_RESPONSE_BYTES = 4 << 20


class HttpLogReader:
    """``LogReader`` over ``/tlog/v1/...``. Everything it returns is checked by the caller."""

    def __init__(self, url: str, *, http: httpx.Client | None = None, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._http = http or httpx.Client(timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def _get(self, path: str, params: dict[str, str], err: type[Exception]) -> Any:
        try:
            resp = self._http.get(self.url + path, params=params)
        except httpx.HTTPError:
            raise TransportError() from None
        if len(resp.content) > MAX_RESPONSE_BYTES:
            raise err("log response too large")
        if resp.status_code != 200:
            try:
                code = str(json.loads(resp.content).get("code", ""))
            except (ValueError, AttributeError):
                code = ""
            cls = error_for_code(code)
            raise cls() if cls.code.startswith("tlog.") else err("log refused the request")
        try:
            return json.loads(resp.content)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise err("log response is not JSON") from None

    def get_sth(self) -> SignedTreeHead:
        return parse_tree_head(self._get("/tlog/v1/sth", {}, TreeHeadInvalidError))

    def get_inclusion_proof(self, leaf_hash: bytes, tree_size: int) -> InclusionProof:
        doc = self._get(
            "/tlog/v1/proof/inclusion",
            {"leaf_hash": leaf_hash.hex(), "tree_size": str(tree_size)},
            InclusionProofError,
        )
        return parse_inclusion_proof(doc)

    def get_consistency_proof(self, first: int, second: int) -> Sequence[bytes]:
        doc = self._get(
            "/tlog/v1/proof/consistency", {"first": str(first), "second": str(second)}, ConsistencyProofError
        )
        if not isinstance(doc, dict) or set(doc) != {"consistency_path"}:
            raise ConsistencyProofError("consistency proof has the wrong shape")
        return parse_hash_list(doc["consistency_path"], ConsistencyProofError)

    def lookup(self, manifest_digest: bytes) -> Sequence[LogEntry]:
        doc = self._get("/tlog/v1/lookup", {"manifest_digest": manifest_digest.hex()}, InclusionProofError)
        if not isinstance(doc, dict) or set(doc) != {"entries"} or not isinstance(doc["entries"], list):
            raise InclusionProofError("lookup answer has the wrong shape")
        return [parse_entry(e) for e in doc["entries"][:256]]

    def get_entries(self, start: int, end: int) -> list[LogEntry]:
        doc = self._get("/tlog/v1/entries", {"start": str(start), "end": str(end)}, InclusionProofError)
        if not isinstance(doc, dict) or set(doc) != {"entries"} or not isinstance(doc["entries"], list):
            raise InclusionProofError("entries answer has the wrong shape")
        return [parse_entry(e) for e in doc["entries"]]


class FileTreeHeadStore:
    """Last verified tree head per log, in one small JSON file (written atomically)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def _read(self) -> dict[str, Any]:
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            raise TreeHeadInvalidError("tree head state file unreadable") from None
        if not isinstance(doc, dict):
            raise TreeHeadInvalidError("tree head state file unreadable")
        return doc

    def load(self, log_id: bytes) -> SignedTreeHead | None:
        with self._lock:
            entry = self._read().get(log_id.hex())
        return None if entry is None else parse_tree_head(entry)

    def save(self, sth: SignedTreeHead) -> None:
        with self._lock:
            doc = self._read()
            doc[sth.log_id.hex()] = sth.to_json()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".sth-")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(doc, f, sort_keys=True, indent=1)
            os.replace(tmp, self.path)


class TransparencyCheck:
    """What the SDK runs after attestation verifies and before it trusts the enclave with data.

    ``tlog``: the log's URL, or any ``LogReader`` (e.g. a ``TransparencyLog`` in the same process).
    ``tlog_key``: the log's Ed25519 public key (bytes or hex). ``state``: where the last verified tree
    head is kept (a ``TreeHeadStore``, a JSON file path, or None for memory). ``release_keys`` and
    ``approvers``: also verify the release record's signature and k-of-n approvals.
    """

    def __init__(
        self,
        tlog: str | LogReader,
        tlog_key: bytes | str,
        *,
        state: TreeHeadStore | str | Path | None = None,
        release_keys: Collection[bytes] = (),
        approvers: ApproverSet | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        key = bytes.fromhex(tlog_key) if isinstance(tlog_key, str) else bytes(tlog_key)
        if len(key) != 32:
            raise ValueError("tlog_key must be a 32-byte Ed25519 public key")
        if approvers is not None and not release_keys:
            raise ValueError("approvers are checked only together with release_keys")
        self.reader: LogReader = HttpLogReader(tlog, http=http) if isinstance(tlog, str) else tlog
        self.log_key = key
        if state is None:
            self.store: TreeHeadStore = MemoryTreeHeadStore()
        elif isinstance(state, (str, Path)):
            self.store = FileTreeHeadStore(state)
        else:
            self.store = state
        self.release_keys = tuple(release_keys)
        self.approvers = approvers

    def check(self, manifest_digest: bytes, claims: Claims | None = None) -> InclusionCheck:
        return check_release_included(
            self.reader,
            log_public_key=self.log_key,
            store=self.store,
            manifest_digest=manifest_digest,
            claims=claims,
            release_keys=self.release_keys,
            approvers=self.approvers,
        )
