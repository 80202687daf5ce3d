"""Sink writer backpressure and isolation; supervisor restarts and failure marking."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from venuefeed.models import Trade
from venuefeed.pipeline.writer import SinkWriter
from venuefeed.sinks.base import InvalidRecords, Record, Sink, SinkUnavailable
from venuefeed.supervisor import Supervisor


def trade(n: int, price: str = "0.5") -> Trade:
    return Trade(
        venue="v", instrument="i", ts_venue=n, ts_recv=n, trade_id=str(n), price=price, size="1"
    )


class MemorySink(Sink):
    name = "memory"

    def __init__(self, delay: float = 0.0, down_for: int = 0) -> None:
        self.rows: dict[str, Trade] = {}
        self.batches: list[int] = []
        self.delay = delay
        self.down_for = down_for

    async def write(self, batch: Sequence[Record]) -> None:
        await asyncio.sleep(self.delay)
        if self.down_for > 0:
            self.down_for -= 1
            raise SinkUnavailable("down")
        for record in batch:
            assert isinstance(record, Trade)
            if record.price == "bad":
                raise InvalidRecords("memory", "bad price")
        self.batches.append(len(batch))
        for record in batch:
            self.rows[record.trade_id] = record  # type: ignore[union-attr]


async def test_slow_sink_applies_backpressure_and_loses_nothing() -> None:
    sink = MemorySink(delay=0.01)
    writer = SinkWriter(sink, max_pending=20, batch_size=8)
    writer.start()
    for n in range(200):
        await writer.put(trade(n))
        assert writer.pending <= 20
    await writer.close()
    assert len(sink.rows) == 200
    assert writer.backpressure_waits > 0
    assert max(sink.batches) <= 8 and len(sink.batches) < 200  # batched under load


async def test_bad_record_rejected_alone() -> None:
    sink = MemorySink()
    writer = SinkWriter(sink, batch_size=50)
    for n in range(10):
        writer.offer(trade(n, price="bad" if n == 4 else "0.5"))
    writer.start()
    await writer.close()
    assert sorted(sink.rows) == [str(n) for n in range(10) if n != 4]
    assert writer.rejected == 1
    (letter,) = writer.dead_letters.memory
    assert (letter.sink, letter.reason, letter.to_record()) == (
        "memory",
        "bad price",
        trade(4, "bad"),
    )
    assert writer.stored == 9 and writer.failing_since is None


async def test_unavailable_sink_retried_until_back() -> None:
    sink = MemorySink(down_for=3)
    writer = SinkWriter(sink)
    writer.start()
    await writer.put(trade(1))
    await asyncio.wait_for(writer.close(), 10)
    assert list(sink.rows) == ["1"]


async def test_supervisor_restarts_and_marks_failed() -> None:
    sup = Supervisor(max_failures=3, backoff_base=0.001, backoff_cap=0.01)
    runs = 0

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        raise ConnectionError(f"venue down #{runs}")

    component = sup.start("v:stream", flaky)
    for _ in range(200):
        await asyncio.sleep(0.005)
        if runs >= 4:
            break
    assert component.state == "failed"
    assert component.restarts >= 3 and "venue down" in (component.last_error or "")
    assert sup.errors.recent()[0]["component"] == "v:stream"
    healthy_ran = asyncio.Event()

    async def healthy() -> None:
        healthy_ran.set()
        await asyncio.sleep(10)

    other = sup.start("w:stream", healthy)
    await asyncio.wait_for(healthy_ran.wait(), 1)
    assert other.state == "running"  # one failing component does not stop the others
    await sup.stop_all()
    assert component.state == "stopped" and other.state == "stopped"
