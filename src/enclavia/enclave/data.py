"""Inner routes for data protection and retrieval: POST /v1/documents and POST /v1/rag/query.

Wires enclavia.protect (classification, detection, tokenization, egress guard) to enclavia.rag (encrypted
store and index). Requesters authenticate inside the encrypted inner request (``authorization: Bearer``);
their tenant, clearance and allowed actions come from the measured classification manifest.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from enclavia import channel
from enclavia.errors import (
    BadRequestError,
    ForbiddenError,
    NotFoundError,
    UnauthenticatedError,
)
from enclavia.observability.anomaly import current_tenant
from enclavia.protect.classification import Classification, Requester
from enclavia.protect.detect import Detector, Span
from enclavia.protect.egress import EgressGuard
from enclavia.protect.transforms import Tokenizer, apply_each
from enclavia.rag.blobstore import BlobStore, MemoryBlobStore, SocketBlobStore
from enclavia.rag.keys import FileKekSource, KekSource, KeyRing, ReleasedKekSource
from enclavia.rag.store import DocumentStore

MAX_DOCUMENTS = 64
MAX_DOCUMENT_CHARS = 200_000
MAX_K = 20
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-")

Embed = Callable[[list[str]], npt.NDArray[np.float32]]


def _id(value: Any, what: str) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= 128 or not set(value) <= _ID_CHARS:
        raise BadRequestError(f"{what} must be 1 to 128 characters of [A-Za-z0-9._:-]")
    return value


@dataclass
class DataApi:
    classification: Classification
    detector: Detector
    tokenizer: Tokenizer
    blobs: BlobStore
    keks: KekSource
    embed: Embed | None
    dim: int
    egress: EgressGuard | None = None
    _store: DocumentStore | None = None

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    @property
    def store(self) -> DocumentStore:
        """Created on first use: the host's store socket may come up after the enclave."""
        if self.embed is None:
            raise NotFoundError("documents need the embedding model in this enclave")
        with self._lock:
            if self._store is None:
                self._store = DocumentStore(self.blobs, KeyRing(self.blobs, self.keks), self.embed, self.dim)
            return self._store

    # -- auth ----------------------------------------------------------------------------------------

    def requester(self, headers: Mapping[str, str], action: str) -> Requester:
        auth = headers.get("authorization", "")
        if not auth.lower().startswith("bearer ") or len(auth) > 512:
            raise UnauthenticatedError()
        req = self.classification.requester_for_token(auth[7:].strip())
        if req is None:
            raise UnauthenticatedError()
        current_tenant.set(req.tenant)  # per-tenant usage (enclavia.observability.anomaly)
        if action not in req.actions:
            raise ForbiddenError()
        return req

    # -- routes --------------------------------------------------------------------------------------

    def documents(self, headers: Mapping[str, str], body: Any) -> dict[str, Any]:
        req = self.requester(headers, "ingest")
        if (
            not isinstance(body, dict)
            or set(body) - {"documents"}
            or not isinstance(body.get("documents"), list)
        ):
            raise BadRequestError('body must be {"documents": [{"id", "title", "text"}]}')
        docs: list[tuple[str, str, str]] = []
        for d in body["documents"][: MAX_DOCUMENTS + 1]:
            if not isinstance(d, dict) or set(d) - {"id", "title", "text"}:
                raise BadRequestError("each document is {id, title, text}")
            text, title = d.get("text"), d.get("title", "")
            if (
                not isinstance(text, str)
                or not 0 < len(text) <= MAX_DOCUMENT_CHARS
                or not isinstance(title, str)
            ):
                raise BadRequestError("document text must be a non-empty string")
            docs.append((_id(d.get("id"), "document id"), title[:512], text))
        if not 0 < len(docs) <= MAX_DOCUMENTS:
            raise BadRequestError(f"1 to {MAX_DOCUMENTS} documents per request")
        chunks = self.store.ingest(req.tenant, docs)
        return {"object": "ingest", "documents": len(docs), "chunks": chunks}

    def rag_query(self, headers: Mapping[str, str], body: Any) -> dict[str, Any]:
        req = self.requester(headers, "query")
        if not isinstance(body, dict) or set(body) - {
            "query",
            "k",
            "document_ids",
            "provider",
            "conversation",
        }:
            raise BadRequestError("unknown field in query")
        query, k = body.get("query"), body.get("k", 5)
        if not isinstance(query, str) or not 0 < len(query) <= 8192:
            raise BadRequestError("query must be a non-empty string")
        if not isinstance(k, int) or isinstance(k, bool) or not 0 < k <= MAX_K:
            raise BadRequestError(f"k must be 1 to {MAX_K}")
        ids = body.get("document_ids")
        doc_ids = None if ids is None else frozenset(_id(i, "document id") for i in _list(ids))
        conversation = _id(body.get("conversation", "default"), "conversation")
        scope = self.tokenizer.scope(req.tenant, req.id, conversation)
        hits = self.store.query(req.tenant, query, k, doc_ids)
        context = [
            {
                "document_id": h.document_id,
                "chunk": h.n,
                "score": round(h.score, 6),
                "title": self._for_requester(req, h.title, scope),
                "text": self._for_requester(req, h.text, scope),
            }
            for h in hits
        ]
        out: dict[str, Any] = {"object": "rag.context", "context": context}
        provider = body.get("provider")
        if provider is not None:
            if self.egress is None:
                raise NotFoundError("no egress in this enclave")
            prompt = "Answer the question from the context.\n\n" + "\n---\n".join(h.text for h in hits)
            messages = [{"role": "system", "content": prompt}, {"role": "user", "content": query}]
            reply = self.egress.chat(_id(provider, "provider"), messages, req, conversation)
            out["answer"] = reply["content"]
        return out

    def _for_requester(self, req: Requester, text: str, scope: Any) -> str:
        if not text:
            return text
        actions: list[tuple[Span, str]] = []
        for s in self.detector.detect(text):
            cls = self.classification.class_of(s.type)
            if cls not in req.clearance:
                actions.append((s, self.classification.classes[cls].without_clearance))
        return apply_each(text, actions, scope)


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list) or len(value) > 1024:
        raise BadRequestError("document_ids must be a list")
    return value


def build_data_api(
    classification: Classification,
    sim_dir: Path,
    store_socket: str | None,
    embedder: Any | None,
    kek_secret: str | None = None,
) -> DataApi:
    detector = Detector()
    tokenizer = Tokenizer(secrets.token_bytes(32))  # per enclave start: conversation scopes are in memory
    blobs: BlobStore = SocketBlobStore(store_socket) if store_socket else MemoryBlobStore()
    # With a broker (kek_secret set) the KEK arrives later, released to the attested enclave; until then the
    # document routes answer 503 enclave.secrets_unavailable. Without one: development KEK files only.
    keks: KekSource = ReleasedKekSource(kek_secret) if kek_secret else FileKekSource(sim_dir / "kek")
    embed: Embed | None = None
    dim = 0
    if embedder is not None:
        embed = embedder.embed_array  # numpy out, no list round trip

        dim = int(embedder.dimensions)
    egress = None
    if store_socket and classification.egress:
        sock = blobs if isinstance(blobs, SocketBlobStore) else SocketBlobStore(store_socket)

        def transport(url: str, body: bytes) -> bytes:
            import json

            from enclavia.errors import EgressFailedError, StorageUnavailableError

            try:
                raw = sock.call(channel.Kind.EGRESS, json.dumps({"url": url, "body": body.decode()}).encode())
            except StorageUnavailableError:
                raise EgressFailedError() from None
            reply = json.loads(raw)
            if not 200 <= int(reply["status"]) < 300:
                raise EgressFailedError()
            return str(reply["body"]).encode()

        egress = EgressGuard(classification, detector, tokenizer, transport)
    return DataApi(classification, detector, tokenizer, blobs, keks, embed, dim, egress)
