"""venuefeed's rows in the shared anchor harness (``../shared/bench/anchors``).

The harness times cryptofeed, nautilus_trader and a CPython floor on the same
generated Binance depth and Polymarket market-channel streams; this script adds
venuefeed's real per-frame path, in the harness's result format, so that
``report.py`` prints it in the same table as a multiple of the same run's floor.

Rows (per stream):

* ``venuefeed stream only``: what the live stream does for each received
  frame -- the transport's ``Frame``, the venue's parse + book + sequence
  checks, and the hop through the stream's queue to its consumer.
* ``venuefeed stream+pipeline``: the same, then every event through
  :meth:`venuefeed.pipeline.router.Pipeline.process` (dedup, quality checks,
  book persistence with top-N snapshots, live hub, counters) with the sink
  writer replaced by a list append.

Frames are handed over as ``bytes`` with the receive time the transport would
stamp: the venue's own event time plus 50 ms, computed before the timing (the
parsers refuse times outside a window around the receive time, and the book
persistence cadence follows the receive time, so "now" would be wrong on a
recorded stream). Each pass starts from fresh state: the Binance book loaded
from the harness's REST snapshot body through venuefeed's own REST parser, the
200 Polymarket tokens subscribed with their markets known. The pipeline runs in
a real asyncio loop; nothing in it suspends, as on a live loop between socket
reads.

The entry point is the venue's sans-IO feed, driven as the generic pump
(:class:`venuefeed.venues.pump.FeedStream`) drives it: a list of frames per batch
into ``feed.on_frames``, the batch's events through one queue hop to the consumer,
then (with the pipeline) :meth:`Pipeline.process_batch`. ``ANCHORS_VF_BATCH``
frames make a batch (default 1: every frame on its own, the least favourable
case; a live socket hands over every frame already received). The Binance setup
gives the harness's snapshot to ``feed.on_fetched`` as the pump would after the
``Fetch`` that subscribing asks for.

Run it through ``make bench-anchors`` (the whole harness, venuefeed included)
or alone, after the harness made its streams:
``ANCHORS_STREAM_DIR=... PYTHONPATH=<harness> python bench/anchors_row.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Callable, Coroutine
from typing import Any

import benchlib as bl  # type: ignore[import-not-found]  # the harness puts it on PYTHONPATH

from venuefeed.config import Settings
from venuefeed.models import Market, Outcome, Trade
from venuefeed.pipeline.router import Pipeline
from venuefeed.transport import Frame
from venuefeed.venues.binance.feed import DEPTH, BinanceFeed, DepthFetched
from venuefeed.venues.binance.options import Options as BinanceOptions
from venuefeed.venues.binance.parse import parse_book
from venuefeed.venues.feed import VenueFeed
from venuefeed.venues.polymarket.feed import PolymarketFeed
from venuefeed.venues.rejects import Rejects

LABEL = os.environ.get("ANCHORS_VF_LABEL", "")
"""Appended to the row names, to compare two checkouts in one run (e.g. ``main``)."""
RECV_LAG_NS = 50_000_000
"""The receive time is the venue's time plus this (a typical network lag)."""
SYMBOL = "BTCUSDT"
BATCH = max(1, int(os.environ.get("ANCHORS_VF_BATCH", "1")))
"""Frames per batch handed to the feed (the pump hands over what has arrived)."""


class ListWriter:
    """The sink writer's intake, replaced by a list append (the storage side is not timed)."""

    def __init__(self) -> None:
        self.records: list[Any] = []

    def offer_many(self, records: list[Any]) -> bool:
        self.records.extend(records)
        return True

    async def put_many(self, records: list[Any]) -> None:  # never reached: offer_many takes all
        self.records.extend(records)


def recv_times(lines: list[bytes], pattern: bytes) -> list[int]:
    """Receive time per frame from the first venue time in it (the transport's stamp)."""
    found = re.compile(pattern)
    out = []
    last = 0
    for line in lines:
        times = [int(t) for t in found.findall(line)]
        last = max(times) * 1_000_000 + RECV_LAG_NS if times else last
        out.append(last)
    return out


def run_in_loop(make: Callable[[Any], Coroutine[Any, Any, Any]]) -> Callable[[Any], Any]:
    """``run(state)`` for the harness: the pass as one coroutine on the state's loop."""

    def run(state: Any) -> Any:
        return state["loop"].run_until_complete(make(state))

    return run


def new_pipeline(book_of: Callable[[str, str], Any]) -> tuple[Pipeline, ListWriter]:
    writer = ListWriter()
    pipeline = Pipeline(Settings(), writer, book_of=book_of)  # type: ignore[arg-type]
    return pipeline, writer


# -- Binance ---------------------------------------------------------------------------


def binance_setup(snapshot: bytes) -> Callable[[], dict[str, Any]]:
    def setup() -> dict[str, Any]:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        feed = BinanceFeed(frozenset({"books", "trades"}), BinanceOptions())
        # What subscribing and the first REST snapshot leave behind, without I/O.
        feed.on_subscribed([SYMBOL])
        snap = parse_book(snapshot, SYMBOL, 0, Rejects("binance"))
        assert snap is not None, "the harness snapshot must parse"
        feed.on_fetched(DEPTH, [DepthFetched(SYMBOL, snap)], 0)
        pipeline, writer = new_pipeline(lambda _venue, symbol: feed.book(symbol))
        return {"loop": loop, "feed": feed, "pipeline": pipeline, "writer": writer}

    return setup


def feed_pass(lines: list[bytes], times: list[int], with_pipeline: bool) -> Any:
    """Frames in batches through the feed, one queue hop per batch, then the pipeline."""

    async def one_pass(state: dict[str, Any]) -> Any:
        feed: VenueFeed = state["feed"]
        queue: asyncio.Queue[list[Any]] = asyncio.Queue()
        on_frames, process = feed.on_frames, state["pipeline"].process_batch
        frames = [Frame(data, ts, 0) for data, ts in zip(lines, times, strict=True)]
        trades = 0
        for i in range(0, len(frames), BATCH):
            events = on_frames(frames[i : i + BATCH]).events
            if events:
                queue.put_nowait(events)
                batch = await queue.get()
                trades += sum(1 for event in batch if type(event) is Trade)
                if with_pipeline:
                    await process(batch)
        return feed, trades

    return run_in_loop(one_pass)


def binance_check(result: tuple[BinanceFeed, int]) -> list[Any]:
    book = result[0].book(SYMBOL)
    assert book is not None
    bid, ask = book.best_prices()
    bids, asks = book.depth()
    return [round(bid or 0.0, 2), round(ask or 0.0, 2), bids, asks]


# -- Polymarket ------------------------------------------------------------------------


def polymarket_markets() -> list[Market]:
    rows = json.loads(bl.POLYMARKET_MARKETS.read_text())
    return [
        Market(
            venue="polymarket",
            market_id=row["condition_id"],
            title=row["condition_id"],
            outcomes=tuple(Outcome(t["outcome"], t["token_id"]) for t in row["tokens"]),
        )
        for row in rows
    ]


def polymarket_setup(markets: list[Market]) -> Callable[[], dict[str, Any]]:
    def setup() -> dict[str, Any]:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        feed = PolymarketFeed()
        feed.register(markets)
        feed.on_subscribed([t for m in markets for t in m.instruments])
        pipeline, writer = new_pipeline(lambda _venue, token: feed.book(token))
        return {"loop": loop, "feed": feed, "pipeline": pipeline, "writer": writer}

    return setup


def polymarket_check(result: tuple[PolymarketFeed, int]) -> list[Any]:
    feed, trades = result
    books = list(feed.books)
    levels = sum(sum(book.depth()) for book in books)
    tops = [book.best_prices() for book in books]
    sum_bids = sum(bid for bid, _ in tops if bid is not None)
    sum_asks = sum(ask for _, ask in tops if ask is not None)
    return [len(books), levels, round(sum_bids, 2), round(sum_asks, 2), trades]


# -- main ------------------------------------------------------------------------------


def versions() -> dict[str, str]:
    return {"venuefeed": bl.pkg_version("venuefeed"), "msgspec": bl.pkg_version("msgspec")}


def rows(stream: str, frames: int | None) -> list[tuple[str, Any, Any, Any, list[bytes]]]:
    """``(name, setup, run, check, lines)`` of each row of ``stream``."""
    if stream == "binance":
        lines = bl.load_lines(bl.BINANCE_DEPTH)[:frames]
        times = recv_times(lines, rb'"E":(\d+)')
        setup = binance_setup(bl.BINANCE_SNAPSHOT.read_bytes())
        return [
            (f"venuefeed {name}", setup, feed_pass(lines, times, piped), binance_check, lines)
            for name, piped in (("stream only", False), ("stream+pipeline", True))
        ]
    lines = bl.load_lines(bl.POLYMARKET_MARKET)[:frames]
    times = recv_times(lines, rb'"timestamp":"(\d+)"')
    setup = polymarket_setup(polymarket_markets())
    return [
        (f"venuefeed {name}", setup, feed_pass(lines, times, piped), polymarket_check, lines)
        for name, piped in (("stream only", False), ("stream+pipeline", True))
    ]


def profile(stream: str, row: str, frames: int, how: str) -> None:
    """One untimed pass of one row over the first ``frames`` frames, for a profiler.

    ``how``: ``cprofile`` prints the top functions by own time; ``plain`` just runs
    (for ``valgrind --tool=callgrind``: run it with two frame counts and divide the
    difference in instructions by the difference in frames).
    """
    import cProfile
    import pstats

    for name, setup, run, check, lines in rows(stream, frames):
        if not name.endswith(row):
            continue
        state = setup()
        if how == "cprofile":
            prof = cProfile.Profile()
            prof.enable()
            result = run(state)
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        else:
            result = run(state)
        print(f"{name} / {stream}: {len(lines):,} frames, check {check(result)}")


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("streams", nargs="*", choices=["binance", "polymarket", []], default=[])
    parser.add_argument("--profile", choices=["cprofile", "plain"], help="one pass, no timing")
    parser.add_argument("--row", default="stream+pipeline", help="with --profile: which row")
    parser.add_argument("--frames", type=int, default=None, help="only the first N frames")
    args = parser.parse_args()
    streams = args.streams or ["binance", "polymarket"]
    bl.require_streams(bl.BINANCE_SNAPSHOT, bl.BINANCE_DEPTH, bl.POLYMARKET_MARKET)
    if args.profile:
        for stream in streams:
            profile(stream, args.row, args.frames or 20_000, args.profile)
        return
    for stream in streams:
        for name, setup, run, check, lines in rows(stream, args.frames):
            n = len(lines)
            print(f"{name} / {stream}: {n:,} frames", flush=True)
            ns, chk = bl.time_runs(setup, run, n, check)
            note = "writer replaced by a list append" if "pipeline" in name else ""
            label = f"{name} {LABEL}".rstrip()
            bl.record(label, stream, ns, n, "project", check=chk, versions=versions(), note=note)


if __name__ == "__main__":
    main()
