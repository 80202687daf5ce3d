"""Binance diff-depth hot path: µs per frame for decode, and decode + local book.

A realistic ``@depth@100ms`` frame: 20 changed levels (10 a side, a third of
them removals) close to the touch of a 1000-level book, prices and sizes in
the venue's 8-decimal text. Three figures:

* ``baseline``: typed msgspec decode + a plain ``dict`` book keyed by the wire
  text (the reference the ARCHITECTURE budget is stated against);
* ``decode``: :func:`venuefeed.venues.binance.parse.parse_frame` -> ``BookDelta``
  (every price and size checked and canonical);
* ``decode+book``: the same plus :class:`DepthSync` applying it to the shared
  :class:`~venuefeed.book.OrderBook` (sequence check, sorted levels, crossing);
* ``feed``: the same through :meth:`BinanceFeed.on_frames`, the pump's entry
  point, in batches of ``BATCH`` frames.

Prints figures only; run ``python bench/bench_binance_depth.py``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import msgspec

from venuefeed.models import BookLevel, BookSnapshot
from venuefeed.transport import Frame
from venuefeed.venues.binance.feed import BinanceFeed, DepthSync
from venuefeed.venues.binance.options import Options
from venuefeed.venues.binance.parse import parse_frame
from venuefeed.venues.rejects import Rejects

FRAMES = 2000
BATCH = 64
ROUNDS = 5
MID = 6_000_000  # ticks of 0.01
EVENT_MS = 1_700_000_000_000
RECV = (EVENT_MS + 50) * 1_000_000
"""Received 50 ms after the venue's event time: inside the parser's time window."""


def _px(ticks: int) -> str:
    return f"{ticks // 100}.{ticks % 100:02d}000000"


def _frames() -> list[bytes]:
    rng = random.Random(1)
    frames = []
    update_id = 1_000
    for _ in range(FRAMES):
        bids = [[_px(MID - 1 - int(rng.expovariate(0.1))), _qty(rng)] for _ in range(10)]
        asks = [[_px(MID + int(rng.expovariate(0.1))), _qty(rng)] for _ in range(10)]
        event = {
            "e": "depthUpdate",
            "E": EVENT_MS,
            "s": "BTCUSDT",
            "U": update_id + 1,
            "u": update_id + 20,
            "b": bids,
            "a": asks,
        }
        update_id += 20
        frames.append(msgspec.json.encode({"stream": "btcusdt@depth@100ms", "data": event}))
    return frames


def _qty(rng: random.Random) -> str:
    if rng.random() < 0.33:
        return "0.00000000"
    return f"{rng.randint(1, 500_000_000) / 1e8:.8f}"


def _sync(first: bytes) -> DepthSync:
    """A live book of 1000 levels a side that the first frame bridges."""
    sync = DepthSync("BTCUSDT")
    sync.on_delta(parse_frame(first, RECV, Rejects("binance"))[0])  # type: ignore[arg-type]
    sync.snapshot_started()
    sync.on_snapshot(
        BookSnapshot(
            venue="binance",
            instrument="BTCUSDT",
            ts_venue=0,
            ts_recv=0,
            bids=[BookLevel(_px(MID - 1 - i), "1") for i in range(1000)],
            asks=[BookLevel(_px(MID + i), "1") for i in range(1000)],
            sequence=1_001,  # within the first frame's U..u, as the venue's rule wants
        )
    )
    assert sync.book.sequence == 1_020, "the benchmark book must be live"
    return sync


def _measure(run: Callable[[list[bytes], DepthSync], None], frames: list[bytes]) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        sync = _sync(frames[0])  # set up outside the timing
        started = time.perf_counter()
        run(frames, sync)
        best = min(best, time.perf_counter() - started)
    return best / len(frames) * 1e6


class PlainDepth(msgspec.Struct):
    """The baseline's typed decode: levels as plain (price, size) tuples."""

    U: int
    u: int
    b: list[tuple[str, str]]
    a: list[tuple[str, str]]


class Envelope(msgspec.Struct):
    stream: str
    data: PlainDepth


def main() -> None:
    frames = _frames()

    decoder = msgspec.json.Decoder(Envelope)

    def baseline(batch: list[bytes], _: DepthSync) -> None:
        bids: dict[str, str] = {}
        asks: dict[str, str] = {}
        for frame in batch:
            data = decoder.decode(frame).data
            for side, levels in ((bids, data.b), (asks, data.a)):
                for price, size in levels:
                    if size == "0.00000000":
                        side.pop(price, None)
                    else:
                        side[price] = size

    rejects = Rejects("binance")

    def decode(batch: list[bytes], _: DepthSync) -> None:
        for frame in batch:
            parse_frame(frame, RECV, rejects)

    def decode_and_book(batch: list[bytes], sync: DepthSync) -> None:
        for frame in batch:
            for event in parse_frame(frame, RECV, rejects):
                sync.on_delta(event)  # type: ignore[arg-type]

    base = _measure(baseline, frames)
    print(f"frame: {len(frames[0])} bytes, 20 levels; {FRAMES} frames, best of {ROUNDS}")
    print(f"baseline (typed decode + dict book): {base:6.2f} µs/frame")
    print(f"decode (Parser -> BookDelta):        {_measure(decode, frames):6.2f} µs/frame")
    full = _measure(decode_and_book, frames)
    print(
        f"decode + book (DepthSync/OrderBook): {full:6.2f} µs/frame ({full / base:.1f}x baseline)"
    )
    feed = BinanceFeed(frozenset({"books"}), Options(), rejects)
    feed.on_subscribed(["BTCUSDT"])
    frames_in = [Frame(frame, RECV, 0) for frame in frames]

    def through_feed(batch: list[bytes], sync: DepthSync) -> None:
        feed.syncs["BTCUSDT"] = sync
        for start in range(0, len(frames_in), BATCH):
            feed.on_frames(frames_in[start : start + BATCH])

    fed = _measure(through_feed, frames)
    print(f"feed (BinanceFeed.on_frames, {BATCH}/batch): {fed:5.2f} µs/frame")
    print(f"frames refused: {rejects.total} (must be 0: every frame was parsed and applied)")


if __name__ == "__main__":
    main()
