"""What every canonical event a venue emits must satisfy (ARCHITECTURE rule 3).

Written independently of the parsers' own checks, from the event models, so
the fuzzer can tell "accepted and valid" from "accepted but invalid": an
event that breaks one of these is a parser bug, whatever input produced it.

* prices and sizes are canonical finite ASCII decimals (``"0.5"``, never
  ``"0.50"``, ``" 0.5"``, ``"NaN"``); sizes, volumes and prices are >= 0;
* prediction-market prices (Polymarket, Kalshi) lie in [0, 1];
* venue times lie in the window around the receive time (0 means "the venue
  gave none"); a book snapshot's time (its last change) and a candle's open
  time may lie anywhere in history up to the window's end, and a candle's
  close is not before its open;
* a published book snapshot, and every live book, is not crossed and holds
  only valid levels;
* an empty quote side is ``None``: no side at size 0, no bid at price 0, no
  prediction-market ask at 1.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Final

from venuefeed import exact
from venuefeed.book import OrderBook, SyncState
from venuefeed.models import (
    AccountFill,
    AccountOrder,
    BookDelta,
    BookLevel,
    BookSnapshot,
    Candle,
    Market,
    PriceUpdate,
    TopOfBook,
    Trade,
    WhaleTrade,
)
from venuefeed.venues.checks import EARLIEST_NS

__all__ = ["PREDICTION_VENUES", "book_violations", "violations"]

PREDICTION_VENUES: Final = frozenset({"polymarket", "kalshi"})


def _number(text: object, what: str, *, probability: bool, out: list[str]) -> None:
    if not isinstance(text, str) or exact.checked(text) != text:
        out.append(f"{what} {text!r} is not a canonical finite decimal")
        return
    if text.startswith("-"):
        out.append(f"{what} {text!r} is negative")
    elif probability and Decimal(text) > 1:
        out.append(f"{what} {text!r} is outside [0, 1]")


def _levels(levels: list[BookLevel], side: str, probability: bool, out: list[str]) -> None:
    for level in levels:
        _number(level.price, f"{side} price", probability=probability, out=out)
        _number(level.size, f"{side} size", probability=False, out=out)


def _time(ts: int, what: str, bounds: tuple[int, int], out: list[str], zero_ok: bool) -> None:
    if ts == 0 and zero_ok:
        return
    if not bounds[0] <= ts <= bounds[1]:
        out.append(f"{what} {ts} outside {bounds}")


def _crossed(bids: list[BookLevel], asks: list[BookLevel]) -> bool:
    if not bids or not asks:
        return False
    try:
        return max(Decimal(b.price) for b in bids) >= min(Decimal(a.price) for a in asks)
    except ArithmeticError:
        return False  # reported as an invalid number already


def violations(event: object, bounds: tuple[int, int]) -> list[str]:
    """Every invariant ``event`` breaks (empty when it is valid).

    ``bounds`` is the (earliest, latest) ns a venue time may take for this
    event (live frame or REST history; see :class:`~venuefeed.venues.checks.TimeWindow`).
    """
    out: list[str] = []
    venue = getattr(event, "venue", "")
    prob = venue in PREDICTION_VENUES
    if isinstance(event, Market):
        for outcome in event.outcomes:
            if outcome.price is not None:
                _number(outcome.price, "outcome price", probability=True, out=out)
        for what, value in (("tick_size", event.tick_size), ("min_size", event.min_size)):
            if value is not None:
                _number(value, what, probability=False, out=out)
        return out
    ts_venue = getattr(event, "ts_venue", 0) or 0  # None: an untimed book snapshot
    if isinstance(event, Candle):
        _time(event.open_time, "open_time", (EARLIEST_NS, bounds[1]), out, zero_ok=False)
        if event.close_time < event.open_time:
            out.append(f"close_time {event.close_time} before open_time {event.open_time}")
        for name in ("open", "high", "low", "close"):
            _number(getattr(event, name), name, probability=prob, out=out)
        _number(event.volume, "volume", probability=False, out=out)
        return out
    history = (EARLIEST_NS, bounds[1])
    _time(ts_venue, "ts_venue", history if isinstance(event, BookSnapshot) else bounds, out, True)
    if isinstance(event, BookSnapshot | BookDelta):
        _levels(event.bids, "bid", prob, out)
        _levels(event.asks, "ask", prob, out)
        if isinstance(event, BookSnapshot) and not out and _crossed(event.bids, event.asks):
            out.append("crossed book snapshot")
    elif isinstance(event, Trade | WhaleTrade | AccountFill):
        _number(event.price, "price", probability=prob, out=out)
        _number(event.size, "size", probability=False, out=out)
    elif isinstance(event, AccountOrder):
        if event.price is not None:
            _number(event.price, "price", probability=prob, out=out)
        _number(event.remaining_size, "remaining_size", probability=False, out=out)
        _number(event.filled_size, "filled_size", probability=False, out=out)
    elif isinstance(event, PriceUpdate):
        _number(event.price, "price", probability=prob, out=out)
        if event.size is not None:
            _number(event.size, "size", probability=False, out=out)
    elif isinstance(event, TopOfBook):
        _top(event, prob, out)
    return out


def _top(event: TopOfBook, prob: bool, out: list[str]) -> None:
    sides = (
        ("bid", event.bid_price, event.bid_size, "0"),
        ("ask", event.ask_price, event.ask_size, "1" if prob else None),
    )
    for side, price, size, empty_price in sides:
        if price is not None:
            _number(price, f"{side}_price", probability=prob, out=out)
            if price == "0" or price == empty_price:
                out.append(f"empty {side} side at price {price} is not None")
        if size is not None:
            _number(size, f"{side}_size", probability=False, out=out)
            if size == "0":
                out.append(f"empty {side} side of size 0 is not None")
            if price is None:
                out.append(f"{side}_size {size} without a price")


def book_violations(books: Iterable[OrderBook]) -> list[str]:
    """Live books must hold valid levels and never be crossed.

    Reading a book is part of the code under test: an exception raised here
    (a level keyed by NaN, ...) is reported by the caller as escaped.
    """
    out: list[str] = []
    for book in books:
        if book.state is not SyncState.LIVE:
            continue
        bid, ask = book.best_bid(), book.best_ask()
        prob = book.venue in PREDICTION_VENUES
        problems: list[str] = []
        for level, side in ((bid, "bid"), (ask, "ask")):
            if level is not None:
                _levels([level], f"live book {book.instrument} {side}", prob, problems)
        if not problems and bid is not None and ask is not None and _crossed([bid], [ask]):
            problems.append(f"live book {book.instrument} is crossed ({bid.price} >= {ask.price})")
        out += problems
    return out
