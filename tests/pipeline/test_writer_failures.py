"""The writer under storage failures: nothing dropped, only proven-invalid records set aside.

Each test drives a real :class:`SinkWriter` against a sink that fails the way
a backend does -- unavailable, unclassified, refusing one record -- and checks
what was stored, what was held, and what status says.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from venuefeed import metrics
from venuefeed.models import Trade
from venuefeed.pipeline.writer import SinkWriter
from venuefeed.sinks.base import InvalidRecords, Record, Sink, SinkUnavailable
from venuefeed.sinks.deadletter import DeadLetterStore, read_dead_letters


def trade(n: int, price: str = "0.5") -> Trade:
    return Trade(
        venue="v", instrument="i", ts_venue=n, ts_recv=n, trade_id=str(n), price=price, size="1"
    )


class Table(Sink):
    """A keyed table that fails on demand: ``failure`` is raised for every write while set."""

    name = "table"

    def __init__(self) -> None:
        self.rows: dict[str, Trade] = {}
        self.failure: Exception | None = None
        self.calls: list[int] = []
        """Size of every batch the sink was asked to write."""

    async def write(self, batch: Sequence[Record]) -> None:
        await asyncio.sleep(0)
        self.calls.append(len(batch))
        if self.failure is not None:
            raise self.failure
        bad = [r for r in batch if isinstance(r, Trade) and r.price == "bad"]
        if bad:
            raise InvalidRecords("table", f"CHECK constraint failed: price ({len(bad)} bad)")
        for record in batch:
            assert isinstance(record, Trade)
            self.rows[record.trade_id] = record


async def wait_for(predicate: Callable[[], bool], within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


@pytest.mark.parametrize(
    "failure",
    [
        SinkUnavailable("table: disk full (SQLITE_FULL: database or disk is full)"),
        RuntimeError("something nobody classified"),
        ValueError("an error that looks like data but was not proven by the sink"),
    ],
    ids=["unavailable", "unclassified", "unproven-value-error"],
)
async def test_a_failing_sink_keeps_every_record_and_resumes_by_itself(failure: Exception) -> None:
    sink = Table()
    sink.failure = failure
    writer = SinkWriter(sink, max_pending=1_000, batch_size=50, retry_max_seconds=0.05)
    writer.start()
    for n in range(300):
        await writer.put(trade(n))
    await wait_for(lambda: len(sink.calls) >= 5)  # retried, again and again
    assert sink.rows == {} and writer.rejected == 0
    assert writer.held == 300
    (problem,) = writer.problems()
    assert problem.startswith("storage: table: ") and str(failure) in problem
    assert "since 20" in problem and "300 records held" in problem
    assert metrics.SINK_FAILING.labels("table")._value.get() == 1
    assert set(sink.calls) == {50}  # never bisected: an outage is not a data error
    sink.failure = None
    await asyncio.wait_for(writer.close(), 10)
    assert sorted(sink.rows, key=int) == [str(n) for n in range(300)]
    assert writer.problems() == [] and writer.failing_since is None
    assert metrics.SINK_FAILING.labels("table")._value.get() == 0


async def test_intake_stops_at_the_bound_while_storage_fails() -> None:
    sink = Table()
    sink.failure = SinkUnavailable("table: database locked")
    writer = SinkWriter(sink, max_pending=20, batch_size=10, retry_max_seconds=0.05)
    for n in range(20):
        assert writer.offer(trade(n))
    assert not writer.offer(trade(20))
    writer.start()  # takes a batch of 10 and holds it
    for n in range(20, 30):
        await asyncio.wait_for(writer.put(trade(n)), 5)
    assert writer.pending == 20
    blocked = asyncio.create_task(writer.put(trade(30)))
    await asyncio.sleep(0.2)
    assert not blocked.done()  # backpressure: intake waits, nothing is dropped
    problems = writer.problems()
    assert any("writer queue full (20 records): intake is waiting" in p for p in problems)
    assert any("30 records held" in p for p in problems)
    sink.failure = None
    await asyncio.wait_for(blocked, 5)
    await asyncio.wait_for(writer.close(), 10)
    assert len(sink.rows) == 31


async def test_one_invalid_record_is_bisected_out_and_set_aside_with_its_reason(
    tmp_path: Path,
) -> None:
    sink = Table()
    dead = DeadLetterStore(tmp_path / "dead.jsonl")
    writer = SinkWriter(sink, batch_size=64, dead_letters=dead)
    for n in range(64):
        writer.offer(trade(n, price="bad" if n == 37 else "0.5"))
    before = metrics.SINK_DEAD_LETTERS.labels("table")._value.get()
    writer.start()
    await writer.close()
    assert sorted(sink.rows, key=int) == [str(n) for n in range(64) if n != 37]
    (letter,) = read_dead_letters(tmp_path / "dead.jsonl")
    assert letter.sink == "table" and letter.reason == "CHECK constraint failed: price (1 bad)"
    assert letter.to_record() == trade(37, "bad") and letter.kind == "Trade"
    assert writer.rejected == 1
    assert metrics.SINK_DEAD_LETTERS.labels("table")._value.get() - before == 1
    assert len(sink.calls) <= 2 * 6 + 1  # ~2·log2(64) writes, not one per record
    (problem,) = writer.problems()  # recently set aside: status says so
    assert "1 record(s) set aside as invalid" in problem and "CHECK constraint" in problem
    assert str(tmp_path / "dead.jsonl") in problem


class OutageMidBisect(Table):
    """Refuses record 5 as invalid; goes down after the first split, then comes back."""

    def __init__(self) -> None:
        super().__init__()
        self.down_after = 2

    async def write(self, batch: Sequence[Record]) -> None:
        if len(self.calls) == self.down_after:
            self.failure = SinkUnavailable("table: connection refused")
        await super().write(batch)


async def test_an_outage_during_bisection_keeps_progress_and_sets_aside_once(
    tmp_path: Path,
) -> None:
    sink = OutageMidBisect()
    dead = DeadLetterStore(tmp_path / "dead.jsonl")
    writer = SinkWriter(sink, batch_size=16, dead_letters=dead, retry_max_seconds=0.05)
    for n in range(16):
        writer.offer(trade(n, price="bad" if n == 5 else "0.5"))
    writer.start()
    await wait_for(lambda: writer.failing_since is not None)
    sink.failure = None
    sink.down_after = -1
    await asyncio.wait_for(writer.close(), 10)
    assert sorted(sink.rows, key=int) == [str(n) for n in range(16) if n != 5]
    assert [d.to_record() for d in read_dead_letters(tmp_path / "dead.jsonl")] == [trade(5, "bad")]


async def test_a_full_dead_letter_store_holds_the_batch_instead(tmp_path: Path) -> None:
    sink = Table()
    dead = DeadLetterStore(tmp_path / "dead.jsonl", max_bytes=1024)
    (tmp_path / "dead.jsonl").write_bytes(b"x" * 1000 + b"\n")
    writer = SinkWriter(sink, batch_size=8, dead_letters=dead, retry_max_seconds=0.05)
    for n in range(8):
        writer.offer(trade(n, price="bad" if n == 3 else "0.5"))
    writer.start()
    await wait_for(lambda: writer.failing_since is not None)
    assert "dead-letter file" in (writer.last_error or "") and "at its bound" in (
        writer.last_error or ""
    )
    # Bisecting stored 0-2; the bad record and the half not yet tried are kept, not dropped.
    assert writer.held == 5 and sorted(sink.rows) == ["0", "1", "2"]
    dead.max_bytes = 1_000_000
    await asyncio.wait_for(writer.close(), 10)
    assert len(sink.rows) == 7 and dead.count == 1


async def test_shutdown_gives_up_only_without_progress_and_says_what_was_lost() -> None:
    sink = Table()
    sink.failure = SinkUnavailable("table: disk full")
    writer = SinkWriter(sink, batch_size=10, retry_max_seconds=0.05, close_patience_seconds=0.3)
    writer.start()
    for n in range(25):
        await writer.put(trade(n))
    lost = metrics.INGESTION_ERRORS.labels("*", "abandoned_at_shutdown")
    before = lost._value.get()
    await asyncio.wait_for(writer.close(), 10)
    assert writer.abandoned == 25 and lost._value.get() - before == 25
    assert sink.rows == {}
