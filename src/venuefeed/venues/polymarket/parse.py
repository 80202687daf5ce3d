"""Pure Polymarket parsing: wire bytes in, validated canonical events out.

Nothing here does I/O (ARCHITECTURE rule 1), so the live stream, replays,
tests and the benchmark share it, and nothing here raises: every entry point
turns bad input into a counted rejection (:class:`~venuefeed.venues.rejects.Rejects`).

* :func:`parse_frame` reads one WebSocket frame (an object, an array of
  objects, or a text notice such as ``PONG``). The fast path is a single
  ``msgspec`` decode into a tagged union; only when that fails does it decode
  element by element, so one bad or unknown element never costs the good
  ones. It returns canonical events plus what the stream needs beyond them:
  a :class:`Change` (a delta with the venue's own top of book, to check the
  local book against), a :class:`TickSize`, a :class:`Lost` (a change for an
  asset was refused, so that asset's book missed it) and the
  :class:`~venuefeed.models.Market` of a ``new_market``.
* The REST parsers (:func:`parse_book`, :func:`parse_books`,
  :func:`parse_markets_page`, :func:`parse_events_page`,
  :func:`parse_trades_page`, :func:`parse_candles`) return ``None`` for a body
  that is not the documented shape at all, and otherwise reject only the bad
  items. Offset-paged lists keep one entry per item the venue sent (``None``
  for a refused one): the pager advances by that count.

Every number is checked at this boundary (:mod:`venuefeed.venues.checks`):
prices are probabilities in [0, 1], sizes >= 0, all canonical text; venue
times lie in the receive-time window. A book snapshot from the venue that is
crossed is refused too (its asset is :class:`Lost`, so the stream reloads it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from decimal import Decimal
from operator import attrgetter
from typing import Any, Final, TypeVar

import msgspec

from venuefeed.book import KERNEL, Inconsistency
from venuefeed.models import (
    BookDelta,
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
    EARLIEST_NS,
    PROBABILITIES,
    SIZES,
    Invalid,
    in_window,
    ms_text,
)
from venuefeed.venues.polymarket.protocol import (
    BestBidAskMsg,
    BookMsg,
    BookSummary,
    DataTrade,
    EventTypeOnly,
    GammaEvent,
    GammaKeysetPage,
    GammaMarket,
    HistoryPoint,
    LastTradeMsg,
    MarketResolvedMsg,
    NewMarketMsg,
    PriceChangeItem,
    PriceChangeMsg,
    PriceHistory,
    TickSizeMsg,
    WireLevel,
    WsMessage,
)
from venuefeed.venues.rejects import Rejects

if KERNEL == "c":
    from venuefeed import _kernel

__all__ = [
    "VENUE",
    "Change",
    "Item",
    "Lost",
    "TickSize",
    "book_hash",
    "book_snapshot",
    "parse_book",
    "parse_books",
    "parse_candles",
    "parse_events_keyset",
    "parse_events_page",
    "parse_frame",
    "parse_markets_keyset",
    "parse_markets_page",
    "parse_trades_page",
    "trade_id",
]

VENUE: Final = "polymarket"
_S: Final = 1_000_000_000
_KNOWN_TYPES: Final = frozenset(
    {
        "book",
        "price_change",
        "last_trade_price",
        "tick_size_change",
        "best_bid_ask",
        "new_market",
        "market_resolved",
    }
)
_SIDES: Final[dict[str, Side]] = {"BUY": "buy", "SELL": "sell", "buy": "buy", "sell": "sell"}
_JSON_START: Final = frozenset({ord("{"), ord("["), "{", "["})
_NOTICES: Final = frozenset({"PONG", b"PONG", "NO NEW ASSETS", b"NO NEW ASSETS"})
"""Text frames the venue sends besides JSON: the heartbeat reply and a subscribe notice."""


class Change(msgspec.Struct, frozen=True, gc=False):
    """One asset's changes from a ``price_change``, and the venue's top of book after them.

    ``best_bid``/``best_ask`` are canonical, ``"0"`` when the venue says that
    side is empty, ``None`` when the (older) message shape does not carry them.
    (Items are msgspec structs: built per change, and far cheaper than a NamedTuple.)
    """

    delta: BookDelta
    best_bid: str | None
    best_ask: str | None


class TickSize(msgspec.Struct, frozen=True, gc=False):
    """A tick-size change: every level may be re-priced, so the asset's book is void."""

    status: MarketStatusChange


class Lost(msgspec.Struct, frozen=True, gc=False):
    """An update for ``instrument`` was refused: its local book missed it and must be reloaded."""

    instrument: str
    reason: Inconsistency


Item = (
    BookSnapshot
    | Change
    | Trade
    | PriceUpdate
    | TopOfBook
    | TickSize
    | MarketStatusChange
    | Market
    | Lost
)
"""What :func:`parse_frame` returns, in frame order."""

_fast = msgspec.json.Decoder(list[WsMessage] | WsMessage)
_one = msgspec.json.Decoder(WsMessage)
_any = msgspec.json.Decoder(list[msgspec.Raw] | dict[str, msgspec.Raw])
_type_only = msgspec.json.Decoder(EventTypeOnly)


# -- WebSocket -------------------------------------------------------------------------


def parse_frame(data: bytes | str, ts_recv: int, rejects: Rejects) -> list[Item]:
    """Every item of one market-channel frame; bad messages counted in ``rejects``.

    Text notices (``PONG``, ``NO NEW ASSETS``) yield nothing; other text is
    counted as ``not_json``. Never raises.
    """
    if not data:
        return []
    if data[0] not in _JSON_START:
        data = data.strip()
        if not data or data in _NOTICES:
            return []
        if data[0] not in _JSON_START:
            rejects.reject("not_json", sample=data)
            return []
    try:
        decoded = _fast.decode(data)
        messages = decoded if isinstance(decoded, list) else [decoded]
    except DECODE_ERRORS:
        messages = _salvage(data, rejects)
    bounds = rejects.window.live(ts_recv)
    out: list[Item] = []
    for msg in messages:
        try:
            if type(msg) is PriceChangeMsg:  # most frames: skip the dispatch
                out.extend(_price_changes(msg, ts_recv, bounds, rejects))
            else:
                _convert(msg, ts_recv, bounds, rejects, out)
        except Invalid as exc:
            rejects.invalid(exc, type(msg).__name__)
            crossed = exc.reason == "crossed_book"
            out.extend(_lost(msg, Inconsistency.CROSSED if crossed else Inconsistency.REJECTED))
        except Exception as exc:  # a parser bug must not end the stream: counted, logged once
            rejects.bug(exc, type(msg).__name__)
            out.extend(_lost(msg, Inconsistency.REJECTED))
    return out


def _salvage(data: bytes | str, rejects: Rejects) -> list[WsMessage]:
    try:
        outer = _any.decode(data)
    except DECODE_ERRORS:
        rejects.reject("malformed_json", sample=data)
        return []
    raws: list[Any] = outer if isinstance(outer, list) else [msgspec.Raw(_as_bytes(data))]
    out: list[WsMessage] = []
    for raw in raws:
        try:
            out.append(_one.decode(raw))
        except DECODE_ERRORS as exc:
            _reject_element(raw, exc, rejects)
    return out


def _reject_element(raw: msgspec.Raw, exc: Exception, rejects: Rejects) -> None:
    try:
        event_type = _type_only.decode(raw).event_type
    except DECODE_ERRORS:
        event_type = ""
    if event_type and event_type not in _KNOWN_TYPES:
        rejects.reject("unknown_event_type", event_type[:40])
    else:
        rejects.reject("invalid_fields", f"{event_type[:40]}: {exc}", bytes(raw))


def _as_bytes(data: bytes | str) -> bytes:
    return data.encode("utf-8", "replace") if isinstance(data, str) else data


def _lost(msg: object, reason: Inconsistency) -> list[Lost]:
    """The assets whose books a refused message would have changed."""
    if isinstance(msg, PriceChangeMsg):
        if msg.price_changes is not None:
            return [Lost(a, reason) for a in dict.fromkeys(i.asset_id for i in msg.price_changes)]
        return [Lost(msg.asset_id, reason)] if msg.asset_id is not None else []
    if isinstance(msg, BookMsg):
        return [Lost(msg.asset_id, reason)]
    return []


def _convert(
    msg: WsMessage, ts_recv: int, bounds: tuple[int, int], rejects: Rejects, out: list[Item]
) -> None:
    kind = type(msg)
    if kind is PriceChangeMsg:
        assert isinstance(msg, PriceChangeMsg)
        out.extend(_price_changes(msg, ts_recv, bounds, rejects))
    elif kind is BookMsg:
        assert isinstance(msg, BookMsg)
        out.append(_snapshot(msg, ts_recv, (EARLIEST_NS, bounds[1])))
    elif kind is LastTradeMsg:
        assert isinstance(msg, LastTradeMsg)
        out.append(_trade(msg, ts_recv, bounds))
    elif kind is BestBidAskMsg:
        assert isinstance(msg, BestBidAskMsg)
        out.append(_top_of_book(msg, ts_recv, bounds))
    elif kind is TickSizeMsg:
        assert isinstance(msg, TickSizeMsg)
        out.append(_tick_size(msg, ts_recv, bounds))
    elif kind is MarketResolvedMsg:
        assert isinstance(msg, MarketResolvedMsg)
        out.extend(_resolved(msg, ts_recv, bounds))
    elif kind is NewMarketMsg:
        assert isinstance(msg, NewMarketMsg)
        out.append(_new_market(msg, bounds))


def _levels(levels: list[WireLevel], descending: bool) -> list[BookLevel]:
    """Checked canonical levels best-first, zero sizes dropped.

    The venue sends the best level *last* (and third-party docs claim the
    opposite), so the order is always established here rather than trusted.
    For canonical text in [0, 1] (``"0.45"``, ``"0.455"``, ``"1"``) string
    order *is* numeric order, so the sort needs no ``float()`` per level.
    """
    prices, sizes = PROBABILITIES.known, SIZES.known
    try:
        out = [BookLevel(prices[lv.price], sizes[lv.size]) for lv in levels]
    except KeyError:  # a number not seen before: check (and learn) each
        out = [BookLevel(PROBABILITIES[lv.price], SIZES[lv.size]) for lv in levels]
    out = [lv for lv in out if lv.size != "0"]
    out.sort(key=_PRICE, reverse=descending)
    return out


_PRICE = attrgetter("price")


def book_snapshot(
    msg: BookMsg | BookSummary, ts_recv: int, rejects: Rejects, depth: int | None = None
) -> BookSnapshot | None:
    """A ``book`` frame or REST summary as a best-first snapshot (``depth`` levels per side).

    ``None``, counted, when a number or the time fails its check or the book is
    crossed (a book the venue itself cannot have: the caller reloads it).
    """
    try:
        return _snapshot(msg, ts_recv, rejects.window.history(ts_recv), depth)
    except Invalid as exc:
        rejects.invalid(exc, "book")
        return None


def _snapshot(
    msg: BookMsg | BookSummary, ts_recv: int, bounds: tuple[int, int], depth: int | None = None
) -> BookSnapshot:
    """``bounds``: a book's ``timestamp`` is the time of its last change, which for
    a quiet market may lie weeks back, so only history bounds apply (not before
    1990, not after the receive time)."""
    bids = _levels(msg.bids, descending=True)
    asks = _levels(msg.asks, descending=False)
    ts_venue = in_window(ms_text(msg.timestamp), bounds)
    if bids and asks and bids[0].price >= asks[0].price:  # canonical [0, 1] text orders as numbers
        raise Invalid("crossed_book", f"{msg.asset_id[:24]}: {bids[0].price} >= {asks[0].price}")
    if depth is not None:
        bids, asks = bids[:depth], asks[:depth]
    return BookSnapshot(
        venue=VENUE,
        instrument=msg.asset_id,
        ts_venue=ts_venue,
        ts_recv=ts_recv,
        bids=bids,
        asks=asks,
        checksum=msg.hash or None,
    )


_COMPILED: Final = KERNEL == "c"
"""``price_change`` messages are grouped in C when the kernel runs (see :mod:`venuefeed.book`)."""


def _price_changes(
    msg: PriceChangeMsg, ts_recv: int, bounds: tuple[int, int], rejects: Rejects
) -> list[Change | Lost]:
    """A ``price_change`` in any of its three shapes as one delta per asset.

    Sizes are absolute (``"0"`` removes the level); BUY is the bid side. An
    asset whose change fails a check is :class:`Lost` (the others go on).
    This runs for most frames of the feed, so the time and number checks are
    written out here rather than called.
    """
    text = msg.timestamp
    if not (text.isdigit() and text.isascii() and len(text) <= 15):
        raise Invalid("invalid_timestamp", text)
    ts = int(text) * 1_000_000
    if not bounds[0] <= ts <= bounds[1]:
        raise Invalid("timestamp_out_of_window", ts)
    items = msg.price_changes
    if items is None:
        items = _legacy_items(msg)
    prices, sizes, learn_price = PROBABILITIES.known, SIZES.known, PROBABILITIES.learn
    if _COMPILED:
        # The same grouping in C when every item is valid; None sends the message on
        # to the loop below, which says what was wrong with which item.
        fast = _kernel.price_changes(
            items, ts, ts_recv, VENUE, prices, learn_price, sizes, SIZES.learn, BookDelta, Change
        )
        if fast is not None:
            return fast
    # Per asset: [bids, asks, best_bid, best_ask, hash], the last three from its last item.
    # One list per asset (most assets have one item), built with its first level in it.
    grouped: dict[str, list[Any]] = {}
    lost: dict[str, None] = {}
    for item in items:
        asset = item.asset_id
        if lost and asset in lost:
            continue
        side, best_bid, best_ask = item.side, item.best_bid, item.best_ask
        try:
            if side != "BUY" and side != "SELL":
                raise Invalid("invalid_fields", f"price_change side {side!r}")
            price, size = item.price, item.size
            level = BookLevel(
                prices.get(price) or learn_price(price), sizes.get(size) or SIZES.learn(size)
            )
            # The venue's top after the change; "" means that side is empty ("0").
            if best_bid:
                best_bid = prices.get(best_bid) or learn_price(best_bid)
            elif best_bid == "":
                best_bid = "0"
            if best_ask:
                best_ask = prices.get(best_ask) or learn_price(best_ask)
            elif best_ask == "":
                best_ask = "0"
        except Invalid as exc:
            rejects.invalid(exc, "price_change")
            lost[asset] = None
            grouped.pop(asset, None)
            continue
        entry = grouped.get(asset)
        if entry is None:
            if side == "BUY":
                grouped[asset] = [[level], [], best_bid, best_ask, item.hash]
            else:
                grouped[asset] = [[], [level], best_bid, best_ask, item.hash]
        else:
            entry[0 if side == "BUY" else 1].append(level)
            entry[2], entry[3], entry[4] = best_bid, best_ask, item.hash
    out: list[Change | Lost] = [
        Change(
            BookDelta(
                venue=VENUE,
                instrument=asset,
                ts_venue=ts,
                ts_recv=ts_recv,
                bids=bids,
                asks=asks,
                checksum=digest or None,
            ),
            top_bid,
            top_ask,
        )
        for asset, (bids, asks, top_bid, top_ask, digest) in grouped.items()
    ]
    if lost:
        out.extend(Lost(asset, Inconsistency.REJECTED) for asset in lost)
    return out


def _legacy_items(msg: PriceChangeMsg) -> list[PriceChangeItem]:
    """The two older ``price_change`` shapes as items of the current one (no venue top)."""
    asset = msg.asset_id
    if asset is None:
        raise Invalid("invalid_fields", "price_change without price_changes or asset_id")
    digest = msg.hash or ""
    if msg.changes is not None:
        return [PriceChangeItem(asset, c.price, c.size, c.side, digest) for c in msg.changes]
    if msg.price is not None and msg.side is not None and msg.size is not None:
        return [PriceChangeItem(asset, msg.price, msg.size, msg.side, digest)]
    raise Invalid("invalid_fields", "price_change without changes")


def trade_id(
    asset_id: str,
    side: str,
    size: str,
    price: str,
    transaction_hash: str = "",
    timestamp_ms: int = 0,
) -> str:
    """A deterministic trade id, so replays and the two trade sources deduplicate.

    Polymarket's public prints carry no trade id. When the on-chain
    ``transaction_hash`` is known (Data API rows always, WebSocket prints in
    the newer format) the id is derived from it plus asset, side, size and
    price -- the same fields in both sources, so a trade seen live and again
    in a backfill gets one id. Without it, the print's own timestamp stands
    in for the hash. All numbers must be canonical strings. Two fills in one
    transaction with identical asset, side, size and price collapse into one
    (accepted: they are indistinguishable in the public data).
    """
    if transaction_hash:
        key = f"{transaction_hash.lower()}|{asset_id}|{side}|{size}|{price}"
    else:
        key = f"ts:{timestamp_ms}|{asset_id}|{side}|{size}|{price}"
    return hashlib.blake2b(key.encode("utf-8", "replace"), digest_size=16).hexdigest()


def _trade(msg: LastTradeMsg, ts_recv: int, bounds: tuple[int, int]) -> Trade | PriceUpdate:
    """A ``last_trade_price`` print: a :class:`Trade` when it has a size, else a price update.

    A print without size cannot be stored as a trade (the pipeline's G3 step
    may recover the size from REST trades), so it becomes a ``PriceUpdate``.
    """
    side = _SIDES.get(msg.side, "unknown")
    price = PROBABILITIES[msg.price]
    ts = in_window(ms_text(msg.timestamp), bounds)
    if not msg.size:
        return PriceUpdate(
            venue=VENUE,
            instrument=msg.asset_id,
            ts_venue=ts,
            ts_recv=ts_recv,
            price=price,
            side=side,
        )
    size = SIZES[msg.size]
    return Trade(
        venue=VENUE,
        instrument=msg.asset_id,
        ts_venue=ts,
        ts_recv=ts_recv,
        trade_id=trade_id(msg.asset_id, side, size, price, msg.transaction_hash, ts // 1_000_000),
        price=price,
        size=size,
        side=side,
        market_id=msg.market,
    )


def _quote(text: str | None, empty: tuple[str, ...]) -> str | None:
    """A quoted price, or ``None`` for a side the venue reports empty."""
    if not text:
        return None
    price = PROBABILITIES[text]
    return None if price in empty else price


def _top_of_book(msg: BestBidAskMsg, ts_recv: int, bounds: tuple[int, int]) -> TopOfBook:
    """The venue's own best bid/ask (sizes are not sent); an empty side is ``None``."""
    return TopOfBook(
        venue=VENUE,
        instrument=msg.asset_id,
        ts_venue=in_window(ms_text(msg.timestamp), bounds),
        ts_recv=ts_recv,
        bid_price=_quote(msg.best_bid, ("0",)),
        bid_size=None,
        ask_price=_quote(msg.best_ask, ("0", "1")),
        ask_size=None,
    )


def _tick_size(msg: TickSizeMsg, ts_recv: int, bounds: tuple[int, int]) -> TickSize:
    """A tick-size change; the market stays open but every price grid shifts."""
    old, new = PROBABILITIES[msg.old_tick_size], PROBABILITIES[msg.new_tick_size]
    status = MarketStatusChange(
        venue=VENUE,
        instrument=msg.asset_id,
        ts_venue=in_window(ms_text(msg.timestamp), bounds),
        ts_recv=ts_recv,
        status=MarketStatus.OPEN,
        previous=MarketStatus.OPEN,
        detail=f"tick_size {old} -> {new}",
    )
    return TickSize(status)


def _resolved(
    msg: MarketResolvedMsg, ts_recv: int, bounds: tuple[int, int]
) -> list[MarketStatusChange]:
    """One ``resolved`` status per outcome token, saying whether that token won."""
    ts = in_window(ms_text(msg.timestamp), bounds)
    return [
        MarketStatusChange(
            venue=VENUE,
            instrument=asset,
            ts_venue=ts,
            ts_recv=ts_recv,
            status=MarketStatus.RESOLVED,
            detail=(
                f"won ({msg.winning_outcome})"
                if asset == msg.winning_asset_id
                else f"lost (winner {msg.winning_outcome})"
            ),
        )
        for asset in msg.assets_ids
    ]


def _new_market(msg: NewMarketMsg, bounds: tuple[int, int]) -> Market:
    """A ``new_market`` announcement as market metadata."""
    tokens = msg.clob_token_ids or msg.assets_ids
    outcomes = tuple(
        Outcome(name, token) for name, token in zip(msg.outcomes, tokens, strict=False)
    )
    market_id = msg.condition_id or msg.market
    tick = PROBABILITIES.optional(msg.order_price_min_tick_size or None)
    status = MarketStatus.OPEN if msg.active else MarketStatus.UPCOMING
    event_id = msg.event_message.id if msg.event_message and msg.event_message.id else None
    category = msg.tags[0] if msg.tags else None
    return Market(
        venue=VENUE,
        market_id=market_id,
        title=msg.question,
        event_id=event_id,
        slug=msg.slug or None,
        rules=msg.description,
        outcomes=outcomes,
        status=status,
        open_time=in_window(ms_text(msg.timestamp), bounds),
        tick_size=tick,
        category=category,
        raw_hash=_market_hash(market_id, msg.question, msg.description, outcomes, None, tick, None),
    )


# -- REST ------------------------------------------------------------------------------

_summary = msgspec.json.Decoder(BookSummary)
_summaries = msgspec.json.Decoder(list[BookSummary])
_raw_list = msgspec.json.Decoder(list[msgspec.Raw])
_markets = msgspec.json.Decoder(list[GammaMarket])
_market = msgspec.json.Decoder(GammaMarket)
_events = msgspec.json.Decoder(list[GammaEvent])
_keyset = msgspec.json.Decoder(GammaKeysetPage)
_event = msgspec.json.Decoder(GammaEvent)
_data_trades = msgspec.json.Decoder(list[DataTrade])
_data_trade = msgspec.json.Decoder(DataTrade)
_history = msgspec.json.Decoder(PriceHistory)

T = TypeVar("T")


def _items(
    body: bytes,
    fast: msgspec.json.Decoder[list[T]],
    one: msgspec.json.Decoder[T],
    what: str,
    rejects: Rejects,
) -> list[T | None] | None:
    """A JSON array of items: all at once, or item by item when one of them is bad.

    ``None`` for a body that is not an array; a bad item becomes ``None`` (and
    is counted) so the list keeps one entry per item the venue sent.
    """
    try:
        return list(fast.decode(body))
    except DECODE_ERRORS:
        pass
    raws = rejects.decode(_raw_list, body, f"malformed_{what}")
    return None if raws is None else rejects.decode_each(one, raws, f"invalid_{what}_item")


def parse_book(
    body: bytes, ts_recv: int, rejects: Rejects, depth: int | None = None
) -> BookSnapshot | None:
    """``GET /book``: the checked, best-first snapshot, or ``None`` (counted)."""
    summary = rejects.decode(_summary, body, "malformed_book")
    return None if summary is None else book_snapshot(summary, ts_recv, rejects, depth)


def parse_books(body: bytes, rejects: Rejects) -> list[BookSummary] | None:
    """``POST /books``: the decoded summaries (the stream checks their hashes, then
    :func:`book_snapshot` validates them); an undecodable element is counted and left out."""
    items = _items(body, _summaries, _summary, "book", rejects)
    return None if items is None else [s for s in items if s is not None]


def book_hash(summary: BookSummary) -> str:
    """The book digest as the official Python client computes it.

    SHA-1 of the compact JSON of the summary with ``hash`` blanked, keys in the
    client's field order, values exactly as received; fields the response
    lacked are ``null`` (the client's dataclass defaults). The server's
    algorithm has changed at least once, so a mismatch is an audit signal only.
    """
    body = {
        "market": summary.market,
        "asset_id": summary.asset_id,
        "timestamp": summary.timestamp,
        "hash": "",
        "bids": summary.bids,
        "asks": summary.asks,
        "min_order_size": summary.min_order_size,
        "tick_size": summary.tick_size,
        "neg_risk": summary.neg_risk,
        "last_trade_price": summary.last_trade_price,
    }
    return hashlib.sha1(msgspec.json.encode(body), usedforsecurity=False).hexdigest()


def parse_trades_page(body: bytes, ts_recv: int, rejects: Rejects) -> list[Trade | None] | None:
    """A Data-API ``/trades`` or ``/activity`` page: one entry per row the venue sent.

    ``None`` entries are rows that are not trades (``/activity`` also lists
    splits, merges, rewards) or were refused; they keep the offset pager's count.
    """
    rows = _items(body, _data_trades, _data_trade, "trade", rejects)
    if rows is None:
        return None
    bounds = rejects.window.history(ts_recv)
    return [
        rejects.guard("data_trade", _data_row, row, ts_recv, bounds) if row is not None else None
        for row in rows
    ]


def _data_row(row: DataTrade, ts_recv: int, bounds: tuple[int, int]) -> Trade | None:
    """A Data-API trade row as a trade (None for non-trade activity rows).

    ``proxyWallet`` is the taker for ``/trades`` (``takerOnly`` defaults to
    true) and the wallet queried for ``/activity``; it is kept as ``taker``.
    """
    side = _SIDES.get(row.side)
    if side is None or row.type != "TRADE":
        return None
    price = PROBABILITIES.decimal(row.price)
    size = SIZES.decimal(row.size)
    ts = in_window(row.timestamp * _S, bounds)
    return Trade(
        venue=VENUE,
        instrument=row.asset,
        ts_venue=ts,
        ts_recv=ts_recv,
        trade_id=trade_id(row.asset, side, size, price, row.transaction_hash, row.timestamp * 1000),
        price=price,
        size=size,
        side=side,
        market_id=row.condition_id,
        taker=row.proxy_wallet or None,
    )


def parse_candles(
    body: bytes, instrument: str, interval_s: int, ts_recv: int, rejects: Rejects
) -> list[Candle] | None:
    """``GET /prices-history`` as bars: OHLC of the checked points inside each interval.

    The endpoint gives prices only, so ``volume`` is ``"0"`` and ``trades`` None.
    A point with a bad price or time is counted and left out of its bar.
    """
    history = rejects.decode(_history, body, "malformed_prices_history")
    if history is None:
        return None
    bounds = rejects.window.history(ts_recv)
    points = [
        p
        for point in history.history
        if (p := rejects.guard("price_point", _point, point, bounds)) is not None
    ]
    return _bars(points, instrument, interval_s, ts_recv)


def _point(point: HistoryPoint, bounds: tuple[int, int]) -> tuple[int, Decimal]:
    in_window(point.t * _S, bounds)
    return point.t, Decimal(PROBABILITIES.decimal(point.p))


def _bars(
    points: Iterable[tuple[int, Decimal]], instrument: str, interval_s: int, ts_recv: int
) -> list[Candle]:
    out: list[Candle] = []
    bucket: int | None = None
    o = h = lo = c = Decimal(0)

    def close_bar() -> None:
        assert bucket is not None
        out.append(
            Candle(
                venue=VENUE,
                instrument=instrument,
                ts_venue=bucket * _S,
                ts_recv=ts_recv,
                interval=_interval_name(interval_s),
                open_time=bucket * _S,
                close_time=(bucket + interval_s) * _S - 1,
                open=PROBABILITIES.decimal(o),
                high=PROBABILITIES.decimal(h),
                low=PROBABILITIES.decimal(lo),
                close=PROBABILITIES.decimal(c),
                volume="0",
            )
        )

    for t, price in sorted(points, key=lambda p: p[0]):
        start = t - t % interval_s
        if start != bucket:
            if bucket is not None:
                close_bar()
            bucket, o, h, lo = start, price, price, price
        h, lo, c = max(h, price), min(lo, price), price
    if bucket is not None:
        close_bar()
    return out


def _interval_name(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def parse_markets_page(body: bytes, rejects: Rejects) -> list[Market | None] | None:
    """A Gamma ``/markets`` page: one entry per market the venue sent (``None``: refused)."""
    markets = _items(body, _markets, _market, "market", rejects)
    return None if markets is None else _markets_of(markets, rejects)


def parse_markets_keyset(
    body: bytes, rejects: Rejects
) -> tuple[list[Market | None], str | None] | None:
    """A ``/markets/keyset`` page and the cursor after it (``None`` on the last page)."""
    page = rejects.decode(_keyset, body, "malformed_market_keyset")
    if page is None:
        return None
    markets = rejects.decode_each(_market, page.markets, "invalid_market_item")
    return _markets_of(markets, rejects), page.next_cursor or None


def _markets_of(markets: list[GammaMarket | None], rejects: Rejects) -> list[Market | None]:
    return [rejects.guard("gamma_market", _gamma_market, m, None) if m else None for m in markets]


def parse_events_page(body: bytes, rejects: Rejects) -> list[list[Market]] | None:
    """A Gamma ``/events`` page: the markets of each event, one list per event sent.

    One odd market is refused alone; an event that does not decode gives an
    empty list, so the offset pager still counts it.
    """
    events = _items(body, _events, _event, "event", rejects)
    return None if events is None else _events_of(events, rejects)


def parse_events_keyset(
    body: bytes, rejects: Rejects
) -> tuple[list[list[Market]], str | None] | None:
    """An ``/events/keyset`` page (as :func:`parse_events_page`) and the cursor after it."""
    page = rejects.decode(_keyset, body, "malformed_event_keyset")
    if page is None:
        return None
    events = rejects.decode_each(_event, page.events, "invalid_event_item")
    return _events_of(events, rejects), page.next_cursor or None


def _events_of(events: list[GammaEvent | None], rejects: Rejects) -> list[list[Market]]:
    out: list[list[Market]] = []
    for event in events:
        markets: list[Market] = []
        for m in event.markets if event is not None else ():
            market = rejects.guard("gamma_market", _gamma_market, m, event)
            if market is not None:
                markets.append(market)
        out.append(markets)
    return out


_str_list = msgspec.json.Decoder(list[str])


def _json_strings(text: str) -> list[str]:
    """Gamma's JSON-array-inside-a-string fields; malformed text is an empty list."""
    try:
        return _str_list.decode(text) if text else []
    except DECODE_ERRORS:
        return []


def _gamma_market(m: GammaMarket, event: GammaEvent | None) -> Market:
    """A Gamma market (and its event, when listed through ``/events``) as metadata.

    Both outcome tokens are kept, in the venue's order. ``raw_hash`` covers
    the fields that define the contract (question, rules, outcomes, tokens,
    dates, tick and size rules, status), not volume or prices, so only a real
    change of terms creates a new market version.
    """
    names = _json_strings(m.outcomes)
    tokens = _json_strings(m.clob_token_ids)
    prices = _json_strings(m.outcome_prices)
    outcomes = tuple(
        Outcome(name, token, PROBABILITIES[prices[i]] if i < len(prices) and prices[i] else None)
        for i, (name, token) in enumerate(zip(names, tokens, strict=False))
    )
    if m.closed:
        resolved = any(o.price == "1" for o in outcomes)
        status = MarketStatus.RESOLVED if resolved else MarketStatus.CLOSED
    elif not m.active:
        status = MarketStatus.UPCOMING
    elif m.accepting_orders is False:
        status = MarketStatus.PAUSED
    else:
        status = MarketStatus.OPEN
    ref = m.events[0] if m.events else None
    event_id = event.id if event is not None else (ref.id if ref is not None else None)
    tags = event.tags if event is not None else (ref.tags if ref is not None else [])
    category = m.category or (tags[0].label if tags else None)
    tick = (
        PROBABILITIES.decimal(m.order_price_min_tick_size) if m.order_price_min_tick_size else None
    )
    min_size = SIZES.decimal(m.order_min_size) if m.order_min_size is not None else None
    close_time = iso_to_ns(m.end_date)
    rules = m.description
    if m.resolution_source:
        rules = (
            f"{rules}\n\nResolution source: {m.resolution_source}" if rules else m.resolution_source
        )
    return Market(
        venue=VENUE,
        market_id=m.condition_id,
        title=m.question,
        event_id=event_id,
        slug=m.slug or None,
        rules=rules,
        outcomes=outcomes,
        status=status,
        open_time=iso_to_ns(m.start_date),
        close_time=close_time,
        resolution_time=iso_to_ns(m.closed_time),
        tick_size=tick,
        min_size=min_size,
        category=category,
        raw_hash=_market_hash(
            m.condition_id, m.question, rules, outcomes, close_time, tick, min_size, status, m.slug
        ),
    )


def _market_hash(
    market_id: str,
    title: str,
    rules: str,
    outcomes: tuple[Outcome, ...],
    close_time: int | None,
    tick: str | None,
    min_size: str | None,
    status: MarketStatus | None = None,
    slug: str = "",
) -> str:
    terms = [
        market_id,
        title,
        rules,
        [[o.name, o.token_id] for o in outcomes],
        close_time,
        tick,
        min_size,
        status.value if status is not None else None,
        slug,
    ]
    return hashlib.sha256(msgspec.json.encode(terms)).hexdigest()
