"""Python SDK: `Client(url, policy=...)` attests, verifies, then sends OHTTP-encapsulated requests."""

from __future__ import annotations

import json
import secrets
import time
from collections import deque
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from enclavia.attestation.receipt import HEADER as RECEIPT_HEADER
from enclavia.attestation.receipt import REQUEST_HEADER as RECEIPT_REQUEST_HEADER
from enclavia.attestation.receipt import Receipt, decode_receipt, verify_receipt
from enclavia.attestation.release import ApproverSet
from enclavia.attestation.tlog import InclusionCheck, LogReader, TreeHeadStore
from enclavia.client.stream import InnerStream, open_stream
from enclavia.client.tlog import TransparencyCheck
from enclavia.client.verify import VerifiedEnclave, verify_bundle
from enclavia.crypto.bhttp import Request, decode_response, encode_request
from enclavia.crypto.hpke import DEFAULT_SUITE
from enclavia.crypto.ohttp import REQUEST_MEDIA_TYPE, encapsulate_request
from enclavia.errors import (
    EnclaveUnavailableError,
    EnclaviaError,
    ReceiptInvalidError,
    TransportError,
    UnknownKeyIdError,
    error_for_code,
)
from enclavia.observability.trace import route_label, trace_headers, traced
from enclavia.policy.document import Policy, load_policy

NONCE_LEN = 32
_REATTEST_CODES = {UnknownKeyIdError.code, EnclaveUnavailableError.code}


class Client:
    """Confidential client. Nothing is sent to the enclave before its attestation verifies."""

    def __init__(
        self,
        url: str,
        policy: Policy | str | Path,
        *,
        http: httpx.Client | None = None,
        timeout: float = 30.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        reattest_wait: float = 10.0,
        tlog: str | LogReader | None = None,
        tlog_key: bytes | str | None = None,
        tlog_state: TreeHeadStore | str | Path | None = None,
        release_keys: Collection[bytes] = (),
        approvers: ApproverSet | None = None,
        receipts: bool = False,
    ) -> None:
        """``tlog``/``tlog_key``: also require the attested manifest to be published in that
        transparency log (see ``enclavia.client.tlog.TransparencyCheck``); without them, no log check.
        ``receipts``: ask for a signed receipt with every response and verify it (``last_receipt``)."""
        self.receipts = receipts
        self.last_receipt: Receipt | None = None
        self.url = url.rstrip("/")
        self.policy = policy if isinstance(policy, Policy) else load_policy(policy)
        self._http = http or httpx.Client(timeout=timeout)
        self._clock = clock
        self._used_nonces: deque[bytes] = deque(maxlen=1024)
        self._enclave: VerifiedEnclave | None = None
        self._reattest_wait = reattest_wait
        if (tlog is None) != (tlog_key is None):
            raise ValueError("tlog and tlog_key go together")
        self.tlog: TransparencyCheck | None = None
        if tlog is not None and tlog_key is not None:
            self.tlog = TransparencyCheck(
                tlog, tlog_key, state=tlog_state, release_keys=release_keys, approvers=approvers
            )
        self.last_inclusion: InclusionCheck | None = None

    # -- attestation ---------------------------------------------------------------------------

    @traced("enclavia.client.attest")
    def attest(self, nonce: bytes | None = None) -> VerifiedEnclave:
        nonce = nonce if nonce is not None else secrets.token_bytes(NONCE_LEN)
        resp = self._get(f"/v1/attestation?nonce={nonce.hex()}")
        if resp.status_code != 200:
            _raise_problem(resp.content)
        try:
            enclave = verify_bundle(
                resp.content,
                expected_nonce=nonce,
                policy=self.policy,
                now=self._clock(),
                used_nonces=set(self._used_nonces),
            )
        finally:
            self._used_nonces.append(nonce)
        if self.tlog is not None:  # the measured code must be a published release, before any data
            self.last_inclusion = self.tlog.check(enclave.bundle.manifest.digest(), enclave.result.claims)
        self._enclave = enclave
        return enclave

    @property
    def enclave(self) -> VerifiedEnclave:
        return self._enclave if self._enclave is not None else self.attest()

    # -- requests ------------------------------------------------------------------------------

    @traced("enclavia.client.request", lambda _, __, path, *a, **k: {"enclavia.route": route_label(path)})
    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """Send one inner request; re-attest once and retry once if the key config went stale."""
        try:
            return self._send(method, path, body)
        except (UnknownKeyIdError, EnclaveUnavailableError):
            self._enclave = None
            self._attest_with_wait()
            return self._send(method, path, body)

    def predict(self, model: str, features: Mapping[str, float]) -> dict[str, Any]:
        status, out = self.request("POST", f"/v1/predict/{model}", {"features": dict(features)})
        return _ok(status, out)

    def embeddings(self, texts: str | list[str], model: str = "all-minilm-l6-v2") -> dict[str, Any]:
        """OpenAI-shaped embeddings request, encrypted to the attested enclave."""
        status, out = self.request("POST", "/v1/embeddings", {"input": texts, "model": model})
        return _ok(status, out)

    def models(self) -> dict[str, Any]:
        status, out = self.request("GET", "/v1/models")
        return _ok(status, out)

    def stream(self, method: str, path: str, body: Any = None) -> InnerStream:
        """Send one inner request as chunked OHTTP; the response streams back as the enclave writes it.
        Re-attests once and retries once if the key config went stale (before any content flowed)."""
        try:
            return self._open_stream(method, path, body)
        except (UnknownKeyIdError, EnclaveUnavailableError):
            self._enclave = None
            self._attest_with_wait()
            return self._open_stream(method, path, body)

    def chat(self, messages: Sequence[Mapping[str, Any]], model: str, **params: Any) -> dict[str, Any]:
        """OpenAI-shaped chat completion, encrypted to the attested enclave."""
        with self.stream(
            "POST", "/v1/chat/completions", {**params, "model": model, "messages": list(messages)}
        ) as s:
            content = s.read()
        try:
            payload = json.loads(content) if content else None
        except ValueError:
            payload = None
        return _ok(s.status, payload)

    def chat_stream(
        self, messages: Sequence[Mapping[str, Any]], model: str, **params: Any
    ) -> Iterator[dict[str, Any]]:
        """Streamed chat completion: yields each ``chat.completion.chunk`` as it is generated."""
        body = {**params, "model": model, "messages": list(messages), "stream": True}
        with self.stream("POST", "/v1/chat/completions", body) as s:
            if s.status != 200:
                _ok(s.status, _json_or_none(s.read()))
            yield from iter_sse(s)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- internals -----------------------------------------------------------------------------

    def _attest_with_wait(self) -> None:
        deadline = time.monotonic() + self._reattest_wait
        while True:
            try:
                self.attest()
                return
            except EnclaveUnavailableError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def _inner(self, method: str, path: str, body: Any) -> Request:
        content = (
            body
            if isinstance(body, bytes)
            else b""
            if body is None
            else json.dumps(body, allow_nan=False).encode()
        )
        headers: tuple[tuple[str, str], ...] = (
            (("content-type", "application/json"),) if body is not None else ()
        )
        if self.receipts:
            headers = (*headers, (RECEIPT_REQUEST_HEADER, "1"))
        return Request(
            method=method, scheme="https", authority="enclave", path=path, headers=headers, content=content
        )

    def _check_receipt(self, request: Request, receipt: str | None, content: bytes) -> Receipt | None:
        """Verify the receipt against the attested signing key, this request, this response, this
        measurement. Missing or wrong when asked for: ReceiptInvalidError / SignatureInvalidError."""
        if not self.receipts:
            return None
        if receipt is None:
            raise ReceiptInvalidError()
        enclave = self.enclave
        self.last_receipt = verify_receipt(
            decode_receipt(receipt),
            enclave.bundle.signing_public_key,
            request_content=request.content,
            response_content=content,
            measurement=enclave.bundle.manifest.digest(),
        )
        return self.last_receipt

    def _open_stream(self, method: str, path: str, body: Any) -> InnerStream:
        enclave = self.enclave
        request = self._inner(method, path, body)

        def complete(s: InnerStream) -> None:
            s.receipt = self._check_receipt(
                request, s.header(RECEIPT_HEADER) or s.trailer(RECEIPT_HEADER), s.content
            )

        return open_stream(
            self._http,
            self.url + "/v1/gateway",
            key_config=enclave.key_config,
            request=request,
            suite=DEFAULT_SUITE,
            on_problem=_raise_problem,
            on_complete=complete,
        )

    def _send(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        enclave = self.enclave
        request = self._inner(method, path, body)
        # Seal with the suite verify_bundle checked, never the key config's first choice (no downgrade).
        message, ctx = encapsulate_request(enclave.key_config, encode_request(request), suite=DEFAULT_SUITE)
        resp = self._post("/v1/gateway", message)
        if resp.status_code != 200:
            _raise_problem(resp.content)
        response = decode_response(ctx.decapsulate_response(resp.content))
        self._check_receipt(
            request, next((v for k, v in response.headers if k == RECEIPT_HEADER), None), response.content
        )
        try:
            payload = json.loads(response.content) if response.content else None
        except ValueError:
            payload = None
        return response.status, payload

    def _get(self, path: str) -> httpx.Response:
        try:
            return self._http.get(self.url + path, headers=trace_headers())
        except httpx.HTTPError:
            raise TransportError() from None

    def _post(self, path: str, content: bytes) -> httpx.Response:
        try:
            return self._http.post(
                self.url + path,
                content=content,
                headers={"content-type": REQUEST_MEDIA_TYPE, **trace_headers()},
            )
        except httpx.HTTPError:
            raise TransportError() from None


def _json_or_none(content: bytes) -> Any:
    try:
        return json.loads(content) if content else None
    except ValueError:
        return None


def iter_sse(stream: Iterator[bytes] | InnerStream) -> Iterator[dict[str, Any]]:
    """Parse ``data:`` events (OpenAI streaming) from content pieces; stops at ``[DONE]``."""
    buf = b""
    for piece in stream:
        buf += piece
        while b"\n\n" in buf:
            event, buf = buf.split(b"\n\n", 1)
            for line in event.split(b"\n"):
                if not line.startswith(b"data: "):
                    continue
                data = line[6:]
                if data == b"[DONE]":
                    continue
                doc = _json_or_none(data)
                if isinstance(doc, dict) and "error" in doc:
                    err = doc["error"] if isinstance(doc["error"], dict) else {}
                    raise error_for_code(str(err.get("code", "")))()
                if isinstance(doc, dict):
                    yield doc


def _raise_problem(content: bytes) -> None:
    try:
        code = json.loads(content).get("code", "")
    except (ValueError, AttributeError):
        code = ""
    raise error_for_code(str(code))()


def _ok(status: int, payload: Any) -> dict[str, Any]:
    if status >= 400:
        code = payload.get("code", "") if isinstance(payload, dict) else ""
        raise error_for_code(str(code))()
    if not isinstance(payload, dict):
        raise EnclaviaError("unexpected response shape")
    return payload
