"""The pipeline alone: CPU µs per event, one event at a time against a stream's batches.

Events shaped like the Polymarket stream's (70 % book changes, 15 % trades with
their price update, the rest best bid/ask) over 5,000 instruments with real
order books, their receive times spread as at ``--rate`` events/s (so book
persistence stores what it would at that rate), through :class:`Pipeline` into a
:class:`SinkWriter` whose sink discards (storage is measured elsewhere:
``bench_sinks.py``, ``bench_e2e.py``). CPU time, not wall time, so figures
stay comparable on a shared machine. Prints figures only.

``python bench/bench_pipeline.py [--events N] [--repeat R]``
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections.abc import Sequence
from typing import Any

from venuefeed.book import OrderBook
from venuefeed.config import load_config
from venuefeed.models import BookDelta, BookLevel, BookSnapshot, Event, PriceUpdate, Trade
from venuefeed.pipeline.router import Pipeline
from venuefeed.pipeline.writer import SinkWriter
from venuefeed.sinks.base import Sink


class Discard(Sink):
    name = "discard"

    async def write(self, batch: Sequence[Any]) -> None:
        return None


def make_events(
    count: int, instruments: int, rate: float, seed: int = 1
) -> tuple[list[Event], dict[str, OrderBook]]:
    rng = random.Random(seed)
    now = time.time_ns()
    books: dict[str, OrderBook] = {}
    for n in range(instruments):
        book = books[f"tok{n}"] = OrderBook("pm", f"tok{n}")
        book.load_snapshot(BookSnapshot(
            venue="pm", instrument=f"tok{n}", ts_venue=now, ts_recv=now,
            bids=[BookLevel(f"0.{40 - i}", "100") for i in range(10)],
            asks=[BookLevel(f"0.{60 + i}", "100") for i in range(10)],
        ))  # fmt: skip
    events: list[Event] = []
    for n in range(count):
        tok = f"tok{rng.randrange(instruments)}"
        ts = now + int(n * 1e9 / rate)  # receive times as at this rate: book persistence sees it
        roll = rng.random()
        if roll < 0.70:
            price = f"0.{rng.randrange(31, 41)}"
            level = BookLevel(price, str(rng.randrange(1, 500)))
            events.append(BookDelta(venue="pm", instrument=tok, ts_venue=ts, ts_recv=ts,
                                    bids=[level], asks=[]))  # fmt: skip
        elif roll < 0.85:
            events.append(Trade(venue="pm", instrument=tok, ts_venue=ts, ts_recv=ts,
                                trade_id=f"t{n}", price="0.5", size="10", side="buy"))  # fmt: skip
            events.append(PriceUpdate(venue="pm", instrument=tok, ts_venue=ts, ts_recv=ts,
                                      price="0.5", size="10"))  # fmt: skip
        else:
            events.append(PriceUpdate(venue="pm", instrument=tok, ts_venue=ts, ts_recv=ts,
                                      price="0.45", size=None, source="best_bid_ask"))  # fmt: skip
    return events, books


async def run(events: list[Event], books: dict[str, OrderBook], batch: int | None) -> float:
    settings = load_config(environ={})
    writer = SinkWriter(Discard(), max_pending=1_000_000, batch_size=5_000)
    writer.start()
    pipeline = Pipeline(settings, writer)
    pipeline.set_book_lookup(lambda _v, i: books.get(i))
    started = time.process_time()
    if batch is None:
        for event in events:
            await pipeline.process(event)
    else:
        process_batch = pipeline.process_batch  # type: ignore[attr-defined,unused-ignore]
        for i in range(0, len(events), batch):
            await process_batch(events[i : i + batch])
    await writer.drain()
    spent = time.process_time() - started
    await writer.close()
    return 1e6 * spent / len(events)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--instruments", type=int, default=5_000)
    parser.add_argument("--rate", type=float, default=5_000, help="events/s the times span")
    parser.add_argument("--repeat", type=int, default=3, help="best of R runs")
    parser.add_argument("--batch", type=int, help="only this batch size (0: one at a time)")
    args = parser.parse_args()
    events, books = make_events(args.events, args.instruments, args.rate)
    modes: list[int | None] = [None]
    if hasattr(Pipeline, "process_batch"):
        modes += [1, 16, 256]
    if args.batch is not None:  # one mode only (e.g. under callgrind: instructions per event)
        modes = [args.batch or None]
    for mode in modes:
        best = min([await run(events, books, mode) for _ in range(args.repeat)])
        label = (
            "process(event), one at a time" if mode is None else f"process_batch, {mode:>3} a batch"
        )
        print(f"{label:34s} {best:6.2f} µs/event")


if __name__ == "__main__":
    asyncio.run(main())
