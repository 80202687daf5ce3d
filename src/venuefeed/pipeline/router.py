"""The pipeline: every event from every venue passes through :meth:`Pipeline.process`
(one event) or :meth:`Pipeline.process_batch` (a stream's batch, the hot path).

Order of stages for a trade: dedup (a replayed trade stops here), G5 price
divergence against the book mid (flagged, kept), G1 staleness (stored, not
published live), whale detection, then the sink writer and the live hub.
A price event without size goes through G3. Book events drive the book
persistence policy (:class:`~venuefeed.pipeline.cadence.PersistCadence`): a
top-N snapshot is stored when the venue (re)sends a snapshot and, for
changes, once per instrument per jittered ``book_persist_interval`` -- with a
trailing flush (:meth:`flush_books`) so the last state before a quiet spell is
stored too.

Stages are plain functions, one per event type (book changes, the most
frequent, are written out in :meth:`Pipeline.process_batch`'s loop), that
append what is to be stored to the batch's list, what is to be shown to the
batch's live list, and count into this second's rolling counters; the
hand-over to the writer and the live hub happen once per batch ("flow in batches": bookkeeping per
batch). Each event adds one to its ``pipeline_events_total`` sample, a plain
int that ``/metrics`` reads when scraped (:class:`~venuefeed.metrics.PlainCounter`).
:meth:`process` returns a :class:`ProcessResult` that says what happened; the
common outcomes are shared constants, so the hot path allocates none.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import msgspec

from venuefeed import exact
from venuefeed.book import OrderBook
from venuefeed.config import Settings
from venuefeed.log import get_logger
from venuefeed.metrics import DATA_GAPS, PIPELINE_EVENTS, QUALITY_CHECKS, TRADES_INGESTED
from venuefeed.models import (
    BookDelta,
    BookLevel,
    BookSnapshot,
    BookState,
    DataGap,
    Event,
    Market,
    PriceUpdate,
    Trade,
    WhaleTrade,
)
from venuefeed.pipeline.cadence import PersistCadence
from venuefeed.pipeline.dedup import RecentKeys
from venuefeed.pipeline.live import LiveHub
from venuefeed.pipeline.quality import DivergenceCheck, RecentTrades, SizeBackfill, StaleFilter
from venuefeed.pipeline.whales import TitleLookup, WhaleWatch, format_whale_trade
from venuefeed.pipeline.writer import SinkWriter
from venuefeed.sinks.base import Record
from venuefeed.stats import RollingCounters

__all__ = ["Pipeline", "ProcessResult"]

log = get_logger("venuefeed.pipeline")

BookLookup = Callable[[str, str], OrderBook | None]


@dataclass(frozen=True, slots=True)
class ProcessResult:
    """What the pipeline did with one event."""

    accepted: bool
    stored: bool
    live: bool
    reason: str = ""
    checks: tuple[str, ...] = ()
    outcome: str = field(init=False)
    """The ``outcome`` label it is counted under: the reason, else stored or accepted."""

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "outcome", self.reason or ("stored" if self.stored else "accepted")
        )


_DUPLICATE = ProcessResult(False, False, False, "duplicate")
_STORED_LIVE = ProcessResult(True, True, True)
_NOT_STORED_LIVE = ProcessResult(True, False, True)
_STALE = ProcessResult(True, True, False, "stale")

Tally = defaultdict[str, int]
"""This second's rolling counters (:meth:`RollingCounters.current`): stages add to it directly."""
Stage = Callable[[Event, bool, list[Record], list[Event], Tally], ProcessResult]
"""``stage(event, live, out, shown, tally)``: records to store go to ``out``, events for the
live hub to ``shown`` (published in order once the batch is through)."""

_EVENTS = PIPELINE_EVENTS.counts
_TRADES = TRADES_INGESTED.counts


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        writer: SinkWriter,
        *,
        book_of: BookLookup | None = None,
        hub: LiveHub | None = None,
        stats: RollingCounters | None = None,
        whales: WhaleWatch | None = None,
        echo: Callable[[str], None] | None = None,
    ) -> None:
        quality = settings.quality
        self.settings = settings
        self.writer = writer
        self.hub = hub or LiveHub()
        self.stats = stats or RollingCounters()
        self._book_of: BookLookup = book_of or (lambda _v, _i: None)
        self.recent_trades = RecentTrades()
        self.g1 = StaleFilter(quality.max_trade_age_seconds)
        self.g3 = SizeBackfill(
            self.recent_trades,
            quality.size_backfill_tolerance,
            quality.size_backfill_max_age_seconds,
        )
        self.g5 = DivergenceCheck(self._book, quality.price_deviation_max)
        self.whales = whales or WhaleWatch(settings.whales.notional_threshold)
        # as long as a venue may send a record again: a polling pass re-reads this far back
        self._seen = RecentKeys(
            horizon_seconds=quality.max_trade_age_seconds
            + settings.ingestion.snapshot_interval_seconds
        )
        self._depth = settings.ingestion.book_depth
        self.cadence = PersistCadence(
            settings.ingestion.book_persist_interval_seconds,
            settings.ingestion.book_persist_jitter,
        )
        self._next_due = self.cadence.next_due
        self._store_deltas = settings.ingestion.store_book_deltas
        self._delta_result = _STORED_LIVE if self._store_deltas else _NOT_STORED_LIVE
        self._dirty: set[tuple[str, str]] = set()
        self.book_states: dict[tuple[str, str], str] = {}
        self.last_event_ns: dict[str, int] = {}
        self.outcomes: defaultdict[str, int] = defaultdict(int)
        """Events by outcome label (stored, accepted, duplicate, stale), for status views."""
        self._echo = echo
        self._title_of: TitleLookup = lambda _v, _m, _i: None
        # What each event type goes through: book changes in process_batch's loop, these
        # here, any other type is stored as it is (_keep).
        stages: dict[type, Callable[..., ProcessResult]] = {
            Trade: self._trade,
            BookSnapshot: self._book_snapshot,
            PriceUpdate: self._price_update,
            BookState: self._book_state,
            DataGap: self._gap,
        }
        self._stages: dict[type, Stage] = stages

    def forget_seen(self) -> None:
        """Let every event through once more, even one seen a moment ago.

        A cluster worker calls this when it takes a shard: trades it saw while
        it had lost that shard's lease were never published, and the back-fill
        that follows must not be stopped here as repeats. Real repeats that
        pass are absorbed downstream (message ids, natural keys).
        """
        self._seen = RecentKeys(horizon_seconds=self._seen.horizon)

    def set_book_lookup(self, book_of: BookLookup) -> None:
        self._book_of = book_of

    def set_title_lookup(self, title_of: TitleLookup) -> None:
        """Where market titles come from (the service's discovered markets), for the console."""
        self._title_of = title_of

    def _book(self, venue: str, instrument: str) -> OrderBook | None:
        return self._book_of(venue, instrument)

    async def _store_all(self, out: list[Record]) -> None:
        """Records to the writer (waits only when its queue is full)."""
        if out and not self.writer.offer_many(out):
            await self.writer.put_many(out)

    # -- the entry points --------------------------------------------------

    async def process(self, event: Event | Market, *, live: bool = True) -> ProcessResult:
        """Run one event through the stages. ``live=False`` for backfilled history."""
        if isinstance(event, Market):
            await self._store_all([event])
            return _STORED_LIVE
        result = await self.process_batch((event,), live=live)
        assert result is not None  # a batch of one event has a last result
        return result

    async def process_batch(
        self, events: Sequence[Event], *, live: bool = True
    ) -> ProcessResult | None:
        """Run a stream's batch through the stages ("flow in batches"); the last event's result.

        Event by event and in order; what is per batch instead of per event:
        one hand-over to the writer and to the live hub, one clock read for
        the rolling counters. This loop runs for every event of every venue,
        so the per-event counts (plain dict updates) and the stage of the most
        frequent event, a book change, are written out here.
        """
        if not events:
            return None
        out: list[Record] = []
        shown: list[Event] = []
        tally = self.stats.current()
        stages, keep = self._stages, self._keep
        counts, outcomes, last_ns = _EVENTS, self.outcomes, self.last_event_ns
        next_due, dirty, store_deltas = self._next_due, self._dirty, self._store_deltas
        result = delta_result = self._delta_result
        for event in events:
            kind = type(event)
            venue = event.venue
            if kind is BookDelta:
                # Book changes: the top-N snapshot is stored when the cadence says it is due;
                # otherwise the book is marked for the trailing flush (flush_books).
                if store_deltas:
                    out.append(event)
                tally["book_updates"] += 1
                book_key = (venue, event.instrument)
                if event.ts_recv >= next_due.get(book_key, 0):
                    self._persist(venue, event.instrument, None, event.ts_recv, out)
                else:
                    dirty.add(book_key)
                if live:
                    shown.append(event)
                result = delta_result
            else:
                result = stages.get(kind, keep)(event, live, out, shown, tally)
            outcome = result.outcome
            key = (venue, kind.__name__, outcome)
            counts[key] = counts.get(key, 0) + 1
            outcomes[outcome] += 1
            last_ns[venue] = event.ts_recv
        tally["events"] += len(events)
        if shown:
            self.hub.publish_many(shown)
        if out and not self.writer.offer_many(out):  # _store_all, written out: no coroutine
            await self.writer.put_many(out)
        return result

    # -- stages --------------------------------------------------------------

    def _trade(
        self, trade: Trade, live: bool, out: list[Record], shown: list[Event], tally: Tally
    ) -> ProcessResult:
        venue = trade.venue
        if self._seen.seen((venue, trade.instrument, trade.trade_id)):
            return _DUPLICATE
        checks: tuple[str, ...] = ()
        ok, _reference, _reason = self.g5.check(trade)
        if not ok:
            checks = ("g5_divergence",)
            QUALITY_CHECKS.inc(venue, "g5_flagged")
            tally["g5_flagged"] += 1
            trade = msgspec.structs.replace(trade, flags=(*trade.flags, "price_divergence"))
        is_live = live
        if live and self.g1.is_stale(trade):
            checks = (*checks, "g1_stale")
            QUALITY_CHECKS.inc(venue, "g1_stale")
            tally["g1_stale"] += 1
            is_live = False
        elif live and trade.ts_venue:
            tally["trade_age.count"] += 1
            tally["trade_age.sum_ms"] += (trade.ts_recv - trade.ts_venue) // 1_000_000
        self.recent_trades.add(trade)
        out.append(trade)
        key = (venue,)
        _TRADES[key] = _TRADES.get(key, 0) + 1
        tally["trades"] += 1
        if is_live:
            shown.append(trade)
        whale = self.whales.inspect(trade)
        if whale is not None:
            self._whale(whale, is_live, out, shown, tally)
        if not checks:
            return _STORED_LIVE if is_live else _STALE
        return ProcessResult(True, True, is_live, "" if is_live else "stale", checks)

    def _whale(
        self, whale: WhaleTrade, live: bool, out: list[Record], shown: list[Event], tally: Tally
    ) -> None:
        out.append(whale)
        tally["whale_trades"] += 1
        if live:
            shown.append(whale)
            if self._echo is not None:
                title = self._title_of(whale.venue, whale.market_id, whale.instrument)
                self._echo(format_whale_trade(whale, title))

    def _price_update(
        self, update: PriceUpdate, live: bool, out: list[Record], shown: list[Event], tally: Tally
    ) -> ProcessResult:
        checks: tuple[str, ...] = ()
        if update.size is None:
            size = self.g3.fill(update)
            if size is not None:
                update = msgspec.structs.replace(update, size=size)
                checks = ("g3_backfilled",)
                QUALITY_CHECKS.inc(update.venue, "g3_backfilled")
                tally["g3_backfilled"] += 1
            else:
                checks = ("g3_missing",)
                QUALITY_CHECKS.inc(update.venue, "g3_missing")
                tally["g3_missing"] += 1
        key = (update.venue, update.instrument, update.ts_venue, update.source, update.price)
        if self._seen.seen(key):
            return _DUPLICATE
        out.append(update)
        tally["price_updates"] += 1
        shown.append(update)  # back-filled ones too, as before batching
        return ProcessResult(True, True, True, "", checks) if checks else _STORED_LIVE

    def _book_snapshot(
        self, snap: BookSnapshot, live: bool, out: list[Record], shown: list[Event], tally: Tally
    ) -> ProcessResult:
        # A snapshot from the venue's stream (first one, or a resync) is stored at
        # once from the stream's book; a REST snapshot (live=False) as it is.
        if live:
            self._persist(snap.venue, snap.instrument, snap, snap.ts_recv, out)
            shown.append(snap)
        else:
            out.append(_top(snap, self._depth))
        tally["book_updates"] += 1
        return _STORED_LIVE

    def _book_state(
        self, state: BookState, live: bool, out: list[Record], shown: list[Event], tally: Tally
    ) -> ProcessResult:
        self.book_states[(state.venue, state.instrument)] = state.state
        if live:
            shown.append(state)
        return _NOT_STORED_LIVE

    def _gap(
        self, gap: DataGap, live: bool, out: list[Record], shown: list[Event], tally: Tally
    ) -> ProcessResult:
        DATA_GAPS.labels(gap.venue, gap.cause).inc()
        tally["gaps"] += 1
        return self._keep(gap, live, out, shown, tally)

    def _keep(
        self, event: Event, live: bool, out: list[Record], shown: list[Event], tally: Tally
    ) -> ProcessResult:
        """Quotes, candles, status changes: the stores' keys make them idempotent."""
        out.append(event)
        if live:
            shown.append(event)
        return _STORED_LIVE

    def _persist(
        self,
        venue: str,
        instrument: str,
        fallback: BookSnapshot | None,
        now: int,
        out: list[Record],
    ) -> None:
        """Store the book's top levels (an empty or unknown book: ``fallback``, if any)."""
        book = self._book_of(venue, instrument)
        snap = book.snapshot(self._depth) if book is not None else None
        if snap is None or not (snap.bids or snap.asks):
            if fallback is None:
                return
            snap = _top(fallback, self._depth)
        key = (venue, instrument)
        self.cadence.stored(key, now)
        self._dirty.discard(key)
        out.append(snap)

    async def flush_books(self, force: bool = False, now: int | None = None) -> int:
        """Store books changed since their last stored snapshot and due (the trailing edge).

        ``now`` is the wall clock unless given: a replay passes the recording's clock.
        """
        now = time.time_ns() if now is None else now
        out: list[Record] = []
        due = self.cadence.due
        for key in list(self._dirty):
            if force or due(key, now):
                self._persist(key[0], key[1], None, now, out)
        await self._store_all(out)
        return len(out)


def _top(snap: BookSnapshot, depth: int) -> BookSnapshot:
    """The snapshot cut to ``depth`` non-empty levels, best-first, canonical text."""

    def levels(side: list[BookLevel], best_high: bool) -> list[BookLevel]:
        live = [lv for lv in side if exact.to_decimal(lv.size) != 0]
        live.sort(key=lambda lv: exact.to_decimal(lv.price), reverse=best_high)
        return [BookLevel(exact.canon(lv.price), exact.canon(lv.size)) for lv in live[:depth]]

    return msgspec.structs.replace(
        snap, bids=levels(snap.bids, True), asks=levels(snap.asks, False)
    )
