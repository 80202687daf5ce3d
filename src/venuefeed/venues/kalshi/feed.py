"""The Kalshi live feed as a state machine: frames in, canonical events and commands out.

No sockets here (the transport owns them), so every rule below is tested by
feeding bytes. What Kalshi needs beyond other venues:

* ``seq`` numbers a *subscription* (``sid``), not a market: one sid carries
  every ticker it was subscribed with and they share one counter. A gap
  therefore invalidates every book of that sid, and the documented cure is
  ``update_subscription`` with ``action: get_snapshot`` for that sid only;
  its deltas are dropped until each of its markets has a fresh snapshot.
* Deltas are signed increments; the book (:meth:`OrderBook.add`) turns them
  into absolute sizes so downstream :class:`BookDelta` events stay venue-neutral.
  The delta's ``first_sequence`` is the market's previous ``seq`` + 1: the sid
  was contiguous, so no update of *this* market was missed in between.
* Sids are per connection and reassigned after a reconnect, so sid maps are
  keyed by connection and dropped on the transport's ``Reconnected`` marker.
* The gap ledger hears of each incident once: a sequence gap (or a broken
  book) on one sid is one :class:`DataGap` listing every market of the sid,
  opened when it is found and healed when each of those markets has a fresh
  snapshot -- whether that snapshot comes from the ``get_snapshot`` request
  or from the resubscription after a reconnect. A skip in a ``trade`` sid's
  sequence means missed trades: a ``missed_trades`` gap for the REST
  back-fill to heal.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import msgspec

from venuefeed import metrics
from venuefeed.book import Books, Inconsistency, OrderBook, SyncState
from venuefeed.log import get_logger
from venuefeed.models import (
    BookDelta,
    BookLevel,
    BookState,
    DataGap,
    Event,
    MarketStatusChange,
    TopOfBook,
)
from venuefeed.transport import Frame
from venuefeed.venues.feed import NOTHING, Command, Output, Send, VenueFeed
from venuefeed.venues.kalshi import parse
from venuefeed.venues.kalshi import protocol as p
from venuefeed.venues.rejects import Rejects

__all__ = ["CHANNELS", "KalshiFeed"]

CHANNELS = {
    "books": "orderbook_delta",
    "trades": "trade",
    "quotes": "ticker",
    "status": "market_lifecycle_v2",
}
"""Canonical channel -> Kalshi channel (quotes may be ``ticker_v2`` instead). No candles."""
QUOTE_CHANNELS = ("ticker", "ticker_v2")
ACCOUNT_CHANNELS = ["fill", "user_orders"]
"""The key's own fills and order updates, published as ``AccountFill`` / ``AccountOrder``."""
_TERMINAL_ERRORS = frozenset({10, 17, 25})
_PENDING_MAX = 4096

_Out = tuple[list[Event], list[Send]]
"""What a handler answers: events, and frames to send (snapshot requests)."""

_log = get_logger("venuefeed.venues.kalshi.feed")


@dataclass(eq=False, slots=True)
class _Sid:
    channel: str
    tickers: set[str]
    last_seq: int | None = None
    awaiting: set[str] = field(default_factory=set)
    """Tickers still waiting for a snapshot; their deltas are dropped."""
    incident: _Incident | None = None
    """The open gap of this sid, if any: one per incident, however many skips follow."""
    last_trade_ns: int = 0


@dataclass(eq=False, slots=True)
class _Incident:
    gap: DataGap
    awaiting: set[str]
    """Markets still without a fresh snapshot; healed when empty."""


class KalshiFeed(VenueFeed):
    """Sequencing, books and commands for one stream (all connections)."""

    venue = parse.VENUE

    def __init__(
        self,
        channels: Iterable[str],
        rejects: Rejects | None = None,
        quote_channel: str = "ticker",
        account: bool = False,
    ) -> None:
        super().__init__()
        wanted = set(channels)
        self.channels = [
            quote_channel if c == "quotes" else CHANNELS[c] for c in CHANNELS if c in wanted
        ]
        if account:  # the key's own fills and orders (the connection is signed anyway)
            self.channels += ACCOUNT_CHANNELS
        self._tickers: set[str] = set()
        """Markets subscribed: lifecycle messages of others are not ours to publish."""
        self._quotes: dict[str, tuple[str | None, str | None, str | None, str | None]] = {}
        """Each market's last ``ticker_v2`` quote fields, which later deltas only amend."""
        self.books = Books(parse.VENUE)
        self.gaps = 0
        self.resyncs = 0
        self.snapshot_requests = 0
        self._sids: dict[int, dict[int, _Sid]] = {}
        self._incidents: list[_Incident] = []
        self._pending: dict[int, tuple[list[str], int]] = {}
        self._next_id = 1
        self._logged: set[str] = set()
        self.rejects = rejects or Rejects(parse.VENUE)
        self._m_gap = metrics.BOOK_INCONSISTENCIES.labels(venue=parse.VENUE, reason="sequence_gap")
        self._m_resync = metrics.BOOK_RESYNCS.labels(venue=parse.VENUE)

    # -- commands --------------------------------------------------------------

    def _id(self) -> int:
        n = self._next_id
        self._next_id += 1
        return n

    def subscribe_frames(self, tickers: Sequence[str]) -> list[str]:
        """One ``subscribe`` for all channels of ``tickers``; the acks map ids to sids."""
        if not tickers or not self.channels:
            return []
        self._tickers.update(tickers)
        cmd_id = self._id()
        if len(self._pending) >= _PENDING_MAX:
            # Commands of a dropped connection are never acked; forget the oldest.
            self._pending.pop(next(iter(self._pending)))
        self._pending[cmd_id] = (list(tickers), len(self.channels))
        cmd = {
            "id": cmd_id,
            "cmd": "subscribe",
            "params": {"channels": self.channels, "market_tickers": list(tickers)},
        }
        return [msgspec.json.encode(cmd).decode()]

    def unsubscribe_frames(self, tickers: Sequence[str]) -> list[str]:
        """Remove ``tickers`` from the sids holding them; a sid left empty is unsubscribed."""
        gone = set(tickers)
        self._tickers -= gone
        for ticker in gone:
            self._quotes.pop(ticker, None)
        frames: list[str] = []
        for sids in self._sids.values():
            for sid, state in list(sids.items()):
                hit = state.tickers & gone
                if not hit:
                    continue
                if hit == state.tickers:
                    cmd: dict[str, object] = {
                        "id": self._id(),
                        "cmd": "unsubscribe",
                        "params": {"sids": [sid]},
                    }
                else:
                    cmd = {
                        "id": self._id(),
                        "cmd": "update_subscription",
                        "params": {
                            "sids": [sid],
                            "market_tickers": sorted(hit),
                            "action": "delete_markets",
                        },
                    }
                state.tickers -= hit
                state.awaiting -= hit
                frames.append(msgspec.json.encode(cmd).decode())
        for ticker in gone:
            self.books.drop(ticker)
        for incident in self._incidents:
            incident.awaiting -= gone  # closed at the next snapshot if nothing is left
        return frames

    def _snapshot_request(self, sid: int, ticker: str | None = None) -> str:
        params: dict[str, object] = {"sids": [sid], "action": "get_snapshot"}
        if ticker is not None:
            params["market_tickers"] = [ticker]
        cmd = {"id": self._id(), "cmd": "update_subscription", "params": params}
        return msgspec.json.encode(cmd).decode()

    # -- input -----------------------------------------------------------------

    def on_unsubscribed(self, instruments: Sequence[str]) -> Output:
        """The unsubscribe frames already dropped the books; nothing left to say."""
        return NOTHING

    def on_reconnected(self, conn: int, ts_recv: int) -> Output:
        """The connection was replaced: its sids are void and its books must resnapshot.

        The window itself is the pump's disconnect gap; open incidents of the
        old sids stay open until their markets' new snapshots arrive.
        """
        events: list[Event] = []
        for state in self._sids.pop(conn, {}).values():
            if state.channel != "orderbook_delta":
                continue
            for ticker in sorted(state.tickers):
                book = self.books.get(ticker)
                book.state = SyncState.RESYNCING
                events.append(self._state_event(ticker, ts_recv, "resyncing", "reconnect"))
        return Output(events, [])

    def resync(self, instrument: str, ts_recv: int) -> Output:
        """A liveness check doubts one book: ``get_snapshot`` for it alone, on its sid.

        Its deltas are dropped until the snapshot lands; the sid's sequence
        keeps being checked, so the other markets of the sid are not disturbed.
        """
        for conn, sids in self._sids.items():
            for sid, state in sids.items():
                if state.channel != "orderbook_delta" or instrument not in state.tickers:
                    continue
                state.awaiting.add(instrument)
                self.books.get(instrument).state = SyncState.RESYNCING
                self.resyncs += 1
                self.snapshot_requests += 1
                self._m_resync.inc()
                event = self._state_event(instrument, ts_recv, "resyncing", "liveness")
                return Output([event], [Send(conn, self._snapshot_request(sid, instrument))])
        return NOTHING

    def book(self, instrument: str) -> OrderBook | None:
        return self.books.find(instrument)

    def on_frames(self, frames: Sequence[Frame]) -> Output:
        """A batch of frames, in arrival order: the events to publish and the frames to send."""
        events: list[Event] = []
        commands: list[Command] = []
        rejects = self.rejects
        for frame in frames:
            conn, ts_recv = frame.conn, frame.ts_recv
            for item in parse.parse_frame(frame.data, ts_recv, rejects):
                if isinstance(item, parse.BookChange):
                    more, cmds = self._delta(item, ts_recv, conn)
                elif isinstance(item, parse.TradeSequence):
                    events += self._trade_sequence(item, ts_recv, conn)
                    continue
                elif isinstance(item, parse.Snapshot):
                    more, cmds = self._snapshot(item, ts_recv, conn)
                elif isinstance(item, parse.Refused):
                    more, cmds = self._refused(item, ts_recv, conn)
                elif isinstance(item, p.WsSubscribed):
                    self._subscribed(item, conn)
                    continue
                elif isinstance(item, p.WsUnsubscribed):
                    self._sids.get(conn, {}).pop(item.sid, None)
                    continue
                elif isinstance(item, p.WsError):
                    more, cmds = self._error(item, ts_recv, conn)
                elif isinstance(item, p.WsOk):
                    continue
                elif isinstance(item, parse.QuoteChange):
                    quote = self._quote(item, ts_recv)
                    if quote is not None:
                        events.append(quote)
                    continue
                elif isinstance(item, MarketStatusChange):
                    if item.instrument in self._tickers:
                        events.append(item)
                    continue
                else:
                    events.append(item)
                    continue
                events += more
                commands += cmds
        return Output(events, commands)

    # -- handlers ----------------------------------------------------------------

    def _quote(self, change: parse.QuoteChange, ts_recv: int) -> TopOfBook | None:
        """A ``ticker_v2`` delta merged into the market's quote: the whole top of book again.

        None until both sides have been heard of at least once: a side the venue has
        not told us about yet is unknown, and publishing it as "no quote" would be a lie.
        """
        old = self._quotes.get(change.instrument, (None, None, None, None))
        bid_price = change.bid_price if change.bid_price is not None else old[0]
        bid_size = change.bid_size if change.bid_size is not None else old[1]
        ask_price = change.ask_price if change.ask_price is not None else old[2]
        ask_size = change.ask_size if change.ask_size is not None else old[3]
        self._quotes[change.instrument] = (bid_price, bid_size, ask_price, ask_size)
        if bid_price is None or ask_price is None:
            return None
        bid_price, bid_size = parse.quote_side(bid_price, bid_size, parse.NO_BID)
        ask_price, ask_size = parse.quote_side(ask_price, ask_size, parse.NO_ASK)
        return TopOfBook(
            venue=parse.VENUE,
            instrument=change.instrument,
            ts_venue=change.ts_venue,
            ts_recv=ts_recv,
            bid_price=bid_price,
            bid_size=bid_size,
            ask_price=ask_price,
            ask_size=ask_size,
        )

    def _subscribed(self, msg: p.WsSubscribed, conn: int) -> None:
        tickers: list[str] = []
        if msg.id is not None and msg.id in self._pending:
            tickers, remaining = self._pending[msg.id]
            if remaining <= 1:
                del self._pending[msg.id]
            else:
                self._pending[msg.id] = (tickers, remaining - 1)
        state = _Sid(msg.msg.channel, set(tickers))
        if state.channel == "orderbook_delta":
            state.awaiting = set(tickers)
        self._sids.setdefault(conn, {})[msg.msg.sid] = state

    def _error(self, msg: p.WsError, ts_recv: int, conn: int) -> _Out:
        code = msg.msg.code
        if msg.id is not None and msg.id in self._pending:
            tickers, remaining = self._pending[msg.id]
            if remaining <= 1:
                del self._pending[msg.id]
            else:
                self._pending[msg.id] = (tickers, remaining - 1)
        key = f"error:{code}"
        if key not in self._logged:
            self._logged.add(key)
            _log.warning("kalshi websocket error", code=code, message=msg.msg.msg, id=msg.id)
        metrics.INGESTION_ERRORS.labels(venue=parse.VENUE, kind=f"ws_error_{code}").inc()
        if code not in _TERMINAL_ERRORS:
            return [], []
        # Terminal for the channel: every book on this connection is suspect; resnapshot them.
        events: list[Event] = []
        commands: list[Send] = []
        for sid, state in self._sids.get(conn, {}).items():
            if state.channel == "orderbook_delta" and state.tickers:
                more, cmds = self._gap(
                    state, sid, conn, ts_recv, Inconsistency.GAP, f"terminal error {code}"
                )
                events += more
                commands += cmds
        return events, commands

    def _snapshot(self, item: parse.Snapshot, ts_recv: int, conn: int) -> _Out:
        state = self._sids.get(conn, {}).get(item.sid)
        if state is None:
            self._reject("unknown_sid", str(item.sid))
            return [], []
        snap = item.book
        state.last_seq = snap.sequence  # a snapshot resets the sid's baseline
        ticker = snap.instrument
        book = self.books.get(ticker)
        state.awaiting.discard(ticker)
        problem = book.load_snapshot(snap)
        if problem is not None:
            # Never published: a snapshot the book refuses is not the venue's book.
            return self._gap(state, item.sid, conn, ts_recv, problem, f"{ticker} snapshot")
        events: list[Event] = [snap, self._state_event(ticker, ts_recv, "live", "snapshot")]
        if not state.awaiting:
            state.incident = None
        events.extend(self._healed_by(ticker, ts_recv))
        return events, []

    def _healed_by(self, ticker: str, ts_recv: int) -> list[Event]:
        """A fresh snapshot of ``ticker``: close every incident it was the last one missing."""
        healed: list[Event] = []
        for incident in list(self._incidents):
            incident.awaiting.discard(ticker)
            if not incident.awaiting:
                self._incidents.remove(incident)
                gap = incident.gap
                healed.append(
                    msgspec.structs.replace(gap, end=ts_recv, ts_recv=ts_recv, healed=True)
                )
        return healed

    def _trade_sequence(self, item: parse.TradeSequence, ts_recv: int, conn: int) -> list[Event]:
        """A jump in a trade sid's ``seq`` means trades we never got: a gap for the back-fill."""
        state = self._sids.get(conn, {}).get(item.sid)
        if state is None:
            return []
        last, since = state.last_seq, state.last_trade_ns
        state.last_trade_ns = ts_recv
        if last is not None and item.seq <= last:
            return []  # a replay or a late frame: the pipeline's dedup decides
        state.last_seq = item.seq
        if last is None or item.seq == last + 1:
            return []
        self.gaps += 1
        self._m_gap.inc()
        tickers = state.tickers | {item.instrument}
        return [
            DataGap(
                venue=parse.VENUE,
                instrument=f"conn:{conn}/sid:{item.sid}",
                ts_venue=0,
                ts_recv=ts_recv,
                cause="missed_trades",
                start=since,
                end=ts_recv,
                detail=f"trade sid {item.sid}: expected seq {last + 1}, got {item.seq}",
                instruments=tuple(sorted(tickers)),
            )
        ]

    def _refused(self, item: parse.Refused, ts_recv: int, conn: int) -> _Out:
        """A book message of the sid was refused at the boundary: its books missed it."""
        state = self._sids.get(conn, {}).get(item.sid)
        if state is None:
            self._reject("unknown_sid", str(item.sid))
            return [], []
        if state.last_seq is not None and item.seq <= state.last_seq:
            return [], []  # a duplicate of what was applied already
        detail = f"sid {item.sid}: seq {item.seq} refused ({item.reason.value})"
        return self._gap(state, item.sid, conn, ts_recv, item.reason, detail)

    def _delta(self, change: parse.BookChange, ts_recv: int, conn: int) -> _Out:
        state = self._sids.get(conn, {}).get(change.sid)
        if state is None:
            self._reject("unknown_sid", str(change.sid))
            return [], []
        seq = change.seq
        last = state.last_seq
        if last is None:
            return [], []  # waiting for the first snapshot of a (re)sync
        if seq <= last:
            return [], []  # a duplicate or a replay: already applied
        if seq != last + 1:
            detail = f"sid {change.sid}: expected seq {last + 1}, got {seq}"
            return self._gap(state, change.sid, conn, ts_recv, Inconsistency.GAP, detail)
        state.last_seq = seq
        ticker = change.instrument
        if ticker in state.awaiting:
            return [], []
        book = self.books.get(ticker)
        if book.state is not SyncState.LIVE:
            return [], []
        size = book.add(change.side, change.price, change.change)
        if isinstance(size, Inconsistency):
            return self._gap(state, change.sid, conn, ts_recv, size, f"{ticker} {change}")
        if book.is_crossed():
            book.invalidate(Inconsistency.CROSSED)
            return self._gap(state, change.sid, conn, ts_recv, Inconsistency.CROSSED, ticker)
        previous = book.sequence
        book.sequence = seq
        book.ts_venue = change.ts_venue
        book.ts_recv = ts_recv
        level = [BookLevel(change.price, size)]
        delta = BookDelta(
            venue=parse.VENUE,
            instrument=ticker,
            ts_venue=change.ts_venue,
            ts_recv=ts_recv,
            bids=level if change.side == "bid" else [],
            asks=level if change.side == "ask" else [],
            sequence=seq,
            first_sequence=previous + 1 if previous is not None else seq,
        )
        return [delta], []

    def _gap(
        self,
        state: _Sid,
        sid: int,
        conn: int,
        ts_recv: int,
        reason: Inconsistency,
        detail: str,
    ) -> _Out:
        """Invalidate every book of the sid and ask for its snapshots (the documented cure)."""
        self.gaps += 1
        self.resyncs += 1
        if reason is Inconsistency.GAP:
            self._m_gap.inc()
        else:
            metrics.BOOK_INCONSISTENCIES.labels(venue=parse.VENUE, reason=reason.value).inc()
        self._m_resync.inc()
        state.last_seq = None
        state.awaiting = set(state.tickers)
        events: list[Event] = []
        if state.incident is None and state.tickers:
            gap = DataGap(
                venue=parse.VENUE,
                instrument=f"conn:{conn}/sid:{sid}",
                ts_venue=0,
                ts_recv=ts_recv,
                cause="sequence_gap" if reason is Inconsistency.GAP else "book_inconsistency",
                start=ts_recv,
                detail=detail,
                instruments=tuple(sorted(state.tickers)),
            )
            state.incident = _Incident(gap, set(state.tickers))
            self._incidents.append(state.incident)
            events.append(gap)
        for ticker in sorted(state.tickers):
            self.books.get(ticker).invalidate(reason)
            events.append(self._state_event(ticker, ts_recv, "resyncing", reason.value))
        self.snapshot_requests += 1
        return events, [Send(conn, self._snapshot_request(sid))]

    @staticmethod
    def _state_event(ticker: str, ts_recv: int, state: str, reason: str) -> BookState:
        return BookState(
            venue=parse.VENUE,
            instrument=ticker,
            ts_venue=0,
            ts_recv=ts_recv,
            state=state,
            reason=reason,
        )

    def _reject(self, reason: str, detail: str) -> None:
        self.rejects.reject(reason, detail)
