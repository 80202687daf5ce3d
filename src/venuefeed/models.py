"""Canonical events and market metadata.

Every venue parser turns wire frames into these structs; everything after the
parser (book, pipeline, sinks, API) speaks only these. They are ``msgspec``
structs so that decoding, encoding and construction stay cheap on the hot path.

Conventions (ARCHITECTURE rule 3):

* Prices and sizes are canonical decimal strings (see :mod:`venuefeed.exact`):
  exact, ``"0.535"`` in is ``"0.535"`` out, and equal strings mean equal numbers.
* Timestamps are integer nanoseconds since the Unix epoch. ``ts_venue`` is the
  venue's own time for the event, ``ts_recv`` is when our process received the
  frame. A book snapshot's ``ts_venue`` is ``None`` (``null`` on the wire, NULL
  in storage) when the venue sends the book without a time (Kalshi and Binance
  REST books, Kalshi WebSocket snapshots): an unknown time is never written as
  a plausible-looking 0.
* ``instrument`` is the venue's identifier of the thing that trades: a
  Polymarket token id, a Kalshi market ticker, a Binance or Polygon symbol.
* Book sides are best-first: bids descending, asks ascending.

Encoded to JSON, every event carries its ``type`` tag so a consumer of the bus
or the live socket can tell them apart.
"""

from __future__ import annotations

import enum
from typing import Literal

import msgspec

__all__ = [
    "EVENT_TYPES",
    "AccountFill",
    "AccountOrder",
    "BookDelta",
    "BookLevel",
    "BookSnapshot",
    "BookState",
    "Candle",
    "DataGap",
    "Event",
    "Market",
    "MarketStatus",
    "MarketStatusChange",
    "Outcome",
    "PairQuote",
    "PriceUpdate",
    "Side",
    "TopOfBook",
    "Trade",
    "WhalePosition",
    "WhaleTrade",
    "event_decoder",
    "event_encoder",
]


Side = Literal["buy", "sell", "unknown"]
"""Aggressor (taker) side of a trade, or the side of a price update."""


class MarketStatus(enum.StrEnum):
    """Lifecycle of a market, common to all venues."""

    UPCOMING = "upcoming"
    OPEN = "open"
    PAUSED = "paused"
    CLOSED = "closed"
    RESOLVED = "resolved"
    UNKNOWN = "unknown"


class BookLevel(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """One price level: ``[price, size]`` on the wire, like the venues send it."""

    price: str
    size: str


class _Tagged(msgspec.Struct, kw_only=True, frozen=True, tag_field="type"):
    """Identity every canonical event carries; the time fields follow in the subclasses.

    The split keeps ``ts_venue`` in third place on the wire for every event while
    letting book snapshots, alone, declare it optional.
    """

    venue: str
    instrument: str


class _Event(_Tagged, kw_only=True, frozen=True):
    """An event the venue always times: ``ts_venue`` is the venue's clock."""

    ts_venue: int
    ts_recv: int


class _MaybeTimedEvent(_Tagged, kw_only=True, frozen=True):
    """An event a venue may send without a time: ``ts_venue`` is then ``None``."""

    ts_venue: int | None
    ts_recv: int


class BookSnapshot(_MaybeTimedEvent, tag="book_snapshot", frozen=True, gc=False):
    """A full (or top-N) picture of one instrument's book; replaces the local book.

    ``sequence`` is the venue's update id the snapshot is valid at (Binance
    ``lastUpdateId``, Kalshi ``seq``), ``checksum`` the venue's digest of the
    book (Polymarket ``hash``), both ``None`` where the venue has none.
    ``ts_venue`` is ``None`` when the venue sends the book without a time.
    """

    bids: list[BookLevel]
    asks: list[BookLevel]
    sequence: int | None = None
    checksum: str | None = None


class BookDelta(_Event, tag="book_delta", frozen=True, gc=False):
    """Changed levels of one instrument's book.

    Sizes are the new absolute size at that price; zero removes the level.
    Like every price and size, levels are checked and canonical when the parser
    emits them (``"4.00000200"`` arrives as ``"4.000002"``).
    Venues that send increments (Kalshi) are turned into absolute sizes by the
    book before a delta is emitted. ``first_sequence``/``sequence`` bound the
    venue update ids the delta covers, for gap detection.
    """

    bids: list[BookLevel]
    asks: list[BookLevel]
    sequence: int | None = None
    first_sequence: int | None = None
    checksum: str | None = None


class Trade(_Event, tag="trade", frozen=True, gc=False):
    """One execution.

    ``side`` is the aggressor's side. ``maker``/``taker`` are wallet or account
    identifiers where the venue publishes them. ``market_id`` ties a token-level
    trade back to its market (Polymarket condition id). ``flags`` are quality
    marks added by the pipeline (for example ``"price_divergence"``).
    """

    trade_id: str
    price: str
    size: str
    side: Side = "unknown"
    market_id: str | None = None
    maker: str | None = None
    taker: str | None = None
    flags: tuple[str, ...] = ()


class TopOfBook(_Event, tag="top_of_book", frozen=True, gc=False):
    """Best bid and ask as the venue reports them (not derived from our book)."""

    bid_price: str | None
    bid_size: str | None
    ask_price: str | None
    ask_size: str | None
    sequence: int | None = None


class PriceUpdate(_Event, tag="price_update", frozen=True, gc=False):
    """A price print that is not a full trade record: last trade price, ticker.

    ``size`` is ``None`` when the venue omitted it; the pipeline's G3 stage
    tries to fill it from recent REST trades at that price.
    """

    price: str
    size: str | None = None
    side: Side = "unknown"
    source: str = "last_trade"


class Candle(_Event, tag="candle", frozen=True, gc=False):
    """An OHLCV bar. ``open_time`` identifies it (with venue, instrument, interval)."""

    interval: str
    open_time: int
    close_time: int
    open: str
    high: str
    low: str
    close: str
    volume: str
    trades: int | None = None
    closed: bool = True


class MarketStatusChange(_Event, tag="market_status", frozen=True, gc=False):
    """A market opened, paused, closed or resolved; ``detail`` says e.g. the winner."""

    status: MarketStatus
    previous: MarketStatus | None = None
    detail: str | None = None


class BookState(_Event, tag="book_state", frozen=True, gc=False):
    """An instrument's book changed sync state (see :class:`venuefeed.book.SyncState`).

    ``reason`` says why (an :class:`venuefeed.book.Inconsistency` value, ``"snapshot"``,
    ``"silent"`` ...). Emitted by venue streams so status and the gap ledger see it.
    """

    state: str
    reason: str = ""


class DataGap(_Event, tag="data_gap", frozen=True, gc=False):
    """A stretch of time during which data may be missing: one entry in the gap ledger.

    ``cause`` is ``sequence_gap``, ``checksum_mismatch``, ``disconnect``,
    ``restart`` or ``missed_poll``; ``start``/``end`` are ns (``end`` 0 while
    still open). One incident is one gap: ``instrument`` names its scope (an
    instrument, or a subscription/connection such as ``"sid:3"``) and
    ``instruments`` lists every instrument it affected when that is more than
    the scope itself. ``healed`` is set only once the missing data was really
    fetched and stored (or the book resynced); a gap the venue cannot heal
    (history limits) stays open and says why in ``detail``.
    """

    cause: str
    start: int
    end: int = 0
    detail: str = ""
    healed: bool = False
    instruments: tuple[str, ...] = ()


class WhaleTrade(_Event, tag="whale_trade", frozen=True, gc=False):
    """A trade by a watched wallet, or any trade whose notional crosses the threshold.

    ``instrument`` is the traded token/instrument, ``ts_venue`` the trade's time
    and ``ts_recv`` when we detected it. ``amount`` is the notional
    (price × size). ``known_whale`` tells a watched wallet from a large
    trade by anyone.
    """

    trade_id: str
    trader_address: str
    side: Side
    price: str
    size: str
    amount: str
    market_id: str | None = None
    known_whale: bool = False


class AccountFill(_Event, tag="account_fill", frozen=True, gc=False):
    """A fill of one of the configured account's own orders (never a public trade).

    ``side`` is the account's side on the canonical book (``buy``: it bought the
    instrument, e.g. YES); ``is_taker`` says whether its order took liquidity.
    """

    fill_id: str
    order_id: str
    side: Side
    price: str
    size: str
    is_taker: bool | None = None
    fee: str | None = None
    trade_id: str | None = None


class AccountOrder(_Event, tag="account_order", frozen=True, gc=False):
    """A state of one of the configured account's own orders (placed, filled, cancelled).

    ``status`` is ``resting``, ``canceled`` or ``executed``; sizes are what is
    left and what has filled so far, ``price`` the limit on the canonical book.
    """

    order_id: str
    status: str
    side: Side
    price: str | None
    remaining_size: str
    filled_size: str
    client_order_id: str | None = None


class WhalePosition(_Event, tag="whale_position", frozen=True, gc=False):
    """A watched wallet's position in one outcome token changed.

    ``action`` is ``opened``, ``increased``, ``reduced`` or ``closed``;
    ``size`` the position after the change and ``previous`` before it (both
    in shares), ``change`` the signed difference. ``instrument`` is the token,
    ``market_id`` its market. The venue's positions endpoint has no time of
    its own, so ``ts_venue`` is when the change was observed, like ``ts_recv``.
    """

    trader_address: str
    action: Literal["opened", "increased", "reduced", "closed"]
    size: str
    previous: str
    change: str
    avg_price: str | None = None
    market_id: str | None = None
    title: str | None = None
    outcome: str | None = None


class PairQuote(_Event, tag="pair_quote", frozen=True, gc=False):
    """The same outcome priced on two venues at once, for one confirmed cross-venue pair.

    ``venue`` is ``"arb"`` and ``instrument`` the pair id. Every price is the
    probability of the Kalshi market's YES outcome (a Polymarket book is
    inverted when the pair maps YES to NO). ``edge_buy_kalshi`` is what one
    contract earns, after both venues' taker fees, buying YES on Kalshi at its
    ask and selling it (buying the other side) on Polymarket at its bid;
    ``edge_buy_polymarket`` the reverse; ``best_edge`` the larger of the two
    (``None`` while a side of a book is empty). Positive means a cross.
    """

    kalshi_market: str
    polymarket_token: str
    mapping: Literal["yes_yes", "yes_no"]
    kalshi_bid: str | None
    kalshi_ask: str | None
    polymarket_bid: str | None
    polymarket_ask: str | None
    edge_buy_kalshi: str | None
    edge_buy_polymarket: str | None
    best_edge: str | None


Event = (
    BookSnapshot
    | BookDelta
    | Trade
    | TopOfBook
    | PriceUpdate
    | Candle
    | MarketStatusChange
    | BookState
    | DataGap
    | WhaleTrade
    | AccountFill
    | AccountOrder
    | WhalePosition
    | PairQuote
)
"""Any canonical event."""

EVENT_TYPES: tuple[type[_Tagged], ...] = (
    BookSnapshot,
    BookDelta,
    Trade,
    TopOfBook,
    PriceUpdate,
    Candle,
    MarketStatusChange,
    BookState,
    DataGap,
    WhaleTrade,
    AccountFill,
    AccountOrder,
    WhalePosition,
    PairQuote,
)


class Outcome(msgspec.Struct, frozen=True):
    """One tradable outcome of a market and the instrument that trades it."""

    name: str
    token_id: str
    price: str | None = None


class Market(msgspec.Struct, kw_only=True, frozen=True):
    """Market metadata, as discovered from a venue's REST API.

    ``raw_hash`` is a digest of the venue payload the market was built from;
    the store keeps a new row in ``market_versions`` whenever the rules text
    or metadata (hence the hash of the canonical fields) changes.
    """

    venue: str
    market_id: str
    title: str
    event_id: str | None = None
    slug: str | None = None
    rules: str = ""
    outcomes: tuple[Outcome, ...] = ()
    status: MarketStatus = MarketStatus.UNKNOWN
    open_time: int | None = None
    close_time: int | None = None
    resolution_time: int | None = None
    tick_size: str | None = None
    min_size: str | None = None
    category: str | None = None
    raw_hash: str = ""

    @property
    def instruments(self) -> tuple[str, ...]:
        """The instrument ids that trade this market (one per outcome token)."""
        return tuple(o.token_id for o in self.outcomes)


event_encoder = msgspec.json.Encoder()
"""Shared JSON encoder for events; reuse it rather than building one per call."""

event_decoder: msgspec.json.Decoder[Event] = msgspec.json.Decoder(Event)
"""Decodes any tagged event produced by :data:`event_encoder`."""
