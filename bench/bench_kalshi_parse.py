"""Kalshi hot path: µs per ``orderbook_delta`` frame (prints figures, asserts nothing).

Stages: typed decode only; ``parse_frame`` (decode + checked canonical
increment); the whole feed (seq check, ``OrderBook.add``, BookDelta) through
its batch entry point ``on_frames``, once with one frame a batch and once with
64 (a burst, as the pump hands them over). The baseline is a plain
``msgspec.json.decode`` to dicts plus a dict book update.

    PYTHONPATH=src python bench/bench_kalshi_parse.py
"""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec

from venuefeed.transport import Frame
from venuefeed.venues.kalshi import parse
from venuefeed.venues.kalshi import protocol as p
from venuefeed.venues.kalshi.feed import KalshiFeed
from venuefeed.venues.rejects import Rejects

N = 200_000
TICKER = "FED-23DEC-T3.00"
RECV = 1669149842000 * 1_000_000
"""A second after the frames' ``ts_ms``: inside the parser's time window."""


def frames() -> list[bytes]:
    out = []
    for seq in range(2, N + 2):
        side = "yes" if seq % 2 else "no"
        price = 0.30 + (seq % 10) / 100 if side == "yes" else 0.45 + (seq % 10) / 100
        delta = "5.00" if (seq // 2) % 2 == 0 else "-5.00"
        out.append(
            msgspec.json.encode(
                {
                    "type": "orderbook_delta",
                    "sid": 1,
                    "seq": seq,
                    "msg": {
                        "market_ticker": TICKER,
                        "market_id": "9b0f6b43-5b68-4f9f-9f02-9a2d1b8ac1a1",
                        "price_dollars": f"{price:.3f}",
                        "delta_fp": delta,
                        "side": side,
                        "ts": "2022-11-22T20:44:01Z",
                        "ts_ms": 1669149841000,
                    },
                }
            )
        )
    return out


def timed(label: str, fn: Callable[[bytes], object], data: list[bytes]) -> None:
    start = time.perf_counter()
    for frame in data:
        fn(frame)
    elapsed = time.perf_counter() - start
    print(f"{label:<44} {elapsed / len(data) * 1e6:6.2f} µs/frame")


def main() -> None:
    data = frames()
    print(f"{N:,} orderbook_delta frames, {sum(map(len, data)) / N:.0f} bytes each")

    book: dict[tuple[str, str], float] = {}

    def baseline(frame: bytes) -> None:
        msg = msgspec.json.decode(frame)["msg"]
        key = (msg["side"], msg["price_dollars"])
        book[key] = book.get(key, 0.0) + float(msg["delta_fp"])

    timed("baseline: dict decode + dict book", baseline, data)
    timed("typed decode (msgspec structs)", p.ws_decoder.decode, data)
    rejects = Rejects("kalshi")

    def to_change(frame: bytes) -> object:
        return parse.parse_frame(frame, RECV, rejects)

    timed("parse_frame: decode + checked increment", to_change, data)

    for batch in (1, 64):
        feed = subscribed_feed()
        items = [Frame(frame, RECV, 0) for frame in data]
        batches = [items[i : i + batch] for i in range(0, len(items), batch)]
        start = time.perf_counter()
        for chunk in batches:
            feed.on_frames(chunk)
        elapsed = time.perf_counter() - start
        label = f"feed: seq check + OrderBook.add + BookDelta ({batch}/batch)"
        print(f"{label:<44} {elapsed / len(data) * 1e6:6.2f} µs/frame")
        print(f"gaps: {feed.gaps}, frames refused: {rejects.total + feed.rejects.total}")


def subscribed_feed() -> KalshiFeed:
    """A feed with one acknowledged ``orderbook_delta`` sid and a snapshot of ``TICKER``."""
    feed = KalshiFeed({"books"})
    feed.subscribe_frames([TICKER])
    ack = b'{"type":"subscribed","id":1,"msg":{"channel":"orderbook_delta","sid":1}}'
    snapshot = {
        "type": "orderbook_snapshot",
        "sid": 1,
        "seq": 1,
        "msg": {
            "market_ticker": TICKER,
            "yes_dollars_fp": [[f"{0.30 + i / 100:.4f}", "100.00"] for i in range(10)],
            "no_dollars_fp": [[f"{0.45 + i / 100:.4f}", "100.00"] for i in range(10)],
        },
    }
    feed.on_frames([Frame(ack, 0, 0), Frame(msgspec.json.encode(snapshot), 0, 0)])
    return feed


if __name__ == "__main__":
    main()
