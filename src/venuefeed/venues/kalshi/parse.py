"""Kalshi bytes -> validated canonical events. Pure and total (ARCHITECTURE rule 1).

Kalshi books hold bids only, for YES and for NO. The canonical book of a
market is the YES book: bids are the YES bids, asks are the NO bids seen from
the other side -- a NO bid at ``p`` for ``q`` contracts is a YES ask at
``1 - p`` for ``q``. That subtraction is the one place where this module does
decimal arithmetic; the result is cached per price string because a market
only ever uses a few hundred price levels.

Both wire generations are accepted: dollar/fixed-point strings (current) and
integer cents/counts (recordings before 2026-03-12). Prices come out in
dollars either way, so ``"0.4200"`` and ``42`` cents are the same level.

Every number is checked here (:mod:`venuefeed.venues.checks`): prices are
probabilities in [0, 1], sizes and counts >= 0, all canonical text; venue
times lie in the receive-time window. :func:`parse_frame` returns what the
feed needs besides canonical events: control messages (acks, errors), a
:class:`Snapshot` or :class:`BookChange` tagged with its subscription and
sequence number, and a :class:`Refused` when a book message of a
subscription had to be refused (a bad number, a crossed snapshot) -- the feed
then resynchronises that subscription, since its books missed an update.
REST parsers return ``None`` for a body that is not the documented shape and
otherwise refuse only the bad items. Nothing here raises.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Final, Literal, TypeVar

import msgspec

from venuefeed import exact
from venuefeed.book import Inconsistency
from venuefeed.models import (
    AccountFill,
    AccountOrder,
    BookLevel,
    BookSnapshot,
    Candle,
    Market,
    MarketStatus,
    MarketStatusChange,
    Outcome,
    PriceUpdate,
    Side,
    TopOfBook,
    Trade,
)
from venuefeed.times import iso_to_ns
from venuefeed.venues.checks import (
    DECODE_ERRORS,
    PROBABILITIES,
    SIGNED,
    SIZES,
    Invalid,
    in_window,
)
from venuefeed.venues.checks import levels as checked_levels  # ``levels`` names the wire lists
from venuefeed.venues.kalshi import protocol as p
from venuefeed.venues.rejects import Rejects

__all__ = [
    "VENUE",
    "BookChange",
    "Cutoffs",
    "Item",
    "QuoteChange",
    "Refused",
    "Snapshot",
    "complement",
    "parse_book",
    "parse_candles",
    "parse_cutoffs",
    "parse_event_series",
    "parse_frame",
    "parse_market",
    "parse_markets_page",
    "parse_series_tickers",
    "parse_trades_page",
    "quote_side",
]

VENUE: Final = "kalshi"
_MS: Final = 1_000_000
_S: Final = 1_000_000_000

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


class Snapshot(msgspec.Struct, frozen=True, gc=False):
    """An ``orderbook_snapshot`` of subscription ``sid``; ``book.sequence`` is its ``seq``."""

    sid: int
    book: BookSnapshot


class BookChange(msgspec.Struct, frozen=True, gc=False):
    """One Kalshi delta in canonical terms: a signed increment on one book level."""

    sid: int
    seq: int
    instrument: str
    side: Literal["bid", "ask"]
    price: str
    change: str
    ts_venue: int


class TradeSequence(msgspec.Struct, frozen=True, gc=False):
    """The ``seq`` of a trade on subscription ``sid``: a jump means trades were missed."""

    sid: int
    seq: int
    instrument: str


class QuoteChange(msgspec.Struct, frozen=True, gc=False):
    """A ``ticker_v2`` message: the checked top-of-book fields it carries (``None``: not sent,
    so unchanged). The feed merges it into the market's last quote."""

    instrument: str
    ts_venue: int
    bid_price: str | None = None
    bid_size: str | None = None
    ask_price: str | None = None
    ask_size: str | None = None


class Refused(msgspec.Struct, frozen=True, gc=False):
    """A book message ``seq`` of subscription ``sid`` was refused: its books missed it."""

    sid: int
    seq: int
    reason: Inconsistency


Item = (
    p.WsSubscribed
    | p.WsUnsubscribed
    | p.WsOk
    | p.WsError
    | Snapshot
    | BookChange
    | TradeSequence
    | Refused
    | QuoteChange
    | Trade
    | TopOfBook
    | PriceUpdate
    | MarketStatusChange
    | AccountFill
    | AccountOrder
)
"""What :func:`parse_frame` returns."""


# -- numbers -------------------------------------------------------------------------

_ONE = exact.to_decimal("1")
_complements: dict[str, str] = {}
_COMPLEMENT_CACHE_MAX = 16_384


def complement(price: str) -> str:
    """``1 - price`` as a canonical string (a NO bid price -> the YES ask price).

    ``price`` must be a checked probability (canonical, in [0, 1]), so the
    result is one too. Cached because deltas repeat the same few hundred
    levels; the cache is bounded so hostile input cannot grow it without limit.
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
    """A legacy integer-cents price in dollars; only 0..100 cents is a price."""
    value = _cents.get(cents)
    if value is None:
        if not 0 <= cents <= 100:
            raise Invalid("invalid_price", cents)
        value = _cents[cents] = exact.from_cents(cents)
    return value


_COUNT_MAX: Final = 10**exact.MAX_INTEGER_DIGITS


def _count(count: int, *, signed: bool = False) -> str:
    """A legacy integer count (or signed delta) as text, within the digit limits."""
    if not (-_COUNT_MAX if signed else 0) <= count < _COUNT_MAX:
        raise Invalid("invalid_size", count)
    return str(count)


# -- markets -------------------------------------------------------------------------


def _tick_size(m: p.KMarket) -> str | None:
    if m.price_ranges:
        steps = [PROBABILITIES[r.step] for r in m.price_ranges]
        return min(steps, key=exact.to_decimal)
    if m.price_level_structure in _STRUCTURE_TICK:
        return _STRUCTURE_TICK[m.price_level_structure]
    if m.tick_size is not None:
        return _from_cents(m.tick_size)
    return None


def _market(m: p.KMarket, category: str | None = None) -> Market:
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


T = TypeVar("T")


class _RawList(msgspec.Struct, frozen=True):
    """A list page with its items still raw: the slow path when one item does not decode."""

    markets: list[msgspec.Raw] = []
    trades: list[msgspec.Raw] = []
    cursor: str | None = None


_markets_page = msgspec.json.Decoder(p.MarketsPage)
_raw_list = msgspec.json.Decoder(_RawList)
_kmarket = msgspec.json.Decoder(p.KMarket)
_ktrade = msgspec.json.Decoder(p.KTrade)
_market_response = msgspec.json.Decoder(p.MarketResponse)
_event_response = msgspec.json.Decoder(p.EventResponse)
_series_page = msgspec.json.Decoder(p.SeriesPage)
_orderbook = msgspec.json.Decoder(p.OrderbookResponse)
_trades_page = msgspec.json.Decoder(p.TradesPage)
_candles = msgspec.json.Decoder(p.CandlesResponse)
_cutoff = msgspec.json.Decoder(p.CutoffResponse)


def _items(
    body: bytes,
    fast: Callable[[bytes], tuple[list[T], str | None]],
    field: str,
    one: msgspec.json.Decoder[T],
    rejects: Rejects,
) -> tuple[list[T], str | None] | None:
    """A cursor page's items: all at once, or one by one when an item is bad (counted)."""
    try:
        return fast(body)
    except DECODE_ERRORS:
        pass
    page = rejects.decode(_raw_list, body, f"malformed_{field}_page")
    if page is None:
        return None
    items = rejects.decode_each(one, getattr(page, field), f"invalid_{field}_item")
    return [item for item in items if item is not None], page.cursor


def _fast_markets(body: bytes) -> tuple[list[p.KMarket], str | None]:
    page = _markets_page.decode(body)
    return page.markets, page.cursor


def parse_markets_page(
    body: bytes, rejects: Rejects, category: str | None = None
) -> tuple[list[Market], str | None] | None:
    """``GET /markets``: the page's valid markets and its cursor (``None``: body refused)."""
    page = _items(body, _fast_markets, "markets", _kmarket, rejects)
    if page is None:
        return None
    markets = [rejects.guard("market", _market, m, category) for m in page[0]]
    return [m for m in markets if m is not None], page[1]


def parse_market(body: bytes, rejects: Rejects) -> Market | None:
    """``GET /markets/{ticker}``, or ``None`` (counted)."""
    resp = rejects.decode(_market_response, body, "malformed_market")
    return None if resp is None else rejects.guard("market", _market, resp.market)


def parse_event_series(body: bytes, rejects: Rejects) -> str | None:
    """The series ticker of ``GET /events/{event_ticker}`` (needed for candle URLs)."""
    resp = rejects.decode(_event_response, body, "malformed_event")
    return None if resp is None else resp.event.series_ticker


def parse_series_tickers(body: bytes, rejects: Rejects) -> tuple[list[str], str | None] | None:
    page = rejects.decode(_series_page, body, "malformed_series")
    return None if page is None else ([s.ticker for s in page.series or ()], page.cursor)


class Cutoffs(msgspec.Struct, frozen=True):
    """Where Kalshi's live tier begins (ns): older settled markets and older trades are only
    served by ``/historical/markets`` and ``/historical/trades``."""

    markets_ns: int
    trades_ns: int


def _cutoff_ns(value: str | int | None, field: str, ts_recv: int) -> int:
    ns = iso_to_ns(value) if isinstance(value, str) else None if value is None else value * _S
    if ns is None or not 0 <= ns <= ts_recv + 86_400 * _S:
        raise Invalid("invalid_timestamp", f"{field}: {value!r}"[:80])
    return ns


def parse_cutoffs(body: bytes, ts_recv: int, rejects: Rejects) -> Cutoffs | None:
    """``GET /historical/cutoff``, or ``None`` (counted) when a cutoff is missing or absurd."""
    resp = rejects.decode(_cutoff, body, "malformed_cutoff")
    if resp is None:
        return None
    return rejects.guard("cutoff", _cutoffs, resp, ts_recv)


def _cutoffs(resp: p.CutoffResponse, ts_recv: int) -> Cutoffs:
    return Cutoffs(
        _cutoff_ns(resp.market_settled_ts, "market_settled_ts", ts_recv),
        _cutoff_ns(resp.trades_created_ts, "trades_created_ts", ts_recv),
    )


# -- books ---------------------------------------------------------------------------


def _dollar_bids(levels: Sequence[tuple[str, str]] | None, depth: int | None) -> list[BookLevel]:
    """Wire YES bids (ascending) -> canonical bids, best (highest) first."""
    if not levels:
        return []
    chosen = levels[::-1] if depth is None else levels[: -depth - 1 : -1]
    return checked_levels(chosen, PROBABILITIES, SIZES)


def _dollar_asks(levels: Sequence[tuple[str, str]] | None, depth: int | None) -> list[BookLevel]:
    """Wire NO bids (ascending) -> YES asks at 1 - p, best (lowest) first."""
    if not levels:
        return []
    chosen = levels[::-1] if depth is None else levels[: -depth - 1 : -1]
    prices, sizes = PROBABILITIES, SIZES
    return [BookLevel(complement(prices[price]), sizes[size]) for price, size in chosen]


def _cent_bids(levels: Sequence[tuple[int, int]] | None, depth: int | None) -> list[BookLevel]:
    if not levels:
        return []
    chosen = levels[::-1] if depth is None else levels[: -depth - 1 : -1]
    return [BookLevel(_from_cents(price), _count(size)) for price, size in chosen]


def _cent_asks(levels: Sequence[tuple[int, int]] | None, depth: int | None) -> list[BookLevel]:
    if not levels:
        return []
    chosen = levels[::-1] if depth is None else levels[: -depth - 1 : -1]
    return [BookLevel(complement(_from_cents(price)), _count(size)) for price, size in chosen]


def _uncrossed(instrument: str, bids: list[BookLevel], asks: list[BookLevel]) -> None:
    """A snapshot whose best bid meets its best ask is not a book the venue can hold.

    Levels arrive in the venue's order, so the best level is found, not assumed.
    Canonical [0, 1] text orders as the numbers do.
    """
    if bids and asks:
        best_bid = max(lv.price for lv in bids)
        best_ask = min(lv.price for lv in asks)
        if best_bid >= best_ask:
            raise Invalid("crossed_book", f"{instrument}: {best_bid} >= {best_ask}")


def parse_book(
    body: bytes, instrument: str, ts_recv: int, rejects: Rejects, depth: int | None = None
) -> BookSnapshot | None:
    """``GET /markets/{ticker}/orderbook`` -> the canonical top-``depth`` book, or ``None``.

    ``orderbook_fp`` (current) wins over the legacy ``orderbook`` key when a
    transitional payload carries both. A crossed book is refused (counted).
    """
    resp = rejects.decode(_orderbook, body, "malformed_orderbook")
    if resp is None:
        return None
    return rejects.guard("orderbook", _rest_book, resp, instrument, ts_recv, depth)


def _rest_book(
    resp: p.OrderbookResponse, instrument: str, ts_recv: int, depth: int | None
) -> BookSnapshot:
    if resp.orderbook_fp is not None:
        bids = _dollar_bids(resp.orderbook_fp.yes_dollars, depth)
        asks = _dollar_asks(resp.orderbook_fp.no_dollars, depth)
    elif resp.orderbook is not None:
        bids = _cent_bids(resp.orderbook.yes, depth)
        asks = _cent_asks(resp.orderbook.no, depth)
    else:
        bids, asks = [], []
    _uncrossed(instrument, bids, asks)
    return BookSnapshot(
        venue=VENUE, instrument=instrument, ts_venue=None, ts_recv=ts_recv, bids=bids, asks=asks
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
) -> tuple[str, str]:
    if dollars is not None:
        price = PROBABILITIES[dollars]
    elif cents is not None:
        price = _from_cents(cents)
    else:
        raise Invalid("invalid_fields", "trade without a price")
    if fp is not None:
        size = SIZES[fp]
    elif count is not None:
        size = _count(count)
    else:
        raise Invalid("invalid_fields", "trade without a count")
    return price, size


def _fast_trades(body: bytes) -> tuple[list[p.KTrade], str | None]:
    page = _trades_page.decode(body)
    return page.trades, page.cursor


def parse_trades_page(
    body: bytes, ts_recv: int, rejects: Rejects
) -> tuple[list[Trade], str | None] | None:
    """``GET /markets/trades`` -> valid trades (newest first, as sent) and the cursor."""
    page = _items(body, _fast_trades, "trades", _ktrade, rejects)
    if page is None:
        return None
    bounds = rejects.window.history(ts_recv)
    trades = [rejects.guard("trade", _rest_trade, t, ts_recv, bounds) for t in page[0]]
    return [t for t in trades if t is not None], page[1]


def _iso_in_window(text: str | None, bounds: tuple[int, int]) -> int:
    """An optional ISO time as ns, refused outside the window; 0 when the venue sent none."""
    ns = iso_to_ns(text)
    return in_window(ns, bounds) if ns is not None else 0


def _rest_trade(t: p.KTrade, ts_recv: int, bounds: tuple[int, int]) -> Trade:
    price, size = _trade_price_size(t.yes_price_dollars, t.yes_price, t.count_fp, t.count)
    if not t.trade_id:
        raise Invalid("invalid_fields", "trade without trade_id")
    return Trade(
        venue=VENUE,
        instrument=t.ticker,
        ts_venue=_iso_in_window(t.created_time, bounds),
        ts_recv=ts_recv,
        trade_id=t.trade_id,
        price=price,
        size=size,
        side=_taker(t.taker_outcome_side or t.taker_side),
        market_id=t.ticker,
    )


_INTERVALS = {1: "1m", 60: "1h", 1440: "1d"}


def parse_candles(
    body: bytes, instrument: str, period_minutes: int, ts_recv: int, rejects: Rejects
) -> list[Candle] | None:
    """Candlesticks of traded YES prices, or ``None`` (counted).

    A period without trades has null OHLC; it becomes a flat candle at the
    previous trade price with zero volume, or is left out when the market
    never traded before it. A candle with a bad number or time is refused alone.
    """
    resp = rejects.decode(_candles, body, "malformed_candles")
    if resp is None:
        return None
    interval = _INTERVALS.get(period_minutes, f"{period_minutes}m")
    period_ns = period_minutes * 60 * _S
    bounds = rejects.window.history(ts_recv)
    # The current period ends after now: its end may lie one period in the future.
    bounds = (bounds[0] + period_ns, bounds[1] + period_ns)
    candles = [
        rejects.guard("candle", _candle, c, instrument, interval, period_ns, ts_recv, bounds)
        for c in resp.candlesticks
    ]
    return [c for c in candles if c is not None]


def _candle(
    c: p.KCandle,
    instrument: str,
    interval: str,
    period_ns: int,
    ts_recv: int,
    bounds: tuple[int, int],
) -> Candle | None:
    price = c.price
    close_time = in_window(c.end_period_ts * _S, bounds)
    if c.volume_fp is not None:
        volume = SIZES[c.volume_fp]
    else:
        volume = _count(c.volume) if c.volume is not None else "0"
    ohlc = (price.open_dollars, price.high_dollars, price.low_dollars, price.close_dollars)
    if None not in ohlc:
        o, h, lo, cl = (PROBABILITIES[x] for x in ohlc if x is not None)
    elif price.previous_dollars is not None:
        o = h = lo = cl = PROBABILITIES[price.previous_dollars]
        volume = "0"
    else:
        return None
    return Candle(
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


# -- WebSocket -------------------------------------------------------------------------


def parse_frame(data: bytes | str, ts_recv: int, rejects: Rejects) -> list[Item]:
    """One WebSocket frame (one message) -> its items; bad frames counted. Never raises."""
    try:
        msg = p.ws_decoder.decode(data)
    except msgspec.ValidationError as exc:
        _reject_undecodable(data, exc, rejects)
        return []
    except DECODE_ERRORS as exc:
        rejects.reject("malformed_json", str(exc)[:200], data)
        return []
    try:
        return _convert(msg, ts_recv, rejects.window.live(ts_recv))
    except Invalid as exc:
        rejects.invalid(exc, type(msg).__name__)
        reason = Inconsistency.CROSSED if exc.reason == "crossed_book" else Inconsistency.REJECTED
    except Exception as exc:  # a parser bug must not end the stream: counted, logged once
        rejects.bug(exc, type(msg).__name__)
        reason = Inconsistency.REJECTED
    if isinstance(msg, p.WsOrderbookSnapshot | p.WsOrderbookDelta):
        return [Refused(msg.sid, msg.seq, reason)]
    return []


def _reject_undecodable(data: bytes | str, exc: Exception, rejects: Rejects) -> None:
    try:
        kind = p.type_decoder.decode(data).type
    except DECODE_ERRORS:
        kind = None
    if kind is not None and kind not in p.KNOWN_TYPES:
        rejects.reject("unknown_type", kind[:40])
    else:
        rejects.reject("invalid_fields", str(exc)[:200], data)


def _convert(msg: p.WsMessage, ts_recv: int, bounds: tuple[int, int]) -> list[Item]:
    if isinstance(msg, p.WsOrderbookDelta):
        return [_book_change(msg, bounds)]
    if isinstance(msg, p.WsTrade):
        trade = _trade(msg, ts_recv, bounds)
        if msg.sid is None or msg.seq is None:
            return [trade]
        return [TradeSequence(msg.sid, msg.seq, trade.instrument), trade]
    if isinstance(msg, p.WsTicker):
        return list(_ticker(msg, ts_recv, bounds))
    if isinstance(msg, p.WsOrderbookSnapshot):
        return [Snapshot(msg.sid, _snapshot(msg, ts_recv))]
    if isinstance(msg, p.WsTickerV2):
        return list(_ticker_v2(msg, ts_recv, bounds))
    if isinstance(msg, p.WsLifecycle):
        return _lifecycle(msg, ts_recv, bounds)
    if isinstance(msg, p.WsEventLifecycle):
        return []
    if isinstance(msg, p.WsFill):
        return [_fill(msg, ts_recv, bounds)]
    if isinstance(msg, p.WsUserOrder):
        return [_user_order(msg, ts_recv, bounds)]
    return [msg]


def _snapshot(m: p.WsOrderbookSnapshot, ts_recv: int) -> BookSnapshot:
    """An ``orderbook_snapshot`` as a canonical full book; its ``seq`` is the baseline."""
    msg = m.msg
    if msg.yes_dollars_fp is not None or msg.no_dollars_fp is not None:
        bids = _dollar_bids(msg.yes_dollars_fp, None)
        asks = _dollar_asks(msg.no_dollars_fp, None)
    else:
        bids = _cent_bids(msg.yes, None)
        asks = _cent_asks(msg.no, None)
    _uncrossed(msg.market_ticker, bids, asks)
    return BookSnapshot(
        venue=VENUE,
        instrument=msg.market_ticker,
        ts_venue=None,
        ts_recv=ts_recv,
        bids=bids,
        asks=asks,
        sequence=m.seq,
    )


def _book_change(m: p.WsOrderbookDelta, bounds: tuple[int, int]) -> BookChange:
    """An ``orderbook_delta`` as a signed increment on the canonical YES book."""
    msg = m.msg
    if msg.price_dollars is not None and msg.delta_fp is not None:
        # The feed's hot path: a price or increment seen before is one dict lookup.
        price = PROBABILITIES.known.get(msg.price_dollars) or PROBABILITIES.learn(msg.price_dollars)
        change = SIGNED.known.get(msg.delta_fp) or SIGNED.learn(msg.delta_fp)
    elif msg.price is not None and msg.delta is not None:
        price = _from_cents(msg.price)
        change = _count(msg.delta, signed=True)
    else:
        raise Invalid("invalid_fields", "orderbook_delta without price/delta")
    ts = 0
    if msg.ts_ms is not None:
        ts = msg.ts_ms * _MS
        if not bounds[0] <= ts <= bounds[1]:
            raise Invalid("timestamp_out_of_window", msg.ts_ms)
    if msg.side == "yes":
        return BookChange(m.sid, m.seq, msg.market_ticker, "bid", price, change, ts)
    return BookChange(m.sid, m.seq, msg.market_ticker, "ask", complement(price), change, ts)


def _ws_ts(ts: int | None, ts_ms: int | None, bounds: tuple[int, int]) -> int:
    if ts_ms is not None:
        return in_window(ts_ms * _MS, bounds)
    if ts is not None:
        return in_window(ts * _S, bounds)
    return 0


def _trade(m: p.WsTrade, ts_recv: int, bounds: tuple[int, int]) -> Trade:
    """A public ``trade`` message. Legacy frames without ``trade_id`` get a stable synthetic one."""
    msg = m.msg
    price, size = _trade_price_size(msg.yes_price_dollars, msg.yes_price, msg.count_fp, msg.count)
    ts_venue = _ws_ts(msg.ts, msg.ts_ms, bounds)
    trade_id = msg.trade_id or f"{msg.market_ticker}:{ts_venue}:{price}:{size}"
    return Trade(
        venue=VENUE,
        instrument=msg.market_ticker,
        ts_venue=ts_venue,
        ts_recv=ts_recv,
        trade_id=trade_id,
        price=price,
        size=size,
        side=_taker(msg.taker_outcome_side or msg.taker_side),
        market_id=msg.market_ticker,
    )


NO_BID: Final = ("0",)
"""Bid prices that mean "no bid"."""
NO_ASK: Final = ("0", "1")
"""Ask prices that mean "no ask"."""


def quote_side(
    price: str | None, size: str | None, empty: tuple[str, ...]
) -> tuple[str | None, str | None]:
    """One checked side of a quote: ``(None, None)`` when the venue says it is empty.

    An empty side comes as price ``"0.0000"`` (no bid) or ``"1.0000"`` (no
    ask) with size ``"0.00"``; a side at size 0 quotes nothing whatever its
    price, and neither does a bid at 0 or an ask at 0 or 1.
    """
    if price is None or price in empty or size == "0":
        return None, None
    return price, size


def _side(
    price: str | None, size: str | None, empty: tuple[str, ...]
) -> tuple[str | None, str | None]:
    """:func:`quote_side` of wire text (checked here)."""
    return quote_side(PROBABILITIES.optional(price), SIZES.optional(size), empty)


def _ticker(m: p.WsTicker, ts_recv: int, bounds: tuple[int, int]) -> list[TopOfBook | PriceUpdate]:
    """A ``ticker`` message: the venue's top of book, plus the last price when present."""
    msg = m.msg
    ts_venue = _ws_ts(msg.ts, msg.ts_ms, bounds)
    bid_price, bid_size = _side(msg.yes_bid_dollars, msg.yes_bid_size_fp, NO_BID)
    ask_price, ask_size = _side(msg.yes_ask_dollars, msg.yes_ask_size_fp, NO_ASK)
    out: list[TopOfBook | PriceUpdate] = [
        TopOfBook(
            venue=VENUE,
            instrument=msg.market_ticker,
            ts_venue=ts_venue,
            ts_recv=ts_recv,
            bid_price=bid_price,
            bid_size=bid_size,
            ask_price=ask_price,
            ask_size=ask_size,
        )
    ]
    if msg.price_dollars is not None:
        size = SIZES.optional(msg.last_trade_size_fp)
        out.append(_last_price(msg.market_ticker, msg.price_dollars, size, ts_venue, ts_recv,
                               "ticker"))  # fmt: skip
    return out


def _last_price(
    ticker: str, price: str, size: str | None, ts_venue: int, ts_recv: int, source: str
) -> PriceUpdate:
    """The last traded price a ticker frame carries (both ticker channels)."""
    return PriceUpdate(venue=VENUE, instrument=ticker, ts_venue=ts_venue, ts_recv=ts_recv,
                       price=PROBABILITIES[price], size=size, source=source)  # fmt: skip


def _ticker_v2(
    m: p.WsTickerV2, ts_recv: int, bounds: tuple[int, int]
) -> list[QuoteChange | PriceUpdate]:
    """A ``ticker_v2`` delta: the quote fields it carries, plus the last price when present."""
    msg = m.msg
    ts_venue = _ws_ts(msg.ts, msg.ts_ms, bounds)
    out: list[QuoteChange | PriceUpdate] = []
    quoted = (msg.yes_bid_dollars, msg.yes_bid_size_fp, msg.yes_ask_dollars, msg.yes_ask_size_fp)
    if any(field is not None for field in quoted):
        out.append(
            QuoteChange(
                msg.market_ticker,
                ts_venue,
                PROBABILITIES.optional(msg.yes_bid_dollars),
                SIZES.optional(msg.yes_bid_size_fp),
                PROBABILITIES.optional(msg.yes_ask_dollars),
                SIZES.optional(msg.yes_ask_size_fp),
            )
        )
    if msg.price_dollars:  # "" when the market never traded
        out.append(_last_price(msg.market_ticker, msg.price_dollars, None, ts_venue, ts_recv,
                               "ticker_v2"))  # fmt: skip
    return out


_LIFECYCLE_STATUS = {
    "activated": MarketStatus.OPEN,
    "deactivated": MarketStatus.PAUSED,
    "determined": MarketStatus.RESOLVED,
    "settled": MarketStatus.RESOLVED,
}
"""Lifecycle events that change a market's canonical status (``created`` is decided by its
``open_ts``; date, tick-structure and metadata updates change no status)."""


def _lifecycle(m: p.WsLifecycle, ts_recv: int, bounds: tuple[int, int]) -> list[Item]:
    """A ``market_lifecycle_v2`` message as a :class:`MarketStatusChange`, when it is one."""
    msg = m.msg
    kind = msg.event_type
    status = _LIFECYCLE_STATUS.get(kind)
    when = msg.settled_ts if kind == "settled" else msg.determination_ts
    if kind == "created":
        opened = msg.open_ts is not None and msg.open_ts * _S <= ts_recv
        status = MarketStatus.OPEN if opened else MarketStatus.UPCOMING
    elif kind == "deactivated" and msg.is_deactivated is False:
        status = MarketStatus.OPEN  # the flag cleared: trading resumed
    if status is None:
        return []
    detail = kind
    if msg.result:
        if msg.result not in ("yes", "no", "scalar", "void"):
            raise Invalid("invalid_fields", f"lifecycle result {msg.result[:20]!r}")
        detail = f"{kind}: result {msg.result}"
    ts_venue = (
        in_window(when * _S, bounds) if when is not None and status is MarketStatus.RESOLVED else 0
    )
    return [
        MarketStatusChange(
            venue=VENUE,
            instrument=msg.market_ticker,
            ts_venue=ts_venue,
            ts_recv=ts_recv,
            status=status,
            detail=detail,
        )
    ]


def _account_side(side: str, action: str) -> Side:
    """The account's side on the canonical YES book: buying NO sells YES, selling NO buys it."""
    if side not in ("yes", "no") or action not in ("buy", "sell"):
        raise Invalid("invalid_fields", f"side {side[:10]!r} action {action[:10]!r}")
    return "buy" if (side == "yes") == (action == "buy") else "sell"


def _fill(m: p.WsFill, ts_recv: int, bounds: tuple[int, int]) -> AccountFill:
    """A ``fill`` of the key's own order as an :class:`AccountFill` (the fill id is the trade's:
    one trade fills one order of the account once)."""
    msg = m.msg
    if msg.yes_price_dollars is None or msg.count_fp is None:
        raise Invalid("invalid_fields", "fill without yes_price_dollars/count_fp")
    return AccountFill(
        venue=VENUE,
        instrument=msg.market_ticker,
        ts_venue=_ws_ts(msg.ts, msg.ts_ms, bounds),
        ts_recv=ts_recv,
        fill_id=f"{msg.trade_id}:{msg.order_id}",
        order_id=msg.order_id,
        trade_id=msg.trade_id,
        side=_account_side(msg.side, msg.action),
        price=PROBABILITIES[msg.yes_price_dollars],
        size=SIZES[msg.count_fp],
        is_taker=msg.is_taker,
        fee=SIZES.optional(msg.fee_cost),
    )


_ORDER_STATUSES = frozenset({"resting", "canceled", "executed", "pending"})


def _user_order(m: p.WsUserOrder, ts_recv: int, bounds: tuple[int, int]) -> AccountOrder:
    """A ``user_order`` update as an :class:`AccountOrder`."""
    msg = m.msg
    if msg.status not in _ORDER_STATUSES:
        raise Invalid("invalid_fields", f"order status {msg.status[:20]!r}")
    return AccountOrder(
        venue=VENUE,
        instrument=msg.ticker,
        ts_venue=_iso_in_window(msg.last_update_time, bounds),
        ts_recv=ts_recv,
        order_id=msg.order_id,
        status=msg.status,
        side=_account_side(msg.side, msg.action),
        price=PROBABILITIES.optional(msg.yes_price_dollars),
        remaining_size=SIZES[msg.remaining_count_fp or "0"],
        filled_size=SIZES[msg.fill_count_fp or "0"],
        client_order_id=msg.client_order_id or None,
    )
