"""Token bucket: attestation evidence is fresh per nonce, so its rate is bounded (see enclavia.ratelimit)."""

from __future__ import annotations

from enclavia.ratelimit import KeyedLimiter, TokenBucket

__all__ = ["KeyedLimiter", "TokenBucket"]
