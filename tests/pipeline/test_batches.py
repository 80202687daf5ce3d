"""Batches through the pipeline and the writer: the same outcome as one event at a time,
and trades never wait behind stored books."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from msgspec.structs import replace
from prometheus_client import REGISTRY, generate_latest

from tests.sinks.helpers import delta, snapshot, trade
from venuefeed.config import load_config
from venuefeed.models import Event
from venuefeed.pipeline.router import Pipeline
from venuefeed.pipeline.writer import SinkWriter
from venuefeed.sinks.base import Record, Sink
from venuefeed.sinks.sqlite import SqliteStore, open_reader


class Gate(Sink):
    """Records each batch written; the first write waits until the gate opens."""

    name = "gate"

    def __init__(self) -> None:
        self.batches: list[list[Record]] = []
        self.open = asyncio.Event()

    async def write(self, batch: Sequence[Record]) -> None:
        await self.open.wait()
        self.batches.append(list(batch))


async def test_trades_queued_after_books_are_written_first() -> None:
    sink = Gate()
    writer = SinkWriter(sink, batch_size=10)
    writer.start()
    await writer.put(trade(0))  # taken at once; its write waits at the gate
    await asyncio.sleep(0)
    await writer.put_many([snapshot(n) for n in range(1, 31)])
    await writer.put_many([trade(n) for n in range(31, 36)])
    sink.open.set()
    await writer.drain()
    await writer.close()
    second = sink.batches[1]
    assert [type(r).__name__ for r in second[:5]] == ["Trade"] * 5  # ahead of the 30 books
    assert sum(len(b) for b in sink.batches) == 36  # and the books are all written too


def events() -> list[Event]:
    out: list[Event] = []
    for n in range(200):
        out.append(trade(n % 150))  # 50 repeats: duplicates
        out.append(delta(n, instrument=f"i{n % 7}"))
        if n % 40 == 0:
            out.append(snapshot(n))
    return out


async def test_a_batch_stores_and_counts_what_one_event_at_a_time_does(tmp_path: Path) -> None:
    settings = load_config(overrides={"ingestion.store_book_deltas": True}, environ={})
    results = {}
    for mode in ("one", "batch"):
        store = SqliteStore(tmp_path / f"{mode}.db", writer="thread")
        await store.start()
        writer = SinkWriter(store)
        writer.start()
        pipeline = Pipeline(settings, writer)
        if mode == "one":
            for event in events():
                await pipeline.process(event)
        else:
            batch = events()
            for i in range(0, len(batch), 64):
                await pipeline.process_batch(batch[i : i + 64])
        await writer.close()
        await store.close()
        reader = open_reader(store.path)
        tables = {t: reader.execute(f"SELECT * FROM {t} ORDER BY 1, 2, 3, 4").fetchall()
                  for t in ("trades", "book_deltas", "book_snapshots")}  # fmt: skip
        totals = pipeline.stats.totals()
        results[mode] = (
            {t: [tuple(r) for r in rows] for t, rows in tables.items()},
            dict(pipeline.outcomes),
            {k: totals[k] for k in ("events", "trades", "book_updates")},
        )
    assert results["batch"] == results["one"]
    stored, outcomes, counts = results["batch"]
    assert len(stored["trades"]) == 150 and outcomes["duplicate"] == 50
    assert counts == {"events": 405, "trades": 150, "book_updates": 205}


def counted(venue: str) -> dict[str, float]:
    """This venue's samples of the per-event counters, as a scrape reads them."""
    events = {
        (kind, outcome): REGISTRY.get_sample_value(
            "pipeline_events_total", {"venue": venue, "type": kind, "outcome": outcome}
        )
        or 0.0
        for kind, outcome in (
            ("Trade", "stored"),
            ("Trade", "duplicate"),
            ("BookDelta", "accepted"),
        )
    }
    trades = REGISTRY.get_sample_value("market_data_trades_ingested_total", {"venue": venue})
    return {f"{kind} {outcome}": n for (kind, outcome), n in events.items()} | {
        "ingested": trades or 0.0
    }


async def test_metrics_and_the_live_hub_are_current_once_a_batch_returns() -> None:
    """Per-event counts are plain ints read at scrape time: exact, and there at once."""
    pipeline = Pipeline(load_config(environ={}), SinkWriter(Gate()))
    shown: list[Event] = []
    pipeline.hub.observer = shown.append
    venue = "metrics-venue"  # labels no other test counts under
    batch: list[Event] = [trade(n, venue=venue) for n in (1, 2, 1)]  # the second 1: a repeat
    batch.append(replace(delta(3), venue=venue))
    before = counted(venue)
    await pipeline.process_batch(batch)
    after = counted(venue)
    assert {k: after[k] - before[k] for k in after} == {
        "Trade stored": 2,
        "Trade duplicate": 1,
        "BookDelta accepted": 1,
        "ingested": 2,
    }
    exposition = generate_latest(REGISTRY).decode()
    assert f'pipeline_events_total{{outcome="duplicate",type="Trade",venue="{venue}"}}' in (
        exposition
    )
    assert dict(pipeline.outcomes) == {"stored": 2, "duplicate": 1, "accepted": 1}
    assert shown == [batch[0], batch[1], batch[3]]  # in batch order, the repeat left out
