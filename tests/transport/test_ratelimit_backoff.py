"""Token bucket (on a fake clock) and backoff/Retry-After arithmetic."""

from __future__ import annotations

import asyncio
import random

import pytest

from venuefeed.transport import Backoff, TokenBucket, parse_retry_after


class FakeClock:
    """Time that moves only when someone sleeps; sleeping yields to the loop."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


async def test_bucket_bursts_then_spaces_fifo() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10.0, 2, clock=clock, sleep=clock.sleep)
    granted: list[tuple[int, float]] = []

    async def take(n: int) -> None:
        await bucket.acquire()
        granted.append((n, round(clock.now - 100.0, 6)))

    await asyncio.gather(*(take(n) for n in range(6)))
    assert granted == [(0, 0.0), (1, 0.0), (2, 0.1), (3, 0.2), (4, 0.3), (5, 0.4)]


async def test_bucket_refills_up_to_burst_only() -> None:
    clock = FakeClock()
    bucket = TokenBucket(5.0, 3, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        assert await bucket.acquire() == 0.0
    clock.now += 60  # a long pause saves up at most `burst`
    assert bucket.tokens == 3.0
    waits = [await bucket.acquire() for _ in range(4)]
    assert waits == [0.0, 0.0, 0.0, pytest.approx(0.2)]
    with pytest.raises(ValueError):
        await bucket.acquire(4)


async def test_penalize_blocks_everyone_exactly_then_resumes_at_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10.0, 5, clock=clock, sleep=clock.sleep)
    bucket.penalize(2.5)
    bucket.penalize(1.0)  # a shorter penalty does not shorten the longer one
    waits = [await bucket.acquire() for _ in range(3)]
    assert waits == [pytest.approx(2.5), pytest.approx(0.1), pytest.approx(0.1)]


async def test_penalty_applies_to_a_caller_already_waiting() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1.0, 1, clock=clock, sleep=clock.sleep)
    await bucket.acquire()
    waiter = asyncio.create_task(bucket.acquire())  # its token is due at t=101
    await asyncio.sleep(0)  # the waiter is now asleep until then
    assert clock.now == 101.0
    bucket.penalize(3.0)  # a 429 arrives at t=101
    assert await waiter == pytest.approx(4.0)  # held until 104, not served at 101
    assert clock.now == pytest.approx(104.0)


def test_backoff_doubles_to_the_cap_and_resets() -> None:
    backoff = Backoff(1.0, 60.0, jitter=False)
    assert [backoff.next_delay() for _ in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert backoff.attempts == 8
    backoff.reset()
    assert backoff.next_delay() == 1.0
    for _ in range(5000):  # no overflow however long an outage lasts
        backoff.next_delay()
    assert backoff.next_delay() == 60.0


def test_backoff_full_jitter_stays_under_the_ceiling() -> None:
    backoff = Backoff(0.5, 4.0, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(200)]
    ceilings = [min(4.0, 0.5 * 2**n) for n in range(200)]
    assert all(0.0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert len(set(delays)) == 200  # jittered, not a fixed schedule
    assert max(delays[10:]) > 3.0 and min(delays[10:]) < 1.0  # spread over [0, cap]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 3 ", 3.0),
        ("1.5", 1.5),
        ("0", 0.0),
        ("-1", None),
        ("soon", None),
        ("", None),
        (None, None),
        ("nan", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # already past: retry now
        ("Wed, 21 Oct 2015 07:28:00 -0000", 30.0),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    now = 1445412450.0  # 2015-10-21 07:27:30 UTC
    assert parse_retry_after(value, now=now) == expected
