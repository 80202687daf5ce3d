"""The Binance live state, sans-IO: combined-stream frames in, events and snapshot fetches out.

What comes out: trades (``@trade``, or ``@aggTrade`` with the ``trade_stream``
option), quotes (``@bookTicker``), candles (``@kline_<interval>``) as parsed,
and books kept per symbol by :class:`DepthSync`. When a book needs a REST
snapshot the feed answers with ``Fetch("depth", (symbol,))``; the pump runs
it in the background while the socket keeps being read and hands the result
(a :class:`DepthFetched`) back to :meth:`BinanceFeed.on_fetched`, in order
with the frames, so a snapshot and the deltas that follow it never swap
places. Reconnect gaps are the pump's; the books survive a reconnect when the
new connection's first update still follows them.

The diff-depth procedure (BSD "How to manage a local order book correctly", spot):

1. Buffer the ``depthUpdate`` events of the stream.
2. Fetch a REST snapshot. If its ``lastUpdateId`` is below the first buffered
   ``U``, it is older than the stream: fetch again.
3. Drop buffered events with ``u <= lastUpdateId``; the first one left must
   bridge the snapshot (``U <= lastUpdateId + 1 <= u``).
4. From then on every event must start right after the previous one
   (``U == previous u + 1``; spot events carry no ``pu``). Anything else is a
   gap: the book is no longer the venue's, so resynchronise that symbol from
   step 1, with a ``DataGap`` opened when the trouble starts and healed when
   the new snapshot is in ("nothing dies silently").

Sequence and crossing checks are the shared :class:`~venuefeed.book.OrderBook`'s;
removing a level we do not hold is normal here (the snapshot is
depth-limited), so the book tolerates it.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any, Final, NamedTuple

import msgspec

from venuefeed import metrics
from venuefeed.book import Inconsistency, OrderBook, SyncState
from venuefeed.models import BookDelta, BookSnapshot, BookState, DataGap, Event
from venuefeed.transport import Frame
from venuefeed.venues.base import Channel
from venuefeed.venues.binance.options import Options
from venuefeed.venues.binance.parse import VENUE, parse_frame
from venuefeed.venues.feed import NOTHING, Command, Fetch, Output, VenueFeed
from venuefeed.venues.rejects import Rejects

__all__ = ["DEPTH", "BinanceFeed", "DepthFetched", "DepthSync", "Phase"]

DEPTH: Final = "depth"
"""The :class:`~venuefeed.venues.feed.Fetch` kind of a REST depth snapshot."""
STALE_SNAPSHOT: Final = "stale_snapshot"


class DepthFetched(NamedTuple):
    """One symbol's answer to ``Fetch(DEPTH, ...)``: its snapshot, or None when the fetch failed."""

    symbol: str
    snapshot: BookSnapshot | None


class BinanceFeed(VenueFeed):
    """Binance spot's feed for a changing set of symbols (see the module docstring)."""

    venue = VENUE

    def __init__(
        self, channels: frozenset[Channel], options: Options, rejects: Rejects | None = None
    ) -> None:
        super().__init__()
        self.rejects = rejects or Rejects(VENUE)
        self._books_on = "books" in channels
        self._suffixes = _suffixes(channels, options)
        self._symbols: dict[str, None] = {}
        self.syncs: dict[str, DepthSync] = {}

    # -- subscriptions ---------------------------------------------------------------

    def canonical(self, instrument: str) -> str:
        return instrument.upper()

    def subscriptions(self, instruments: Iterable[str]) -> list[str]:
        """Stream names are lower case (``btcusdt@depth@100ms``)."""
        return [f"{s.lower()}@{suffix}" for s in instruments for suffix in self._suffixes]

    def instruments(self, subscriptions: Iterable[str]) -> list[str]:
        return list(dict.fromkeys(s.partition("@")[0].upper() for s in subscriptions))

    def on_subscribed(self, instruments: Sequence[str]) -> Output:
        for symbol in instruments:
            self._symbols[symbol] = None
            if self._books_on:
                self.syncs[symbol] = DepthSync(symbol)
        return NOTHING

    def on_unsubscribed(self, instruments: Sequence[str]) -> Output:
        for symbol in instruments:
            self._symbols.pop(symbol, None)
            self.syncs.pop(symbol, None)
        return NOTHING

    # -- input -----------------------------------------------------------------------

    def on_frames(self, frames: Sequence[Frame]) -> Output:
        events: list[Event] = []
        commands: list[Command] = []
        syncs, symbols, rejects = self.syncs, self._symbols, self.rejects
        for frame in frames:
            for event in parse_frame(frame.data, frame.ts_recv, rejects):
                if type(event) is BookDelta:
                    sync = syncs.get(event.instrument)
                    if sync is None:
                        continue  # unsubscribed while the frame was in flight
                    events += sync.on_delta(event)
                    if sync.wants_snapshot:
                        commands.append(_fetch(sync))
                elif event.instrument in symbols:
                    events.append(event)
        return Output(events, commands)

    def on_reconnected(self, conn: int, ts_recv: int) -> Output:
        """Every book checks the next update against itself. A book on a connection that
        was not replaced loses nothing by it: a following update is applied as before."""
        for sync in self.syncs.values():
            sync.on_reconnect()
        return NOTHING

    def on_fetched(self, what: str, results: Sequence[Any], ts_recv: int) -> Output:
        events: list[Event] = []
        commands: list[Command] = []
        for result in results:
            sync = self.syncs.get(result.symbol)
            if sync is None:
                continue  # unsubscribed meanwhile
            if result.snapshot is None:
                events += sync.snapshot_failed(ts_recv)
            else:
                events += sync.on_snapshot(result.snapshot)
            if sync.wants_snapshot:
                commands.append(_fetch(sync))
        return Output(events, commands)

    def on_fetch_failed(self, what: str, keys: Sequence[str], error: str) -> Output:
        """The fetcher itself failed (it turns HTTP errors into ``DepthFetched(s, None)``);
        the books wait for their next update to ask again, stamped with the newest frame."""
        ts_recv = max(self.counters.last_frame_ns.values(), default=0)
        events: list[Event] = []
        for symbol in keys:
            sync = self.syncs.get(symbol)
            if sync is not None:
                events += sync.snapshot_failed(ts_recv)
        return Output(events, [])

    def resync(self, instrument: str, ts_recv: int) -> Output:
        """A fresh REST snapshot for one symbol; the socket stays as it is."""
        sync = self.syncs.get(instrument)
        if sync is None:
            return NOTHING
        events = sync.restart(ts_recv)
        return Output(events, [_fetch(sync)] if sync.wants_snapshot else [])

    def book(self, instrument: str) -> OrderBook | None:
        sync = self.syncs.get(instrument)
        return sync.book if sync is not None else None


def _fetch(sync: DepthSync) -> Fetch:
    sync.snapshot_started()
    return Fetch(DEPTH, (sync.symbol,))


def _suffixes(channels: frozenset[Channel], options: Options) -> list[str]:
    suffixes = []
    if "books" in channels:
        suffixes.append("depth" if options.depth_speed == "1000ms" else "depth@100ms")
    if "trades" in channels:
        suffixes.append(options.trade_stream)
    if "quotes" in channels:
        suffixes.append("bookTicker")
    if "candles" in channels:
        suffixes.append(f"kline_{options.kline_interval}")
    return suffixes


# -- one symbol's book -------------------------------------------------------------------


class Phase(enum.Enum):
    BUFFERING = "buffering"
    """No usable book: buffering events until a snapshot arrives."""
    LIVE = "live"
    RESUMING = "resuming"
    """Reconnected: the next event tells whether the book survived."""


class DepthSync:
    """The diff-depth state machine of one symbol (steps in the module docstring).

    After a reconnect the book is kept, not discarded: if the new connection's
    first event still follows the book's update id, nothing was lost for the
    book and it carries on; otherwise it resynchronises, and the old book stays
    readable (marked resyncing) until the new snapshot replaces it.
    """

    __slots__ = (
        "_buffer",
        "_gap",
        "book",
        "buffer_dropped",
        "phase",
        "snapshot_in_flight",
        "symbol",
        "wants_snapshot",
    )

    def __init__(self, symbol: str, max_buffer: int = 2000) -> None:
        self.symbol = symbol
        self.book = OrderBook(VENUE, symbol, tolerate_unknown_removals=True)
        self.phase = Phase.BUFFERING
        self._buffer: deque[BookDelta] = deque(maxlen=max_buffer)
        self.buffer_dropped = 0
        """Buffered events pushed out while waiting for a snapshot (a later one will be needed)."""
        self.wants_snapshot = False
        """True when a snapshot fetch should start now."""
        self.snapshot_in_flight = False
        self._gap: DataGap | None = None
        """The open gap of the current resync: stored when it starts, healed when it ends."""

    # -- stream events ----------------------------------------------------------------

    def on_delta(self, delta: BookDelta) -> list[Event]:
        """One ``depthUpdate``; returns the events to emit (the delta itself when live)."""
        phase = self.phase
        if phase is Phase.LIVE:
            book = self.book
            before = book.sequence
            problem = book.apply_delta(delta)
            if problem is None:
                # An unchanged update id means the book ignored it as already covered.
                return [delta] if book.sequence != before else []
            return self._lose(problem, delta)
        if phase is Phase.RESUMING:
            return self._resume(delta)
        self._buffer_delta(delta)
        return []

    def on_reconnect(self) -> None:
        """The connection was replaced: keep the book and see whether the next event follows it."""
        if self.phase is Phase.LIVE:
            self.phase = Phase.RESUMING

    def restart(self, ts_recv: int) -> list[Event]:
        """Resynchronise on request (a liveness check): snapshot again, keep levels meanwhile."""
        metrics.BOOK_RESYNCS.labels(VENUE).inc()
        opened = (
            self._open_gap("resync_requested", ts_recv) if self.phase is not Phase.BUFFERING else []
        )
        self.phase = Phase.BUFFERING
        self._buffer.clear()
        self.book.invalidate(Inconsistency.NO_SNAPSHOT)
        self.wants_snapshot = not self.snapshot_in_flight
        return [*opened, self._state(SyncState.RESYNCING, "resync_requested", ts_recv)]

    def _open_gap(self, cause: str, ts_recv: int) -> list[Event]:
        """Open the ledger entry of this resync (once, however many problems follow)."""
        if self._gap is not None:
            return []
        self._gap = DataGap(
            venue=VENUE,
            instrument=self.symbol,
            ts_venue=0,
            ts_recv=ts_recv,
            cause=cause,
            start=self.book.ts_recv or ts_recv,
            detail=f"book resync: {cause}",
        )
        return [self._gap]

    def _resume(self, delta: BookDelta) -> list[Event]:
        book = self.book
        assert book.sequence is not None and delta.sequence is not None
        if delta.sequence <= book.sequence:
            return []  # replayed history
        self.phase = Phase.LIVE
        problem = book.apply_delta(delta)
        if problem is None:
            return [delta]
        return self._lose(problem, delta)

    def _lose(self, problem: Inconsistency, delta: BookDelta) -> list[Event]:
        """The book no longer matches the venue: count it and start over (procedure step 1)."""
        metrics.BOOK_INCONSISTENCIES.labels(VENUE, problem.value).inc()
        metrics.BOOK_RESYNCS.labels(VENUE).inc()
        if problem is not Inconsistency.GAP:
            # A crossed book after applying a delta: this event is already in the book.
            self.book.invalidate(problem)
        opened = self._open_gap(problem.value, delta.ts_recv)
        self.phase = Phase.BUFFERING
        self._buffer.clear()
        if problem is Inconsistency.GAP:
            self._buffer_delta(delta)
        else:
            self.wants_snapshot = not self.snapshot_in_flight
        return [*opened, self._state(SyncState.RESYNCING, problem.value, delta.ts_recv)]

    def _buffer_delta(self, delta: BookDelta) -> None:
        buffer = self._buffer
        if len(buffer) == buffer.maxlen:
            self.buffer_dropped += 1
        buffer.append(delta)
        if not self.snapshot_in_flight:
            self.wants_snapshot = True

    # -- snapshots ------------------------------------------------------------------

    def snapshot_started(self) -> None:
        self.wants_snapshot = False
        self.snapshot_in_flight = True

    def snapshot_failed(self, ts_recv: int) -> list[Event]:
        """The fetch failed (the transport gave up); the next event asks again."""
        self.snapshot_in_flight = False
        return [self._state(SyncState.RESYNCING, "snapshot_failed", ts_recv)]

    def on_snapshot(self, snap: BookSnapshot) -> list[Event]:
        """A REST snapshot arrived: apply it and the buffered events that follow it."""
        self.snapshot_in_flight = False
        if self.phase is not Phase.BUFFERING:
            return []  # the book recovered on its own (resumed after a reconnect)
        buffer = self._buffer
        assert snap.sequence is not None
        if buffer and snap.sequence < (buffer[0].first_sequence or 0):
            metrics.BOOK_INCONSISTENCIES.labels(VENUE, STALE_SNAPSHOT).inc()
            self.wants_snapshot = True
            return []
        book = self.book
        problem = book.load_snapshot(snap)
        while problem is None and buffer:
            delta = buffer.popleft()
            if delta.sequence is not None and delta.sequence <= snap.sequence:
                continue
            problem = book.apply_delta(delta)
        if problem is not None:
            metrics.BOOK_INCONSISTENCIES.labels(VENUE, problem.value).inc()
            metrics.BOOK_RESYNCS.labels(VENUE).inc()
            buffer.clear()
            self.wants_snapshot = True
            return [self._state(SyncState.RESYNCING, problem.value, snap.ts_recv)]
        self.phase = Phase.LIVE
        events: list[Event] = [book.snapshot()]
        events.append(self._state(SyncState.LIVE, "snapshot", snap.ts_recv))
        if self._gap is not None:
            events.append(
                msgspec.structs.replace(
                    self._gap,
                    ts_recv=snap.ts_recv,
                    end=snap.ts_recv,
                    healed=True,
                    detail=f"{self._gap.detail}; resynchronised at update id {book.sequence}",
                )
            )
            self._gap = None
        return events

    def _state(self, state: SyncState, reason: str, ts_recv: int) -> BookState:
        return BookState(
            venue=VENUE,
            instrument=self.symbol,
            ts_venue=0,
            ts_recv=ts_recv,
            state=state.value,
            reason=reason,
        )
