"""µs per Polymarket frame: decode + canonical events + local book, and the parts.

Run: ``PYTHONPATH=src python bench/bench_polymarket_parse.py``. Prints figures,
asserts nothing. The baseline line is "typed decode + a plain dict book" for
the same frame, the yardstick of ARCHITECTURE rule 10 (budget about 1.5x it).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec

from venuefeed.transport import Frame
from venuefeed.venues.polymarket import parse
from venuefeed.venues.polymarket.feed import PolymarketFeed
from venuefeed.venues.polymarket.protocol import BookMsg, PriceChangeMsg, WsMessage
from venuefeed.venues.rejects import Rejects

A = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
B = "48331043336612883890938759509493159234755048973500640148014422747788308965732"
MARKET = "0xdd22472e552920b8438158ea7238bfadfa4f736aa4cee91a6b86c39ead110917"


H = "bf32b3746fff40c76c98021b7f3f07261169dd26"
T0 = 1_729_000_000_000
"""Venue time (ms) of the first frame; frames are received a second after it."""
RECV = (T0 + 1_000) * 1_000_000


def book_frame(token: str, ts: int, best_bid: int = 49, best_ask: int = 60) -> bytes:
    """Ten levels a side in cents, best level last as the venue sends them."""
    bids = [{"price": f"0.{best_bid - 9 + i:02d}", "size": f"{100 + 7 * i}.5"} for i in range(10)]
    asks = [{"price": f"0.{best_ask + 9 - i:02d}", "size": f"{200 + 3 * i}"} for i in range(10)]
    return msgspec.json.encode({
        "event_type": "book", "market": MARKET, "asset_id": token, "bids": bids, "asks": asks,
        "timestamp": str(ts), "hash": H,
    })  # fmt: skip


def change_frame(i: int, ts: int) -> bytes:
    price = f"0.{45 + i % 5:02d}"
    size = str(100 + i % 50)
    return msgspec.json.encode({
        "event_type": "price_change", "market": MARKET, "timestamp": str(ts),
        "price_changes": [
            {"asset_id": A, "price": price, "size": size, "side": "BUY",
             "hash": H, "best_bid": "0.49", "best_ask": "0.6"},
            {"asset_id": B, "price": f"{1 - float(price):.2f}", "size": size, "side": "SELL",
             "hash": H, "best_bid": "0.4", "best_ask": "0.51"},
        ],
    })  # fmt: skip


def per_frame(fn: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    n = 20_000
    book = book_frame(A, T0 + 1)
    changes = [change_frame(i, T0 + 10 + i) for i in range(64)]
    decoder = msgspec.json.Decoder(list[WsMessage] | WsMessage)
    rejects = Rejects("polymarket")

    feed = PolymarketFeed()
    feed.on_subscribed([A, B])
    feed.markets = {A: None, B: None}  # type: ignore[dict-item]

    def on_frame(data: bytes) -> None:
        """One frame as its own batch: the pump's worst case (it hands over bursts)."""
        feed.on_frames([Frame(data, RECV, 0)])

    on_frame(book)
    # B mirrors A: its asks already hold 0.51-0.55, so the venue tops in the changes match.
    on_frame(book_frame(B, T0 + 1, best_bid=40, best_ask=51))

    # Baseline: typed decode + a plain dict book.
    dict_book: dict[str, dict[str, str]] = {"bid": {}, "ask": {}}

    def baseline_book() -> None:
        msg = decoder.decode(book)
        assert isinstance(msg, BookMsg)
        dict_book["bid"] = {lv.price: lv.size for lv in msg.bids}
        dict_book["ask"] = {lv.price: lv.size for lv in msg.asks}

    k = [0]

    def baseline_change() -> None:
        msg = decoder.decode(changes[k[0] & 63])
        k[0] += 1
        assert isinstance(msg, PriceChangeMsg) and msg.price_changes is not None
        for item in msg.price_changes:
            side = dict_book["bid" if item.side == "BUY" else "ask"]
            if item.size == "0":
                side.pop(item.price, None)
            else:
                side[item.price] = item.size

    def full_change() -> None:
        on_frame(changes[k[0] & 63])
        k[0] += 1

    rows = [
        ("book frame: decode only", per_frame(lambda: decoder.decode(book), n)),
        (
            "book frame: decode + canonical snapshot",
            per_frame(lambda: parse.parse_frame(book, RECV, rejects), n),
        ),
        ("book frame: baseline (decode + dict book)", per_frame(baseline_book, n)),
        (
            "book frame: full (decode + snapshot + book)",
            per_frame(lambda: on_frame(book), n),
        ),
        ("price_change (2 assets): decode only", per_frame(lambda: decoder.decode(changes[0]), n)),
        ("price_change: baseline (decode + dict book)", per_frame(baseline_change, n)),
        ("price_change: full (decode + deltas + book + top check)", per_frame(full_change, n)),
    ]
    for label, micros in rows:
        print(f"{label:58s} {micros:7.2f} µs/frame")
    states = {feed.books.get(t).state.value for t in (A, B)}
    print(f"books after the run: {states} (must be live: the changes were applied, not skipped)")
    refused = rejects.total + feed.rejects.total
    print(f"frames refused: {refused} (must be 0: every frame was parsed)")


if __name__ == "__main__":
    main()
