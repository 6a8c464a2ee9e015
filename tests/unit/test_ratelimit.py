from __future__ import annotations

import pytest

from enclavia.ratelimit import KeyedLimiter, TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_burst_then_refills_at_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=2.0, burst=3, clock=clock)
    assert [bucket.allow() for _ in range(4)] == [True, True, True, False]
    assert bucket.retry_after() == pytest.approx(0.5)
    clock.now += 0.5
    assert bucket.allow() is True
    assert bucket.allow() is False


def test_bucket_ignores_a_clock_that_goes_back() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1.0, burst=1, clock=clock)
    assert bucket.allow()
    clock.now -= 50
    assert not bucket.allow()


def test_keyed_limiter_separates_keys_and_bounds_memory() -> None:
    clock = FakeClock()
    limiter = KeyedLimiter(rate=0.0, burst=1, max_keys=3, clock=clock)
    assert limiter.allow("a") and not limiter.allow("a")
    assert limiter.allow("b")
    for key in ("c", "d", "e"):
        limiter.allow(key)
    assert len(limiter) == 3
    assert limiter.retry_after("e") == float("inf")


@pytest.mark.parametrize("kwargs", [{"rate": -1.0, "burst": 1}, {"rate": 1.0, "burst": 0}])
def test_bad_parameters_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        TokenBucket(**kwargs)


def test_blocked_checks_without_taking_a_token() -> None:
    from enclavia.ratelimit import KeyedLimiter

    now = [0.0]
    limiter = KeyedLimiter(rate=1.0, burst=2, clock=lambda: now[0])
    assert not limiter.blocked("a")  # unknown key: a full bucket
    assert limiter.allow("a") and limiter.allow("a")
    assert limiter.blocked("a") and limiter.blocked("a")  # asking twice takes nothing
    now[0] = 1.0
    assert not limiter.blocked("a") and limiter.allow("a") and limiter.blocked("a")
