"""Rate limits for unauthenticated and per-requester surfaces (host gateway, broker challenge, admin login).

Pure: the clock is injected, nothing here does I/O. Any package may use it (like ``errors``).
``KeyedLimiter`` keeps one token bucket per key (a source address, a requester id) and at most
``max_keys`` of them: the least recently used bucket is dropped first, so a flood of distinct keys
costs bounded memory. A dropped key starts again with a full bucket, which is the price of the bound.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; each allowed event takes one."""

    rate: float
    burst: float
    clock: Callable[[], float] = time.monotonic
    _tokens: float = field(init=False)
    _last: float = field(init=False)

    def __post_init__(self) -> None:
        if self.rate < 0 or self.burst < 1:
            raise ValueError("rate must be >= 0 and burst >= 1")
        self._tokens = self.burst
        self._last = self.clock()

    def allow(self) -> bool:
        now = self.clock()
        self._tokens = min(self.burst, self._tokens + max(0.0, now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def available(self) -> bool:
        """Whether an event would be allowed now, without taking a token (refills first)."""
        now = self.clock()
        self._tokens = min(self.burst, self._tokens + max(0.0, now - self._last) * self.rate)
        self._last = now
        return self._tokens >= 1

    def retry_after(self) -> float:
        """Seconds until the next event would be allowed (0 when one is available now)."""
        if self._tokens >= 1:
            return 0.0
        if self.rate == 0:
            return float("inf")
        return (1 - self._tokens) / self.rate


@dataclass
class KeyedLimiter:
    """One ``TokenBucket`` per key, bounded in number (LRU eviction)."""

    rate: float
    burst: float
    max_keys: int = 10_000
    clock: Callable[[], float] = time.monotonic
    _buckets: OrderedDict[str, TokenBucket] = field(init=False, default_factory=OrderedDict)

    def __post_init__(self) -> None:
        if self.max_keys < 1:
            raise ValueError("max_keys must be >= 1")
        TokenBucket(self.rate, self.burst, self.clock)  # validates rate and burst once

    def _bucket(self, key: str) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket(self.rate, self.burst, self.clock)
            self._buckets[key] = bucket
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket

    def allow(self, key: str) -> bool:
        return self._bucket(key).allow()

    def blocked(self, key: str) -> bool:
        """True while ``key`` has no token left (checks without taking one: e.g. refuse a source that has
        failed too often before even looking at its next attempt, and charge only the failures)."""
        bucket = self._buckets.get(key)
        return bucket is not None and not bucket.available()

    def retry_after(self, key: str) -> float:
        bucket = self._buckets.get(key)
        return 0.0 if bucket is None else bucket.retry_after()

    def __len__(self) -> int:
        return len(self._buckets)
