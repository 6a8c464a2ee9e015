"""Inner responses whose content is produced over time (token streams).

A route returns a ``StreamedResponse``: status and headers are known at once; ``run(write)`` then produces
the content piece by piece. ``write`` returns False once nobody is reading any more, and ``run`` should stop
soon after. The gateway seals each piece into its own chunked-OHTTP chunk as it is written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from enclavia.crypto.bhttp import Fields, Response

Write = Callable[[bytes], bool]


@dataclass(frozen=True)
class StreamedResponse:
    status: int
    headers: Fields
    run: Callable[[Write], None]
    # False: the content is one piece produced at the end (a non-streamed completion); the gateway then
    # runs it before sending the status, so a failure still becomes a problem response.
    incremental: bool = True

    def collect(self) -> Response:
        """Run to the end and return the whole response (for the non-chunked OHTTP path)."""
        parts: list[bytes] = []

        def write(piece: bytes) -> bool:
            parts.append(piece)
            return True

        self.run(write)
        return Response(status=self.status, headers=self.headers, content=b"".join(parts))
