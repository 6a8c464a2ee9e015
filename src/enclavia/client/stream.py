"""Streamed inner responses over chunked OHTTP (draft-ietf-ohai-chunked-ohttp), client side.

``open_stream`` seals one inner request as ``message/ohttp-chunked-req`` and returns an ``InnerStream`` as
soon as the response head has been decrypted. Iterating it yields content pieces as the enclave produces them;
the stream counts as complete only after its final chunk opened with the "final" AAD. A relay that drops or
reorders a chunk raises ``ChunkIntegrityError``; one that cuts the stream raises ``StreamTruncatedError``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any

import httpx

from enclavia.crypto.bhttp import Fields, Request, encode_request
from enclavia.crypto.bhttp_stream import Body, Event, Head, ResponseStreamDecoder, Tail
from enclavia.crypto.chunked_ohttp import (
    CHUNKED_REQUEST_MEDIA_TYPE,
    ChunkedResponseOpener,
    encapsulate_chunked_request,
)
from enclavia.crypto.hpke import Suite
from enclavia.crypto.ohttp import KeyConfig
from enclavia.errors import MalformedMessageError, StreamTruncatedError, TransportError


class InnerStream:
    """One streamed inner response. Use as a context manager, or iterate it to the end."""

    def __init__(
        self,
        response: httpx.Response,
        opener: ChunkedResponseOpener,
        on_complete: Callable[[InnerStream], None] | None = None,
    ) -> None:
        self._response = response
        self._raw = response.iter_raw()
        self._opener = opener
        self._decoder = ResponseStreamDecoder()
        self._pending: list[Event] = []
        self._on_complete = on_complete
        self._content: list[bytes] = []
        self.trailers: Fields = ()
        self.complete = False
        self.receipt: Any = None  # the verified receipt, once complete (when the client asked for one)
        head = self._next_event()
        if not isinstance(head, Head):
            raise MalformedMessageError("stream does not start with a response head")
        self.status = head.status
        self.headers = head.headers

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name), None)

    def trailer(self, name: str) -> str | None:
        return next((v for k, v in self.trailers if k == name), None)

    @property
    def content(self) -> bytes:
        """Everything received so far (all of it once the stream is complete)."""
        return b"".join(self._content)

    def _next_event(self) -> Event | None:
        while not self._pending:
            if self._opener.done:
                return None
            try:
                raw = next(self._raw)
            except StopIteration:
                final = self._opener.finish()  # raises if the final chunk is missing or forged
                self._pending += self._decoder.feed(final)
                self._decoder.finish()
                continue
            except httpx.HTTPError:
                raise StreamTruncatedError() from None
            for plaintext in self._opener.feed(raw):
                self._pending += self._decoder.feed(plaintext)
        return self._pending.pop(0)

    def __iter__(self) -> Iterator[bytes]:
        try:
            while (event := self._next_event()) is not None:
                if isinstance(event, Body):
                    self._content.append(event.data)
                    yield event.data
                elif isinstance(event, Tail):
                    self.trailers = event.trailers
            self.complete = True
            if self._on_complete is not None:
                self._on_complete(self)
        finally:
            self.close()

    def read(self) -> bytes:
        for _ in self:
            pass
        return self.content

    def close(self) -> None:
        self._response.close()

    def __enter__(self) -> InnerStream:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def open_stream(
    http: httpx.Client,
    gateway_url: str,
    *,
    key_config: KeyConfig,
    request: Request,
    on_problem: Callable[[bytes], None],
    on_complete: Callable[[InnerStream], None] | None = None,
    suite: Suite | None = None,
) -> InnerStream:
    message, opener = encapsulate_chunked_request(key_config, encode_request(request), suite=suite)
    try:
        response = http.send(
            http.build_request(
                "POST", gateway_url, content=message, headers={"content-type": CHUNKED_REQUEST_MEDIA_TYPE}
            ),
            stream=True,
        )
    except httpx.HTTPError:
        raise TransportError() from None
    try:
        if response.status_code != 200:
            on_problem(response.read())
            raise TransportError()
        return InnerStream(response, opener, on_complete)
    except BaseException:
        response.close()
        raise
