"""The enclave's side of a chunked OHTTP exchange: open the request, then stream the sealed response.

Wire (inside ``message/ohttp-chunked-res``): the response nonce, then one sealed chunk with the binary HTTP
head (indeterminate-length form), one sealed chunk per content piece as the route writes it, and the final
chunk (AAD "final") with the end of content and the trailers, where a requested receipt travels. A route
that fails half-way leaves the stream without its final chunk, which the client reports as truncated.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from enclavia.crypto.bhttp import Response, decode_request
from enclavia.crypto.bhttp_stream import encode_content_chunk, encode_response_head, encode_response_tail
from enclavia.crypto.chunked_ohttp import ChunkedGateway
from enclavia.enclave.streaming import StreamedResponse
from enclavia.errors import EnclaviaError
from enclavia.problem import PROBLEM_MEDIA_TYPE, problem_bytes

if TYPE_CHECKING:
    from enclavia.enclave.core import Enclave

Emit = Callable[[bytes], bool]


def open_chunked(enclave: Enclave, gateway: ChunkedGateway, message: bytes) -> Callable[[Emit], None]:
    from enclavia.enclave.core import _wants_receipt, with_receipt_header

    inner, sealer = gateway.open_request(message)
    request = decode_request(inner)
    routed = enclave.app.handle_streaming(request)
    want_receipt = _wants_receipt(request)

    def send_whole(emit: Emit, response: Response) -> None:
        if want_receipt:
            response = with_receipt_header(enclave, request, response)
        head = encode_response_head(response.status, response.headers)
        body = encode_content_chunk(response.content) if response.content else b""
        if emit(sealer.seal(head + body)):
            emit(sealer.seal_final(encode_response_tail(response.trailers)))

    def run(emit: Emit) -> None:
        if not emit(sealer.start()):
            return
        result: Response | StreamedResponse = routed
        if isinstance(result, StreamedResponse) and not result.incremental:
            try:
                result = result.collect()  # generated before the status is sent: failures stay problems
            except EnclaviaError as err:
                result = Response(err.status, (("content-type", PROBLEM_MEDIA_TYPE),), problem_bytes(err))
        if isinstance(result, Response):
            send_whole(emit, result)
            return
        if not emit(sealer.seal(encode_response_head(result.status, result.headers))):
            return
        parts: list[bytes] = []
        open_ = True

        def write(piece: bytes) -> bool:
            nonlocal open_
            if not piece:
                return open_
            parts.append(piece)
            open_ = open_ and emit(sealer.seal(encode_content_chunk(piece)))
            return open_

        result.run(write)
        if not open_:
            return
        trailers: tuple[tuple[str, str], ...] = ()
        if want_receipt:
            from enclavia.attestation.receipt import HEADER

            trailers = ((HEADER, enclave.receipt(request, result.status, b"".join(parts))),)
        emit(sealer.seal_final(encode_response_tail(trailers)))

    return run
