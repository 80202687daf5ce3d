"""The on-disk spool (order, backpressure, restart) and the fan-out (lanes, acks, factory)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from venuefeed import metrics
from venuefeed.config import load_config
from venuefeed.sinks.base import InvalidRecords, Record, SinkUnavailable, Watermark
from venuefeed.sinks.deadletter import DeadLetterStore, read_dead_letters
from venuefeed.sinks.fanout import FanOut, build_sinks
from venuefeed.sinks.spool import SpoolingSink
from venuefeed.sinks.sqlite import SqliteStore

from .helpers import FlakySink, market, trade


def spool_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("seg-*.spool"))


def trade_ids(records: Sequence[Record]) -> list[str]:
    return [r.trade_id for r in records]  # type: ignore[union-attr]


async def wait_for(predicate: object, within: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def test_outage_spools_then_drains_everything_once_in_order(tmp_path: Path) -> None:
    inner = FlakySink()
    spool = SpoolingSink(inner, tmp_path, max_bytes=10_000_000, segment_bytes=2_000)
    await spool.start()
    await spool.write([trade(0)])
    inner.down = True
    for n in range(1, 40):  # every write returns: the batch is durable in the spool
        await spool.write([trade(n), Watermark("job", str(n))])
    assert spool.status()["spooled_batches"] == 39 and not spool.status()["available"]
    assert len(spool_files(tmp_path)) > 1  # several segments
    assert metrics.SPOOL_BATCHES.labels("flaky")._value.get() == 39
    inner.down = False
    await spool.write([trade(40)])  # goes behind the spooled ones, not ahead
    await wait_for(lambda: spool.status()["spooled_batches"] == 0)
    await spool.close()
    stored = [r for r in inner.stored if not isinstance(r, Watermark)]
    assert trade_ids(stored) == [f"t{n}" for n in range(41)]
    assert not spool_files(tmp_path)


async def test_full_spool_applies_backpressure(tmp_path: Path) -> None:
    inner = FlakySink()
    inner.down = True
    spool = SpoolingSink(inner, tmp_path, max_bytes=1_300, retry_max_seconds=0.05)
    await spool.start()
    batch = [trade(n) for n in range(4)]  # 589 bytes per frame: two fit, a third does not
    await asyncio.wait_for(spool.write(batch), 2)
    await asyncio.wait_for(spool.write(batch), 2)
    blocked = asyncio.create_task(spool.write([trade(99)] * 4))
    await wait_for(lambda: spool.status()["blocked_writers"] == 1)
    assert not blocked.done()
    assert spool.status()["spooled_bytes"] == 2 * 589 <= 1_300
    inner.down = False
    await asyncio.wait_for(blocked, 5)
    await wait_for(lambda: spool.status()["spooled_batches"] == 0)
    assert spool.status()["blocked_total"] == 1
    await spool.close()
    assert len(inner.stored) == 12


async def test_restart_replays_the_spool(tmp_path: Path) -> None:
    first = FlakySink()
    first.down = True
    spool = SpoolingSink(first, tmp_path, max_bytes=1_000_000, close_timeout_seconds=0.1)
    await spool.start()
    for n in range(5):
        await spool.write([trade(n)])
    await spool.close()  # the sink is still down: the spool stays on disk
    assert spool_files(tmp_path)
    second = FlakySink()
    again = SpoolingSink(second, tmp_path, max_bytes=1_000_000)
    await again.start()
    assert again.status()["spooled_batches"] == 5
    await again.write([trade(5)])
    await wait_for(lambda: again.status()["spooled_batches"] == 0)
    await again.close()
    assert trade_ids(second.stored) == [f"t{n}" for n in range(6)]


class DownAtStart(FlakySink):
    async def start(self) -> None:
        if self.down:
            raise SinkUnavailable("not yet")


async def test_sink_down_at_start_is_started_later(tmp_path: Path) -> None:
    inner = DownAtStart()
    inner.down = True
    spool = SpoolingSink(inner, tmp_path, max_bytes=1_000_000, retry_max_seconds=0.05)
    await spool.start()
    await spool.write([trade(1), market()])
    inner.down = False
    await wait_for(lambda: spool.status()["spooled_batches"] == 0)
    await spool.close()
    assert inner.stored[1] == market()


class Rejecting(FlakySink):
    """Proves t13 invalid (a constraint error, say) whenever it is in a batch."""

    async def write(self, batch: Sequence[Record]) -> None:
        if any(getattr(r, "trade_id", "") == "t13" for r in batch) and not self.down:
            raise InvalidRecords("flaky", "CHECK constraint failed: t13")
        await super().write(batch)


async def test_invalid_record_in_a_spooled_batch_goes_to_dead_letters_alone(
    tmp_path: Path,
) -> None:
    inner = Rejecting()
    inner.down = True
    dead = DeadLetterStore(tmp_path / "dead.jsonl")
    spool = SpoolingSink(
        inner, tmp_path / "spool", max_bytes=1_000_000, retry_max_seconds=0.05, dead_letters=dead
    )
    await spool.start()
    await spool.write([trade(12)])
    await spool.write([trade(n) for n in range(13, 20)])  # t13 shares a batch with good ones
    inner.down = False
    await wait_for(lambda: spool.status()["spooled_batches"] == 0)
    await spool.write([trade(20), trade(13)])  # the direct path isolates it the same way
    await spool.close()
    assert sorted(trade_ids(inner.stored)) == sorted(f"t{n}" for n in range(12, 21) if n != 13)
    entries = list(read_dead_letters(tmp_path / "dead.jsonl"))
    assert [(e.sink, e.reason) for e in entries] == [("flaky", "CHECK constraint failed: t13")] * 2
    assert [e.to_record() for e in entries] == [trade(13), trade(13)]
    assert dead.count == 2 and "2 record(s) set aside" in dead.problems()[0]


class Unclassified(FlakySink):
    async def write(self, batch: Sequence[Record]) -> None:
        self.attempts += 1
        if self.down:
            raise RuntimeError("something nobody anticipated")
        self.stored.extend(batch)


async def test_an_unclassified_failure_keeps_the_batch_in_the_spool(tmp_path: Path) -> None:
    inner = Unclassified()
    inner.down = True
    spool = SpoolingSink(inner, tmp_path, max_bytes=1_000_000, retry_max_seconds=0.05)
    await spool.start()
    await spool.write([trade(1), trade(2)])
    await wait_for(lambda: inner.attempts >= 3)  # retried, not set aside
    assert spool.status()["spooled_records"] == 2
    (problem,) = spool.problems()
    assert "flaky: RuntimeError: something nobody anticipated" in problem
    assert "2 records in the spool" in problem
    inner.down = False
    await wait_for(lambda: spool.status()["spooled_batches"] == 0)
    await spool.close()
    assert trade_ids(inner.stored) == ["t1", "t2"] and spool.problems() == []


async def test_slow_sink_only_fills_its_own_buffer() -> None:
    fast, slow = FlakySink(), FlakySink(delay=0.05)
    slow.name = "slow"  # type: ignore[misc]
    fanout = FanOut([fast, slow], buffer_batches=4, ack="primary", primary=("flaky",))
    await fanout.start()
    for n in range(20):
        await fanout.write([trade(n)])
    # The fast sink has everything; the slow one trails within its buffer.
    assert len(fast.stored) == 20
    assert fanout.status()["slow"]["buffered_batches"] <= 4
    await fanout.close()  # drains the slow lane
    assert trade_ids(slow.stored) == [f"t{n}" for n in range(20)]


async def test_ack_all_waits_for_every_sink_and_lanes_coalesce() -> None:
    fast, slow = FlakySink(), FlakySink(delay=0.05)
    slow.name = "slow"  # type: ignore[misc]
    fanout = FanOut([fast, slow], buffer_batches=8)
    await fanout.start()
    await asyncio.gather(*(fanout.write([trade(n)]) for n in range(16)))
    assert len(fast.stored) == len(slow.stored) == 16
    assert slow.attempts < 16  # queued batches were written together
    await fanout.close()


class Broken(FlakySink):
    async def write(self, batch: Sequence[Record]) -> None:
        raise RuntimeError("disk on fire")


async def test_a_failing_sink_fails_the_write_but_not_the_others() -> None:
    good = FlakySink()
    fanout = FanOut([good, Broken()])
    await fanout.start()
    with pytest.raises(RuntimeError, match="disk on fire"):
        await fanout.write([trade(1)])
    await fanout.close()
    assert trade_ids(good.stored) == ["t1"]


async def test_build_sinks_from_settings(tmp_path: Path) -> None:
    only = load_config(overrides={"storage.sqlite_path": tmp_path / "a.db"}, environ={})
    single = build_sinks(only)
    assert isinstance(single, SpoolingSink) and isinstance(single.inner, SqliteStore)
    settings = load_config(
        overrides={
            "storage.sinks": ["sqlite", "parquet", "nats"],
            "storage.sqlite_path": tmp_path / "v.db",
            "storage.parquet_root": tmp_path / "pq",
            "storage.spool_dir": tmp_path / "spool",
            "storage.dead_letter_path": tmp_path / "dead.jsonl",
            "bus.nats_url": "nats://127.0.0.1:1",
            "bus.nats_ack_timeout_seconds": 0.2,
        },
        environ={},
    )
    sink = build_sinks(settings)
    assert isinstance(sink, FanOut)
    names = [lane.sink.name for lane in sink.lanes]
    assert names == ["sqlite", "parquet", "nats"]
    assert all(isinstance(lane.sink, SpoolingSink) for lane in sink.lanes)
    assert all(lane.sink.dead_letters is sink.dead_letters for lane in sink.lanes)
    assert sink.dead_letters is not None and sink.dead_letters.path == tmp_path / "dead.jsonl"
    await sink.start()  # NATS is unreachable: its batches spool, the others store them
    await sink.write([trade(1)])
    status = sink.status()
    assert status["nats"]["spool"]["spooled_batches"] == 1
    assert status["sqlite"]["records_written"] == 1
    (problem,) = sink.problems()
    assert problem.startswith("storage: nats: ") and "1 records in the spool" in problem
    await sink.close()
    assert spool_files(tmp_path / "spool" / "nats")


def test_build_sinks_needs_bus_settings(tmp_path: Path) -> None:
    settings = load_config(overrides={"storage.sinks": ["kafka"]}, environ={})
    with pytest.raises(ValueError, match="kafka_bootstrap_servers"):
        build_sinks(settings)
