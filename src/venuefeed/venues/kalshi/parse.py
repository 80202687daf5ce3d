"""Kalshi bytes -> canonical events. Pure functions (ARCHITECTURE rule 1).

Kalshi books hold bids only, for YES and for NO. The canonical book of a
market is the YES book: bids are the YES bids, asks are the NO bids seen from
the other side -- a NO bid at ``p`` for ``q`` contracts is a YES ask at
``1 - p`` for ``q``. That subtraction is the one place where this module does
decimal arithmetic; the result is cached per price string because a market
only ever uses a few hundred price levels.

Both wire generations are accepted: dollar/fixed-point strings (current) and
integer cents/counts (recordings before 2026-03-12). Prices come out in
dollars either way, so ``"0.4200"`` and ``42`` cents are the same level.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Literal

import msgspec

from venuefeed import exact
from venuefeed.models import (
    BookLevel,
    BookSnapshot,
    Candle,
    Market,
    MarketStatus,
    Outcome,
    PriceUpdate,
    Side,
    TopOfBook,
    Trade,
)
from venuefeed.times import iso_to_ns
from venuefeed.venues.kalshi import protocol as p

__all__ = [
    "VENUE",
    "BookChange",
    "Rejected",
    "book_change",
    "complement",
    "decode_ws",
    "iso_to_ns",
    "market_from_wire",
    "parse_candles",
    "parse_event_series",
    "parse_market",
    "parse_markets_page",
    "parse_orderbook",
    "parse_series_tickers",
    "parse_trades_page",
    "snapshot_event",
    "ticker_events",
    "trade_event",
]

VENUE = "kalshi"


_STATUS = {
    # Values Kalshi returns on market objects.
    "initialized": MarketStatus.UPCOMING,
    "inactive": MarketStatus.PAUSED,
    "active": MarketStatus.OPEN,
    "closed": MarketStatus.CLOSED,
    "determined": MarketStatus.RESOLVED,
    "disputed": MarketStatus.RESOLVED,
    "amended": MarketStatus.RESOLVED,
    "finalized": MarketStatus.RESOLVED,
    # Values of the query filter, which older payloads also used as status.
    "unopened": MarketStatus.UPCOMING,
    "open": MarketStatus.OPEN,
    "paused": MarketStatus.PAUSED,
    "settled": MarketStatus.RESOLVED,
}

_STRUCTURE_TICK = {"linear_cent": "0.01", "deci_cent": "0.001", "tapered_deci_cent": "0.001"}


class Rejected(msgspec.Struct, frozen=True):
    """A frame that could not be used, and why (a bounded label for the metric)."""

    reason: Literal["malformed_json", "unknown_type", "invalid_fields"]
    detail: str = ""


class BookChange(msgspec.Struct, frozen=True, gc=False):
    """One Kalshi delta in canonical terms: a signed increment on one book level."""

    instrument: str
    side: Literal["bid", "ask"]
    price: str
    change: str
    ts_venue: int


# -- numbers and times -------------------------------------------------------------

_ONE = exact.to_decimal("1")
_complements: dict[str, str] = {}
_COMPLEMENT_CACHE_MAX = 16_384


def complement(price: str) -> str:
    """``1 - price`` as a canonical string (a NO bid price -> the YES ask price).

    Cached because deltas repeat the same few hundred levels; the cache is
    bounded so hostile input cannot grow it without limit.
    """
    cached = _complements.get(price)
    if cached is not None:
        return cached
    value = exact.from_decimal(_ONE - exact.to_decimal(price))
    if len(_complements) >= _COMPLEMENT_CACHE_MAX:
        _complements.clear()
    _complements[price] = value
    return value


_cents: dict[int, str] = {}


def _from_cents(cents: int) -> str:
    value = _cents.get(cents)
    if value is None:
        value = exact.from_cents(cents)
        if -1000 <= cents <= 1000:
            _cents[cents] = value
    return value


# -- markets -------------------------------------------------------------------------


def _tick_size(m: p.KMarket) -> str | None:
    if m.price_ranges:
        steps = [exact.validate(r.step) for r in m.price_ranges]
        return min(steps, key=exact.to_decimal)
    if m.price_level_structure in _STRUCTURE_TICK:
        return _STRUCTURE_TICK[m.price_level_structure]
    if m.tick_size is not None:
        return _from_cents(m.tick_size)
    return None


def market_from_wire(m: p.KMarket, category: str | None = None) -> Market:
    """Canonical market: one instrument, the market ticker (its YES book).

    ``raw_hash`` digests the canonical fields (title, rules, times, status,
    tick), not the whole payload: quotes and volumes change every second and
    must not create a new market version, while a rules edit must.
    """
    rules = m.rules_primary
    if m.rules_secondary:
        rules = f"{rules}\n\n{m.rules_secondary}" if rules else m.rules_secondary
    title = m.title or m.yes_sub_title or m.ticker
    if m.subtitle and m.subtitle not in title:
        title = f"{title} ({m.subtitle})"
    market = Market(
        venue=VENUE,
        market_id=m.ticker,
        title=title,
        event_id=m.event_ticker or None,
        slug=m.ticker,
        rules=rules,
        outcomes=(Outcome(name=m.yes_sub_title or "Yes", token_id=m.ticker),),
        status=_STATUS.get(m.status, MarketStatus.UNKNOWN),
        open_time=iso_to_ns(m.open_time),
        close_time=iso_to_ns(m.close_time),
        resolution_time=iso_to_ns(m.expected_expiration_time or m.latest_expiration_time),
        tick_size=_tick_size(m),
        min_size="0.01",
        category=category,
    )
    digest = hashlib.sha256(msgspec.json.encode(market)).hexdigest()
    return msgspec.structs.replace(market, raw_hash=digest)


def parse_markets_page(body: bytes, category: str | None = None) -> tuple[list[Market], str | None]:
    page = msgspec.json.decode(body, type=p.MarketsPage)
    return [market_from_wire(m, category) for m in page.markets], page.cursor


def parse_market(body: bytes) -> Market:
    return market_from_wire(msgspec.json.decode(body, type=p.MarketResponse).market)


def parse_event_series(body: bytes) -> str:
    """The series ticker of ``GET /events/{event_ticker}`` (needed for candle URLs)."""
    return msgspec.json.decode(body, type=p.EventResponse).event.series_ticker


def parse_series_tickers(body: bytes) -> tuple[list[str], str | None]:
    page = msgspec.json.decode(body, type=p.SeriesPage)
    return [s.ticker for s in page.series or ()], page.cursor


# -- books ---------------------------------------------------------------------------


def _dollar_bids(levels: Sequence[tuple[str, str]] | None, depth: int | None) -> list[BookLevel]:
    """Wire YES bids (ascending) -> canonical bids, best (highest) first."""
    if not levels:
        return []
    chosen = levels[::-1] if depth is None else levels[: -depth - 1 : -1]
    return [BookLevel(exact.canon(price), exact.canon(size)) for price, size in chosen]


def _dollar_asks(levels: Sequence[tuple[str, str]] | None, depth: int | None) -> list[BookLevel]:
    """Wire NO bids (ascending) -> YES asks at 1 - p, best (lowest) first."""
    if not levels:
        return []
    chosen = levels[::-1] if depth is None else levels[: -depth - 1 : -1]
    return [BookLevel(complement(exact.canon(price)), exact.canon(size)) for price, size in chosen]


def _cent_bids(levels: Sequence[tuple[int, int]] | None, depth: int | None) -> list[BookLevel]:
    if not levels:
        return []
    chosen = levels[::-1] if depth is None else levels[: -depth - 1 : -1]
    return [BookLevel(_from_cents(price), str(size)) for price, size in chosen]


def _cent_asks(levels: Sequence[tuple[int, int]] | None, depth: int | None) -> list[BookLevel]:
    if not levels:
        return []
    chosen = levels[::-1] if depth is None else levels[: -depth - 1 : -1]
    return [BookLevel(_from_cents(100 - price), str(size)) for price, size in chosen]


def parse_orderbook(
    body: bytes, instrument: str, ts_recv: int, depth: int | None = None
) -> BookSnapshot:
    """``GET /markets/{ticker}/orderbook`` -> the canonical top-``depth`` book.

    ``orderbook_fp`` (current) wins over the legacy ``orderbook`` key when a
    transitional payload carries both.
    """
    resp = msgspec.json.decode(body, type=p.OrderbookResponse)
    if resp.orderbook_fp is not None:
        bids = _dollar_bids(resp.orderbook_fp.yes_dollars, depth)
        asks = _dollar_asks(resp.orderbook_fp.no_dollars, depth)
    elif resp.orderbook is not None:
        bids = _cent_bids(resp.orderbook.yes, depth)
        asks = _cent_asks(resp.orderbook.no, depth)
    else:
        bids, asks = [], []
    return BookSnapshot(
        venue=VENUE, instrument=instrument, ts_venue=0, ts_recv=ts_recv, bids=bids, asks=asks
    )


# -- trades and candles -------------------------------------------------------------


def _taker(side: str | None) -> Side:
    # Buying YES (or selling NO) lifts the YES ask: a buy on the canonical book.
    if side in ("yes", "TradeTakerOutcomeSideYes", "TradeTakerSideYes"):
        return "buy"
    if side in ("no", "TradeTakerOutcomeSideNo", "TradeTakerSideNo"):
        return "sell"
    return "unknown"


def _trade_price_size(
    dollars: str | None, cents: int | None, fp: str | None, count: int | None
) -> tuple[str, str] | None:
    if dollars is not None:
        price = exact.canon(dollars)
    elif cents is not None:
        price = _from_cents(cents)
    else:
        return None
    if fp is not None:
        size = exact.canon(fp)
    elif count is not None:
        size = str(count)
    else:
        return None
    return price, size


def parse_trades_page(body: bytes, ts_recv: int) -> tuple[list[Trade], str | None]:
    """``GET /markets/trades`` -> trades (newest first, as the venue sends them)."""
    page = msgspec.json.decode(body, type=p.TradesPage)
    out: list[Trade] = []
    for t in page.trades:
        ps = _trade_price_size(t.yes_price_dollars, t.yes_price, t.count_fp, t.count)
        if ps is None or not t.trade_id:
            continue
        out.append(
            Trade(
                venue=VENUE,
                instrument=t.ticker,
                ts_venue=iso_to_ns(t.created_time) or 0,
                ts_recv=ts_recv,
                trade_id=t.trade_id,
                price=ps[0],
                size=ps[1],
                side=_taker(t.taker_outcome_side or t.taker_side),
                market_id=t.ticker,
            )
        )
    return out, page.cursor


_INTERVALS = {1: "1m", 60: "1h", 1440: "1d"}


def parse_candles(body: bytes, instrument: str, period_minutes: int, ts_recv: int) -> list[Candle]:
    """Candlesticks of traded YES prices.

    A period without trades has null OHLC; it becomes a flat candle at the
    previous trade price with zero volume, or is left out when the market
    never traded before it.
    """
    resp = msgspec.json.decode(body, type=p.CandlesResponse)
    interval = _INTERVALS.get(period_minutes, f"{period_minutes}m")
    period_ns = period_minutes * 60 * 1_000_000_000
    out: list[Candle] = []
    for c in resp.candlesticks:
        price = c.price
        close_time = c.end_period_ts * 1_000_000_000
        if c.volume_fp is not None:
            volume = exact.canon(c.volume_fp)
        else:
            volume = str(c.volume) if c.volume is not None else "0"
        if (
            price.open_dollars is not None
            and price.high_dollars is not None
            and price.low_dollars is not None
            and price.close_dollars is not None
        ):
            o, h, lo, cl = (
                exact.canon(price.open_dollars),
                exact.canon(price.high_dollars),
                exact.canon(price.low_dollars),
                exact.canon(price.close_dollars),
            )
        elif price.previous_dollars is not None:
            o = h = lo = cl = exact.canon(price.previous_dollars)
            volume = "0"
        else:
            continue
        out.append(
            Candle(
                venue=VENUE,
                instrument=instrument,
                ts_venue=close_time,
                ts_recv=ts_recv,
                interval=interval,
                open_time=close_time - period_ns,
                close_time=close_time,
                open=o,
                high=h,
                low=lo,
                close=cl,
                volume=volume,
            )
        )
    return out


# -- WebSocket -------------------------------------------------------------------------


def decode_ws(data: bytes | str) -> p.WsMessage | Rejected:
    """Decode one WebSocket frame; never raises."""
    try:
        return p.ws_decoder.decode(data)
    except msgspec.ValidationError as exc:
        try:
            kind = p.type_decoder.decode(data).type
        except msgspec.DecodeError:
            kind = None
        if kind is not None and kind not in p.KNOWN_TYPES:
            return Rejected("unknown_type", kind[:40])
        return Rejected("invalid_fields", str(exc)[:200])
    except msgspec.DecodeError as exc:
        return Rejected("malformed_json", str(exc)[:200])


def snapshot_event(m: p.WsOrderbookSnapshot, ts_recv: int) -> BookSnapshot:
    """An ``orderbook_snapshot`` as a canonical full book; its ``seq`` is the baseline."""
    msg = m.msg
    if msg.yes_dollars_fp is not None or msg.no_dollars_fp is not None:
        bids = _dollar_bids(msg.yes_dollars_fp, None)
        asks = _dollar_asks(msg.no_dollars_fp, None)
    else:
        bids = _cent_bids(msg.yes, None)
        asks = _cent_asks(msg.no, None)
    return BookSnapshot(
        venue=VENUE,
        instrument=msg.market_ticker,
        ts_venue=0,
        ts_recv=ts_recv,
        bids=bids,
        asks=asks,
        sequence=m.seq,
    )


def book_change(m: p.WsOrderbookDelta) -> BookChange | Rejected:
    """An ``orderbook_delta`` as a signed increment on the canonical YES book."""
    msg = m.msg
    if msg.price_dollars is not None and msg.delta_fp is not None:
        price = exact.canon(msg.price_dollars)
        change = exact.canon(msg.delta_fp)
    elif msg.price is not None and msg.delta is not None:
        price = _from_cents(msg.price)
        change = str(msg.delta)
    else:
        return Rejected("invalid_fields", "orderbook_delta without price/delta")
    ts = msg.ts_ms * 1_000_000 if msg.ts_ms is not None else 0
    if msg.side == "yes":
        return BookChange(msg.market_ticker, "bid", price, change, ts)
    return BookChange(msg.market_ticker, "ask", complement(price), change, ts)


def _ws_ts(ts: int | None, ts_ms: int | None) -> int:
    if ts_ms is not None:
        return ts_ms * 1_000_000
    if ts is not None:
        return ts * 1_000_000_000
    return 0


def trade_event(m: p.WsTrade, ts_recv: int) -> Trade | Rejected:
    """A public ``trade`` message. Legacy frames without ``trade_id`` get a stable synthetic one."""
    msg = m.msg
    ps = _trade_price_size(msg.yes_price_dollars, msg.yes_price, msg.count_fp, msg.count)
    if ps is None:
        return Rejected("invalid_fields", "trade without price/count")
    ts_venue = _ws_ts(msg.ts, msg.ts_ms)
    trade_id = msg.trade_id or f"{msg.market_ticker}:{ts_venue}:{ps[0]}:{ps[1]}"
    return Trade(
        venue=VENUE,
        instrument=msg.market_ticker,
        ts_venue=ts_venue,
        ts_recv=ts_recv,
        trade_id=trade_id,
        price=ps[0],
        size=ps[1],
        side=_taker(msg.taker_outcome_side or msg.taker_side),
        market_id=msg.market_ticker,
    )


def _opt(text: str | None) -> str | None:
    return exact.canon(text) if text is not None else None


def ticker_events(m: p.WsTicker, ts_recv: int) -> list[TopOfBook | PriceUpdate]:
    """A ``ticker`` message: the venue's top of book, plus the last price when present."""
    msg = m.msg
    ts_venue = _ws_ts(msg.ts, msg.ts_ms)
    out: list[TopOfBook | PriceUpdate] = [
        TopOfBook(
            venue=VENUE,
            instrument=msg.market_ticker,
            ts_venue=ts_venue,
            ts_recv=ts_recv,
            bid_price=_opt(msg.yes_bid_dollars),
            bid_size=_opt(msg.yes_bid_size_fp),
            ask_price=_opt(msg.yes_ask_dollars),
            ask_size=_opt(msg.yes_ask_size_fp),
        )
    ]
    if msg.price_dollars is not None:
        out.append(
            PriceUpdate(
                venue=VENUE,
                instrument=msg.market_ticker,
                ts_venue=ts_venue,
                ts_recv=ts_recv,
                price=exact.canon(msg.price_dollars),
                size=_opt(msg.last_trade_size_fp),
                source="ticker",
            )
        )
    return out
