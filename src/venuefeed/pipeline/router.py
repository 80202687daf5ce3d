"""The pipeline: every event from every venue passes through :meth:`Pipeline.process`.

Order of stages for a trade: dedup (a replayed trade stops here), G5 price
divergence against the book mid (flagged, kept), G1 staleness (stored, not
published live), whale detection, then the sink writer and the live hub.
A price event without size goes through G3. Book events drive the book
persistence policy: a top-N snapshot is stored when the venue (re)sends a
snapshot and, for changes, at most once per ``book_persist_interval`` per
instrument -- with a trailing flush (:meth:`flush_books`) so the last state
before a quiet spell is stored too.

Each call returns a :class:`ProcessResult` that says what happened; the
counters behind status and metrics are derived from those outcomes.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
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
from venuefeed.pipeline.dedup import RecentKeys
from venuefeed.pipeline.live import LiveHub
from venuefeed.pipeline.quality import DivergenceCheck, RecentTrades, SizeBackfill, StaleFilter
from venuefeed.pipeline.whales import TitleLookup, WhaleWatch, format_whale_trade
from venuefeed.pipeline.writer import SinkWriter
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
        self._persist_ns = int(settings.ingestion.book_persist_interval_seconds * 1e9)
        self._store_deltas = settings.ingestion.store_book_deltas
        self._last_persist: dict[tuple[str, str], int] = {}
        self._dirty: set[tuple[str, str]] = set()
        self.book_states: dict[tuple[str, str], str] = {}
        self.last_event_ns: dict[str, int] = {}
        self.outcomes: Counter[str] = Counter()
        self._event_counters: dict[tuple[str, str, str], Any] = {}
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

    async def _store(self, record: Event | Market) -> None:
        if not self.writer.offer(record):
            await self.writer.put(record)

    # -- the entry point ---------------------------------------------------

    async def process(self, event: Event | Market, *, live: bool = True) -> ProcessResult:
        """Run one event through the stages. ``live=False`` for backfilled history."""
        if isinstance(event, Market):
            await self._store(event)
            return _STORED_LIVE
        venue = event.venue
        self.last_event_ns[venue] = event.ts_recv
        kind = type(event)
        if kind is BookDelta:
            result = await self._book_delta(event)  # type: ignore[arg-type]
        elif kind is Trade:
            result = await self._trade(event, live)  # type: ignore[arg-type]
        elif kind is BookSnapshot:
            result = await self._book_snapshot(event, live)  # type: ignore[arg-type]
        elif kind is PriceUpdate:
            result = await self._price_update(event)  # type: ignore[arg-type]
        elif kind is BookState:
            state: BookState = event  # type: ignore[assignment]
            self.book_states[(venue, state.instrument)] = state.state
            result = _NOT_STORED_LIVE
        elif kind is DataGap:
            gap: DataGap = event  # type: ignore[assignment]
            DATA_GAPS.labels(venue, gap.cause).inc()
            self.stats.add("gaps")
            await self._store(gap)
            result = _STORED_LIVE
        else:  # quotes, candles, status changes: the stores' keys make them idempotent
            await self._store(event)
            result = _STORED_LIVE
        if result.live and live and kind is not Trade and kind is not PriceUpdate:
            self.hub.publish(event)  # trades and price updates publish their amended form
        return self._count(event, result)

    def _count(self, event: Event, result: ProcessResult) -> ProcessResult:
        outcome = result.reason or ("stored" if result.stored else "accepted")
        self.outcomes[outcome] += 1
        key = (event.venue, type(event).__name__, outcome)
        counter = self._event_counters.get(key)
        if counter is None:  # labels() costs a lock and a dict build: once per key
            counter = self._event_counters[key] = PIPELINE_EVENTS.labels(*key)
        counter.inc()
        self.stats.add("events")
        return result

    # -- stages --------------------------------------------------------------

    async def _trade(self, trade: Trade, live: bool) -> ProcessResult:
        if self._seen.seen((trade.venue, trade.instrument, trade.trade_id)):
            return _DUPLICATE
        checks: list[str] = []
        ok, _reference, _reason = self.g5.check(trade)
        if not ok:
            checks.append("g5_divergence")
            QUALITY_CHECKS.labels(trade.venue, "g5_flagged").inc()
            self.stats.add("g5_flagged")
            trade = msgspec.structs.replace(trade, flags=(*trade.flags, "price_divergence"))
        is_live = live
        if live and self.g1.is_stale(trade):
            checks.append("g1_stale")
            QUALITY_CHECKS.labels(trade.venue, "g1_stale").inc()
            self.stats.add("g1_stale")
            is_live = False
        elif live and trade.ts_venue:
            self.stats.observe("trade_age", (trade.ts_recv - trade.ts_venue) / 1e9)
        self.recent_trades.add(trade)
        await self._store(trade)
        TRADES_INGESTED.labels(trade.venue).inc()
        self.stats.add("trades")
        if is_live:
            self.hub.publish(trade)
        whale = self.whales.inspect(trade)
        if whale is not None:
            await self._whale(whale, is_live)
        return ProcessResult(True, True, is_live, "stale" if not is_live else "", tuple(checks))

    async def _whale(self, whale: WhaleTrade, live: bool) -> None:
        await self._store(whale)
        self.stats.add("whale_trades")
        if live:
            self.hub.publish(whale)
            if self._echo is not None:
                title = self._title_of(whale.venue, whale.market_id, whale.instrument)
                self._echo(format_whale_trade(whale, title))

    async def _price_update(self, update: PriceUpdate) -> ProcessResult:
        checks: tuple[str, ...] = ()
        if update.size is None:
            size = self.g3.fill(update)
            if size is not None:
                update = msgspec.structs.replace(update, size=size)
                checks = ("g3_backfilled",)
                QUALITY_CHECKS.labels(update.venue, "g3_backfilled").inc()
                self.stats.add("g3_backfilled")
            else:
                checks = ("g3_missing",)
                QUALITY_CHECKS.labels(update.venue, "g3_missing").inc()
                self.stats.add("g3_missing")
        key = (update.venue, update.instrument, update.ts_venue, update.source, update.price)
        if self._seen.seen(key):
            return _DUPLICATE
        await self._store(update)
        self.stats.add("price_updates")
        self.hub.publish(update)
        return ProcessResult(True, True, True, "", checks)

    async def _book_snapshot(self, snap: BookSnapshot, live: bool) -> ProcessResult:
        # A snapshot from the venue's stream (first one, or a resync) is stored at
        # once from the stream's book; a REST snapshot (live=False) as it is.
        if live:
            await self._persist(snap.venue, snap.instrument, snap, snap.ts_recv)
        else:
            await self._store(_top(snap, self._depth))
        self.stats.add("book_updates")
        return _STORED_LIVE

    async def _book_delta(self, delta: BookDelta) -> ProcessResult:
        if self._store_deltas:
            await self._store(delta)
        key = (delta.venue, delta.instrument)
        self.stats.add("book_updates")
        if delta.ts_recv - self._last_persist.get(key, 0) >= self._persist_ns:
            await self._persist(delta.venue, delta.instrument, None, delta.ts_recv)
        else:
            self._dirty.add(key)
        return ProcessResult(True, self._store_deltas, True)

    async def _persist(
        self, venue: str, instrument: str, fallback: BookSnapshot | None, now: int
    ) -> None:
        key = (venue, instrument)
        book = self._book_of(venue, instrument)
        if book is not None and book.depth() != (0, 0):
            snap = book.snapshot(self._depth)
        elif fallback is not None:
            snap = _top(fallback, self._depth)
        else:
            return
        self._last_persist[key] = now
        self._dirty.discard(key)
        await self._store(snap)

    async def flush_books(self, force: bool = False) -> int:
        """Store books changed since their last stored snapshot (the trailing edge)."""
        now = time.time_ns()
        flushed = 0
        for key in list(self._dirty):
            if force or now - self._last_persist.get(key, 0) >= self._persist_ns:
                await self._persist(key[0], key[1], None, now)
                flushed += 1
        return flushed


def _top(snap: BookSnapshot, depth: int) -> BookSnapshot:
    """The snapshot cut to ``depth`` non-empty levels, best-first, canonical text."""

    def levels(side: list[BookLevel], best_high: bool) -> list[BookLevel]:
        live = [lv for lv in side if exact.to_decimal(lv.size) != 0]
        live.sort(key=lambda lv: exact.to_decimal(lv.price), reverse=best_high)
        return [BookLevel(exact.canon(lv.price), exact.canon(lv.size)) for lv in live[:depth]]

    return msgspec.structs.replace(
        snap, bids=levels(snap.bids, True), asks=levels(snap.asks, False)
    )
