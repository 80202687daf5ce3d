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

Stages are plain functions that append what is to be stored to the batch's
list and count into the batch's tally; the hand-over to the writer, the
metrics and the rolling counters happen once per batch ("flow in batches":
bookkeeping per batch). :meth:`process` returns a :class:`ProcessResult` that
says what happened; the common outcomes are shared constants, so the hot path
allocates none.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

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


_DUPLICATE = ProcessResult(False, False, False, "duplicate")
_STORED_LIVE = ProcessResult(True, True, True)
_NOT_STORED_LIVE = ProcessResult(True, False, True)
_STALE = ProcessResult(True, True, False, "stale")

Tally = defaultdict[str, int]
"""Rolling-counter increments of one batch, added to :class:`RollingCounters` at its end."""


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
        self._store_deltas = settings.ingestion.store_book_deltas
        self._dirty: set[tuple[str, str]] = set()
        self.book_states: dict[tuple[str, str], str] = {}
        self.last_event_ns: dict[str, int] = {}
        self.outcomes: Counter[str] = Counter()
        self._event_counters: dict[tuple[str, str, str], Any] = {}
        self._trade_counters: dict[str, Any] = {}
        self._quality_counters: dict[tuple[str, str], Any] = {}
        self._echo = echo
        self._title_of: TitleLookup = lambda _v, _m, _i: None

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

    async def _store_all(self, records: list[Record]) -> None:
        if records and not self.writer.offer_many(records):
            await self.writer.put_many(records)

    # -- the entry points --------------------------------------------------

    async def process(self, event: Event | Market, *, live: bool = True) -> ProcessResult:
        """Run one event through the stages. ``live=False`` for backfilled history."""
        out: list[Record] = []
        tally: Tally = defaultdict(int)
        if isinstance(event, Market):
            out.append(event)
            result = _STORED_LIVE
        else:
            self.last_event_ns[event.venue] = event.ts_recv
            result = self._one(event, live, out, tally)
            key = (event.venue, type(event).__name__,
                   result.reason or ("stored" if result.stored else "accepted"))  # fmt: skip
            self._count({key: 1}, 1, tally)
        await self._store_all(out)
        return result

    async def process_batch(self, events: Sequence[Event], *, live: bool = True) -> None:
        """Run a stream's batch through the stages ("flow in batches").

        The same stages as :meth:`process`, event by event and in order; what
        is per batch instead of per event: one hand-over to the writer, one
        clock read for the rolling counters, one increment per metric label.
        """
        if not events:
            return
        out: list[Record] = []
        tally: Tally = defaultdict(int)
        grouped: dict[tuple[str, str, str], int] = {}
        one = self._one
        last_ns = self.last_event_ns
        for event in events:
            result = one(event, live, out, tally)
            venue = event.venue
            key = (venue, type(event).__name__,
                   result.reason or ("stored" if result.stored else "accepted"))  # fmt: skip
            grouped[key] = grouped.get(key, 0) + 1
            last_ns[venue] = event.ts_recv
        self._count(grouped, len(events), tally)
        await self._store_all(out)

    def _one(self, event: Event, live: bool, out: list[Record], tally: Tally) -> ProcessResult:
        kind = type(event)
        if kind is BookDelta:
            result = self._book_delta(event, out, tally)  # type: ignore[arg-type]
        elif kind is Trade:
            result = self._trade(event, live, out, tally)  # type: ignore[arg-type]
        elif kind is BookSnapshot:
            result = self._book_snapshot(event, live, out, tally)  # type: ignore[arg-type]
        elif kind is PriceUpdate:
            result = self._price_update(event, out, tally)  # type: ignore[arg-type]
        elif kind is BookState:
            state: BookState = event  # type: ignore[assignment]
            self.book_states[(state.venue, state.instrument)] = state.state
            result = _NOT_STORED_LIVE
        elif kind is DataGap:
            gap: DataGap = event  # type: ignore[assignment]
            DATA_GAPS.labels(gap.venue, gap.cause).inc()
            tally["gaps"] += 1
            out.append(gap)
            result = _STORED_LIVE
        else:  # quotes, candles, status changes: the stores' keys make them idempotent
            out.append(event)
            result = _STORED_LIVE
        if result.live and live and kind is not Trade and kind is not PriceUpdate:
            self.hub.publish(event)  # trades and price updates publish their amended form
        return result

    def _count(self, grouped: dict[tuple[str, str, str], int], events: int, tally: Tally) -> None:
        """Outcome counters and metrics for a batch: one increment per distinct label set."""
        counters = self._event_counters
        outcomes = self.outcomes
        for key, amount in grouped.items():
            outcomes[key[2]] += amount
            counter = counters.get(key)
            if counter is None:  # labels() costs a lock and a dict build: once per key
                counter = counters[key] = PIPELINE_EVENTS.labels(*key)
            counter.inc(amount)
        tally["events"] += events
        self.stats.add_many(tally)

    def _quality(self, venue: str, check: str) -> Any:
        """The quality-check counter of one label set (``labels()`` once per set)."""
        key = (venue, check)
        counter = self._quality_counters.get(key)
        if counter is None:
            counter = self._quality_counters[key] = QUALITY_CHECKS.labels(venue, check)
        return counter

    # -- stages --------------------------------------------------------------

    def _trade(self, trade: Trade, live: bool, out: list[Record], tally: Tally) -> ProcessResult:
        if self._seen.seen((trade.venue, trade.instrument, trade.trade_id)):
            return _DUPLICATE
        checks: tuple[str, ...] = ()
        ok, _reference, _reason = self.g5.check(trade)
        if not ok:
            checks = ("g5_divergence",)
            self._quality(trade.venue, "g5_flagged").inc()
            tally["g5_flagged"] += 1
            trade = msgspec.structs.replace(trade, flags=(*trade.flags, "price_divergence"))
        is_live = live
        if live and self.g1.is_stale(trade):
            checks = (*checks, "g1_stale")
            self._quality(trade.venue, "g1_stale").inc()
            tally["g1_stale"] += 1
            is_live = False
        elif live and trade.ts_venue:
            tally["trade_age.count"] += 1
            tally["trade_age.sum_ms"] += (trade.ts_recv - trade.ts_venue) // 1_000_000
        self.recent_trades.add(trade)
        out.append(trade)
        counter = self._trade_counters.get(trade.venue)
        if counter is None:
            counter = self._trade_counters[trade.venue] = TRADES_INGESTED.labels(trade.venue)
        counter.inc()
        tally["trades"] += 1
        if is_live:
            self.hub.publish(trade)
        whale = self.whales.inspect(trade)
        if whale is not None:
            self._whale(whale, is_live, out, tally)
        if not checks:
            return _STORED_LIVE if is_live else _STALE
        return ProcessResult(True, True, is_live, "" if is_live else "stale", checks)

    def _whale(self, whale: WhaleTrade, live: bool, out: list[Record], tally: Tally) -> None:
        out.append(whale)
        tally["whale_trades"] += 1
        if live:
            self.hub.publish(whale)
            if self._echo is not None:
                title = self._title_of(whale.venue, whale.market_id, whale.instrument)
                self._echo(format_whale_trade(whale, title))

    def _price_update(self, update: PriceUpdate, out: list[Record], tally: Tally) -> ProcessResult:
        checks: tuple[str, ...] = ()
        if update.size is None:
            size = self.g3.fill(update)
            if size is not None:
                update = msgspec.structs.replace(update, size=size)
                checks = ("g3_backfilled",)
                self._quality(update.venue, "g3_backfilled").inc()
                tally["g3_backfilled"] += 1
            else:
                checks = ("g3_missing",)
                self._quality(update.venue, "g3_missing").inc()
                tally["g3_missing"] += 1
        key = (update.venue, update.instrument, update.ts_venue, update.source, update.price)
        if self._seen.seen(key):
            return _DUPLICATE
        out.append(update)
        tally["price_updates"] += 1
        self.hub.publish(update)
        return ProcessResult(True, True, True, "", checks) if checks else _STORED_LIVE

    def _book_snapshot(
        self, snap: BookSnapshot, live: bool, out: list[Record], tally: Tally
    ) -> ProcessResult:
        # A snapshot from the venue's stream (first one, or a resync) is stored at
        # once from the stream's book; a REST snapshot (live=False) as it is.
        if live:
            self._persist(snap.venue, snap.instrument, snap, snap.ts_recv, out)
        else:
            out.append(_top(snap, self._depth))
        tally["book_updates"] += 1
        return _STORED_LIVE

    def _book_delta(self, delta: BookDelta, out: list[Record], tally: Tally) -> ProcessResult:
        if self._store_deltas:
            out.append(delta)
        key = (delta.venue, delta.instrument)
        tally["book_updates"] += 1
        if self.cadence.due(key, delta.ts_recv):
            self._persist(delta.venue, delta.instrument, None, delta.ts_recv, out)
        else:
            self._dirty.add(key)
        return _STORED_LIVE if self._store_deltas else _NOT_STORED_LIVE

    def _persist(
        self,
        venue: str,
        instrument: str,
        fallback: BookSnapshot | None,
        now: int,
        out: list[Record],
    ) -> None:
        key = (venue, instrument)
        book = self._book_of(venue, instrument)
        if book is not None and book.depth() != (0, 0):
            snap = book.snapshot(self._depth)
        elif fallback is not None:
            snap = _top(fallback, self._depth)
        else:
            return
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
