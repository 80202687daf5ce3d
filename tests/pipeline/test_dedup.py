"""RecentKeys: duplicates recognised within the horizon, memory bounded by time and count."""

from __future__ import annotations

from venuefeed.pipeline.dedup import RecentKeys


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_keys_are_forgotten_after_the_horizon() -> None:
    clock = Clock()
    keys = RecentKeys(capacity=1000, horizon_seconds=300, clock=clock)
    assert not keys.seen(("kalshi", "K1", "t1"))
    clock.now += 299
    assert keys.seen(("kalshi", "K1", "t1"))  # a polling pass re-read it: a duplicate
    assert not keys.seen(("kalshi", "K1", "t2"))
    clock.now += 2  # t1 is 301 s old, t2 2 s
    assert not keys.seen(("kalshi", "K1", "t3"))
    assert len(keys) == 2  # t1 forgotten when t3 came in
    assert keys.seen(("kalshi", "K1", "t2")) and keys.duplicates == 2


def test_steady_traffic_keeps_memory_flat() -> None:
    """At a steady rate the number of keys stops growing at rate x horizon."""
    clock = Clock()
    keys = RecentKeys(capacity=1_000_000, horizon_seconds=60, clock=clock)
    sizes = []
    for second in range(600):
        clock.now += 1
        for n in range(10):
            keys.seen(("polymarket", "tok", f"{second}-{n}"))
        sizes.append(len(keys))
    assert max(sizes[100:]) == min(sizes[100:]) <= 610


def test_the_count_limit_still_applies_within_the_horizon() -> None:
    keys = RecentKeys(capacity=3, horizon_seconds=300, clock=Clock())
    for n in range(5):
        keys.seen(n)
    assert len(keys) == 3 and not keys.seen(0) and keys.seen(4)


def test_without_a_horizon_only_the_count_bounds_it() -> None:
    clock = Clock()
    keys = RecentKeys(capacity=10, clock=clock)
    keys.seen("a")
    clock.now += 86_400
    assert keys.seen("a")
