"""Stored-book cadence: once per instrument per jittered interval, spread over time."""

from __future__ import annotations

from venuefeed.pipeline.cadence import PersistCadence

S = 1_000_000_000


def test_a_book_never_stored_is_due_and_then_waits_its_jittered_interval() -> None:
    cadence = PersistCadence(10, jitter=0.5, seed=7)
    assert cadence.due("a", 0)
    cadence.stored("a", 0)
    assert not cadence.due("a", int(7.49 * S))  # never before interval × (1 - jitter/2)
    assert cadence.due("a", int(12.5 * S))  # always by interval × (1 + jitter/2)


def test_due_times_of_many_instruments_spread_over_the_window() -> None:
    cadence = PersistCadence(10, jitter=0.5, seed=1)
    for n in range(1000):
        cadence.stored(n, 0)  # all stored at the same instant (a start-up sync)
    due_per_second = [0] * 13
    for second in range(13):
        now = (second + 1) * S
        due_per_second[second] = sum(cadence.due(n, now) for n in range(1000))
    arrivals = [b - a for a, b in zip([0, *due_per_second], due_per_second, strict=False)]
    assert arrivals[:7] == [0] * 7  # nothing due before 7.5 s
    assert due_per_second[12] == 1000  # everything due by 12.5 s
    assert max(arrivals) < 350  # about 200 a second over 5 s, not 1000 at once


def test_without_jitter_the_interval_is_exact() -> None:
    cadence = PersistCadence(2, jitter=0)
    cadence.stored("a", 0)
    assert not cadence.due("a", 2 * S - 1) and cadence.due("a", 2 * S)
