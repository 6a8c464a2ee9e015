"""The host's span around one relayed frame: child of the client's traceparent, parent of the enclave's."""

from __future__ import annotations

from enclavia import channel
from enclavia.host.link import EnclaveLink
from enclavia.observability.trace import current_traceparent, span


async def traced_call(
    link: EnclaveLink, kind: channel.Kind, body: bytes, traceparent: str, route: str
) -> bytes:
    """``link.call`` inside an ``enclavia.host.relay`` span; the frame carries the span's traceparent, so the
    enclave's span is its child (same trace id: the correlation id end to end). Sizes and codes only."""
    with span(
        "enclavia.host.relay",
        traceparent=traceparent,
        server=True,
        enclavia__route=route,
        enclavia__bytes_in=len(body),
    ) as current:
        out = await link.call(kind, body, current_traceparent() or traceparent)
        current.set_attribute("enclavia.outcome", "ok")
        current.set_attribute("enclavia.bytes_out", len(out))
        return out
