"""The broker's unauthenticated surface, bounded: per-source rate limits and periodic ledger aggregates.

Anyone who can reach the broker can ask for a challenge or try an admin token. Each of those used to be
one permanent ledger record, so an anonymous client could grow the ledger without bound. Now:

* challenges are limited per source (token bucket, ``challenge_rate``/``challenge_burst``), and failed
  admin authentications too (``admin_fail_rate``/``admin_fail_burst``: only failures take a token, and a
  source out of tokens is refused before its next attempt is even compared); refusals are
  ``BrokerRateLimitedError`` (429). Memory is bounded by ``KeyedLimiter``'s key cap.
* the ledger holds one aggregate record per (action, outcome, code) and window (``aggregate_every_s``,
  default 60 s) with the count, followed by a signed checkpoint. At most four kinds exist (challenge ok,
  challenge rate-limited, admin auth denied, admin auth rate-limited), so the unauthenticated surface adds
  at most 4 records (and 1 checkpoint) per window, however many requests arrive. A window is written on
  the first request after it ends and when the broker stops; a crash loses at most the counts of one
  window (the Prometheus counters have them too).

Attestations and releases stay one record each: an attestation consumes a challenge (so it is bounded by
the challenge limit), and a release needs a token the broker signed.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from starlette.requests import Request

from enclavia.ratelimit import KeyedLimiter

Kind = tuple[str, str, str]  # (action, outcome, code)


@dataclass
class Aggregates:
    every_s: float
    clock: Callable[[], float]
    _counts: Counter[Kind] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _started: float = field(init=False)

    def __post_init__(self) -> None:
        self._started = self.clock()

    def add(self, action: str, outcome: str, code: str) -> None:
        with self._lock:
            self._counts[(action, outcome, code)] += 1

    def take_due(self, *, force: bool = False) -> list[tuple[Kind, int]]:
        """The counts of a finished window (or of the current one with ``force``), removed."""
        with self._lock:
            now = self.clock()
            if not self._counts or (not force and now - self._started < self.every_s):
                return []
            items = sorted(self._counts.items())
            self._counts.clear()
            self._started = now
            return items

    def put_back(self, items: list[tuple[Kind, int]]) -> None:
        """A window whose write failed (store down): counted again in the next one."""
        with self._lock:
            for kind, n in items:
                self._counts[kind] += n


class SourceLimiter:
    """A thread-safe ``KeyedLimiter``."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float]) -> None:
        self._limiter = KeyedLimiter(rate, burst, clock=clock)
        self._lock = threading.Lock()

    def allow(self, source: str) -> bool:
        with self._lock:
            return self._limiter.allow(source)

    def blocked(self, source: str) -> bool:
        with self._lock:
            return self._limiter.blocked(source)


def source_of(request: Request) -> str:
    """The rate-limit key of a request: its peer address (behind a proxy, the proxy's: limit there too)."""
    return request.client.host if request.client else "unknown"
