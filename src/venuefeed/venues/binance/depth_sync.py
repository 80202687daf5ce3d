"""One symbol's local book, kept by Binance's documented diff-depth procedure. No I/O.

The procedure (BSD "How to manage a local order book correctly", spot):

1. Buffer the ``depthUpdate`` events of the stream.
2. Fetch a REST snapshot. If its ``lastUpdateId`` is below the first buffered
   ``U``, it is older than the stream: fetch again.
3. Drop buffered events with ``u <= lastUpdateId``; the first one left must
   bridge the snapshot (``U <= lastUpdateId + 1 <= u``).
4. From then on every event must start right after the previous one
   (``U == previous u + 1``; spot events carry no ``pu``). Anything else is a
   gap: the book is no longer the venue's, so resynchronise from step 1.

The stream owns the I/O: it feeds :meth:`DepthSync.on_delta` with parsed
deltas, fetches a snapshot whenever :attr:`DepthSync.wants_snapshot` turns
true, and hands it to :meth:`DepthSync.on_snapshot`. Both return the
canonical events to emit. Sequence and crossing checks are the shared
:class:`~venuefeed.book.OrderBook`'s; removing a level we do not hold is
normal here (the snapshot is depth-limited), so the book tolerates it.

After a reconnect the book is kept, not discarded: if the new connection's
first event still follows the book's update id, nothing was lost for the
book and it carries on; otherwise it resynchronises, and the old book stays
readable (marked resyncing) until the new snapshot replaces it.
"""

from __future__ import annotations

import enum
from collections import deque
from typing import Final

import msgspec

from venuefeed import metrics
from venuefeed.book import Inconsistency, OrderBook, SyncState
from venuefeed.models import BookDelta, BookSnapshot, BookState, DataGap, Event

__all__ = ["DepthSync", "Phase"]

VENUE: Final = "binance"
STALE_SNAPSHOT: Final = "stale_snapshot"


class Phase(enum.Enum):
    BUFFERING = "buffering"
    """No usable book: buffering events until a snapshot arrives."""
    LIVE = "live"
    RESUMING = "resuming"
    """Reconnected: the next event tells whether the book survived."""


class DepthSync:
    """The diff-depth state machine of one symbol (see the module docstring)."""

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
        """True when the stream should start a snapshot fetch now."""
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
        applied = 0
        while problem is None and buffer:
            delta = buffer.popleft()
            if delta.sequence is not None and delta.sequence <= snap.sequence:
                continue
            problem = book.apply_delta(delta)
            applied += 1
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
