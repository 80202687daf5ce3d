"""Every registered venue's parser entry points and per-frame consumer, made uniform.

The conformance harness runs each capture through ``ENTRIES[venue][entry]``
and compares the result with its golden file; the fuzzer (:mod:`.fuzz`) feeds
mutations to the same entries and to each venue's consumer -- the code that
turns parser output into books and published events, per frame. A venue is
added here in one block; :func:`targets` refuses a registered venue that has
no entries, so a new venue cannot skip the harness.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Final

import msgspec

from venuefeed.book import OrderBook
from venuefeed.models import EVENT_TYPES, BookSnapshot, Market
from venuefeed.testing import corpus
from venuefeed.testing.fuzz import Runner, Seed, Target
from venuefeed.transport import Frame
from venuefeed.venues import base
from venuefeed.venues.binance import parse as binance
from venuefeed.venues.binance.feed import DEPTH as BINANCE_DEPTH
from venuefeed.venues.binance.feed import BinanceFeed, DepthFetched
from venuefeed.venues.binance.options import Options as BinanceOptions
from venuefeed.venues.feed import Fetch
from venuefeed.venues.kalshi import parse as kalshi
from venuefeed.venues.kalshi.feed import KalshiFeed
from venuefeed.venues.polygon import parse as polygon
from venuefeed.venues.polygon.feed import PolygonFeed
from venuefeed.venues.polymarket import parse as polymarket
from venuefeed.venues.polymarket import user as polymarket_user
from venuefeed.venues.polymarket.feed import PolymarketFeed
from venuefeed.venues.rejects import Rejects

__all__ = ["ENTRIES", "HISTORY", "Entry", "events_of", "targets"]

Entry = Callable[[bytes, int, Rejects, Mapping[str, Any]], object]
"""``(payload, ts_recv, rejects, args) -> the parser's result, as it returns it``."""

ENTRIES: Final[dict[str, dict[str, Entry]]] = {
    "polymarket": {
        "frame": lambda d, ts, rj, a: polymarket.parse_frame(d, ts, rj),
        "user_frame": lambda d, ts, rj, a: polymarket_user.parse_user_frame(
            d, ts, rj, a.get("owner", "")
        ),
        "book": lambda d, ts, rj, a: polymarket.parse_book(d, ts, rj),
        "books": lambda d, ts, rj, a: polymarket.parse_books(d, rj),
        "markets_page": lambda d, ts, rj, a: polymarket.parse_markets_page(d, rj),
        "events_page": lambda d, ts, rj, a: polymarket.parse_events_page(d, rj),
        "markets_keyset": lambda d, ts, rj, a: polymarket.parse_markets_keyset(d, rj),
        "events_keyset": lambda d, ts, rj, a: polymarket.parse_events_keyset(d, rj),
        "trades_page": lambda d, ts, rj, a: polymarket.parse_trades_page(d, ts, rj),
        "candles": lambda d, ts, rj, a: polymarket.parse_candles(
            d, a["instrument"], a["interval_s"], ts, rj
        ),
    },
    "kalshi": {
        "frame": lambda d, ts, rj, a: kalshi.parse_frame(d, ts, rj),
        "book": lambda d, ts, rj, a: kalshi.parse_book(d, a["instrument"], ts, rj),
        "market": lambda d, ts, rj, a: kalshi.parse_market(d, rj),
        "markets_page": lambda d, ts, rj, a: kalshi.parse_markets_page(d, rj),
        "trades_page": lambda d, ts, rj, a: kalshi.parse_trades_page(d, ts, rj),
        "candles": lambda d, ts, rj, a: kalshi.parse_candles(
            d, a["instrument"], a["period_minutes"], ts, rj
        ),
    },
    "binance": {
        "frame": lambda d, ts, rj, a: binance.parse_frame(d, ts, rj),
        "book": lambda d, ts, rj, a: binance.parse_book(d, a["symbol"], ts, rj),
        "trades_page": lambda d, ts, rj, a: binance.parse_trades_page(d, a["symbol"], ts, rj),
        "recent_trades": lambda d, ts, rj, a: binance.parse_recent_trades(d, a["symbol"], ts, rj),
        "candles": lambda d, ts, rj, a: binance.parse_candles(
            d, a["symbol"], a["interval"], ts, rj
        ),
        "server_time": lambda d, ts, rj, a: binance.parse_server_time(d, rj),
        "exchange_info": lambda d, ts, rj, a: binance.parse_exchange_info(d, rj),
    },
    "polygon": {
        "frame": lambda d, ts, rj, a: polygon.parse_frame(d, ts, rj),
        "candles": lambda d, ts, rj, a: polygon.parse_candles(
            d, a["symbol"], polygon.Interval.parse(a["interval"]), ts, rj
        ),
        "trades_page": lambda d, ts, rj, a: polygon.parse_trades_page(d, a["symbol"], ts, rj),
        "quotes_page": lambda d, ts, rj, a: polygon.parse_quotes_page(d, a["symbol"], ts, rj),
    },
}

HISTORY: Final = frozenset({"trades_page", "recent_trades", "candles"})
"""Entries that read REST history: their venue times have no past limit."""

_EVENTS: Final[tuple[type, ...]] = (*EVENT_TYPES, Market)


def events_of(result: object) -> list[object]:
    """The canonical events (and markets) inside a parser's result, to check against
    the invariants: unwraps pages, ``Change``/``TickSize``/``Snapshot`` and the like."""
    if result is None:
        return []
    if isinstance(result, _EVENTS):
        return [result]
    if isinstance(result, polymarket.Change):
        return [result.delta]
    if isinstance(result, polymarket.TickSize):
        return [result.status]
    if isinstance(result, kalshi.Snapshot):
        return [result.book]
    if isinstance(result, binance.AggTradesPage):
        return list(result.trades)
    if isinstance(result, binance.KlinesPage):
        return list(result.candles)
    if isinstance(result, list | tuple):
        return [event for item in result for event in events_of(item)]
    return []


# -- the per-frame consumers -------------------------------------------------------------


class _Parser:
    """A parser entry as a fuzz runner (stateless)."""

    def __init__(self, venue: str, entry: Entry) -> None:
        self.rejects = Rejects(venue)
        self._entry = entry

    def run(self, data: bytes, ts_recv: int, args: Mapping[str, Any]) -> list[object]:
        return events_of(self._entry(data, ts_recv, self.rejects, args))

    def books(self) -> Iterable[OrderBook]:
        return ()


class _Polymarket:
    """:meth:`PolymarketFeed.on_frames` with the seeds' tokens subscribed (no socket)."""

    def __init__(self, tokens: list[str]) -> None:
        self.rejects = Rejects(polymarket.VENUE)
        self.feed = PolymarketFeed(rejects=self.rejects)
        self.feed.on_subscribed(tokens)

    def run(self, data: bytes, ts_recv: int, args: Mapping[str, Any]) -> list[object]:
        return list(self.feed.on_frames([Frame(data, ts_recv, 0)]).events)

    def books(self) -> Iterable[OrderBook]:
        return list(self.feed.books)


class _Kalshi:
    """:meth:`KalshiFeed.on_frames` (one frame a batch), its subscriptions acknowledged for
    the seeds' sids."""

    def __init__(self, tickers: list[str], sids: list[int]) -> None:
        self.rejects = Rejects(kalshi.VENUE)
        self.feed = KalshiFeed({"books", "trades", "quotes"}, rejects=self.rejects)
        for sid in sids:
            self.feed.subscribe_frames(tickers)
            ack = {
                "type": "subscribed",
                "id": sid,
                "msg": {"channel": "orderbook_delta", "sid": sid},
            }
            self.feed.on_frames([Frame(msgspec.json.encode(ack), 0, 0)])

    def run(self, data: bytes, ts_recv: int, args: Mapping[str, Any]) -> list[object]:
        return list(self.feed.on_frames([Frame(data, ts_recv, 0)]).events)

    def books(self) -> Iterable[OrderBook]:
        return list(self.feed.books)


class _Binance:
    """:meth:`BinanceFeed.on_frames`, one frame at a time, the seeds' symbols subscribed.

    A snapshot the feed asks for is answered at once with the seed REST book
    (re-labelled for the symbol), as the pump's background fetch would.
    """

    def __init__(self, symbols: list[str], snapshot: BookSnapshot | None) -> None:
        self.rejects = Rejects(binance.VENUE)
        self.feed = BinanceFeed(frozenset({"books", "trades", "quotes", "candles"}),
                                BinanceOptions(), self.rejects)  # fmt: skip
        self.feed.on_subscribed(symbols)
        self._snapshot = snapshot
        self._asked: list[str] = []
        """Snapshots asked for while answering the last ones: answered on the next frame."""

    def run(self, data: bytes, ts_recv: int, args: Mapping[str, Any]) -> list[object]:
        out = self.feed.on_frames([Frame(data, ts_recv, 0)])
        events: list[object] = list(out.events)
        asked = [*self._asked, *_fetched_keys(out.commands)]
        if asked:
            snap = self._snapshot
            results = [
                DepthFetched(
                    s, None if snap is None else msgspec.structs.replace(snap, instrument=s)
                )
                for s in asked
            ]
            out = self.feed.on_fetched(BINANCE_DEPTH, results, ts_recv)
            events += out.events
        self._asked = _fetched_keys(out.commands)
        return events

    def books(self) -> Iterable[OrderBook]:
        return [sync.book for sync in self.feed.syncs.values()]


def _fetched_keys(commands: Iterable[object]) -> list[str]:
    return [key for command in commands if isinstance(command, Fetch) for key in command.keys]


class _Polygon:
    """:meth:`PolygonFeed.on_frames`, one frame at a time: events out, statuses to the feed."""

    def __init__(self) -> None:
        self.rejects = Rejects(polygon.VENUE)
        self.feed = PolygonFeed(("trades", "quotes", "candles"), self.rejects)

    def run(self, data: bytes, ts_recv: int, args: Mapping[str, Any]) -> list[object]:
        return list(self.feed.on_frames([Frame(data, ts_recv, 0)]).events)

    def books(self) -> Iterable[OrderBook]:
        return ()


def _consumer(venue: str, seeds: list[Seed], books: list[Seed]) -> Callable[[], Runner]:
    if venue == "polymarket":
        rejects = Rejects(venue)
        items = [i for s in seeds for i in polymarket.parse_frame(s.data, s.ts_recv, rejects)]
        tokens = sorted({e.instrument for e in events_of(items) if hasattr(e, "instrument")})
        return lambda: _Polymarket(tokens)
    if venue == "kalshi":
        tickers = sorted({m.decode() for s in seeds for m in _TICKER.findall(s.data)})
        sids = sorted({int(m) for s in seeds for m in _SID.findall(s.data)})
        return lambda: _Kalshi(tickers, sids)
    if venue == "binance":
        book = books[0] if books else None
        snap = binance.parse_book(book.data, "", book.ts_recv, Rejects(venue)) if book else None
        symbols = sorted({m.decode() for s in seeds for m in _SYMBOL.findall(s.data)})
        return lambda: _Binance(symbols, snap)
    return _Polygon


_TICKER: Final = re.compile(rb'"market_ticker":"([^"]+)"')
_SID: Final = re.compile(rb'"sid":(\d+)')
_SYMBOL: Final = re.compile(rb'"s":"([A-Z0-9]{1,20})"')


def targets(root: Path) -> list[Target]:
    """Fuzz targets of every registered venue: each entry point, and the frame consumer."""
    missing = set(base.known_venues()) - set(ENTRIES)
    if missing:
        raise ValueError(f"registered venues without parser entries: {sorted(missing)}")
    out: list[Target] = []
    for venue in base.known_venues():
        captures = corpus.load(root, venue)
        by_entry: dict[str, list[Seed]] = {}
        for capture in captures:
            by_entry.setdefault(capture.entry, []).extend(
                Seed(data, ts, capture.args) for data, ts in capture.payloads
            )
        for entry, fn in ENTRIES[venue].items():
            if entry in by_entry:
                make = functools.partial(_Parser, venue, fn)
                history = entry in HISTORY
                out.append(Target(venue, entry, by_entry[entry], make, history=history))
        frames = by_entry.get("frame", [])
        if frames:
            consumer = _consumer(venue, frames, by_entry.get("book", []))
            out.append(Target(venue, "consumer", frames, consumer))
    return out
