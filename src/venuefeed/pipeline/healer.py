"""Trade completeness for one venue: its open gaps, healed from the venue's trade history.

Every window in which a venue's trades may be missing is a gap in the ledger
(:class:`~venuefeed.models.DataGap`): a replaced connection (``disconnect``),
the time the service or its stream was not running (``restart``), a skip in a
trade channel's sequence (``missed_trades``). The healer fetches each such
window from the venue's REST trade history -- widened by
``ingestion.gap_margin_seconds`` on both sides, because a frame held back
before a cut is older than the connection's last frame and venue clocks
differ -- runs the trades through the pipeline like any others, and only then
stores the gap as healed. The healed record goes through the same FIFO writer
after those trades, so it can never be durable before them.

A fetch that fails is retried with backoff for as long as it takes (the gap
stays open and shows in status meanwhile). A fetch refused by the venue's
open circuit breaker sent nothing: it is retried when the breaker lets a
probe through, and does not lengthen the backoff -- else the refusals of one
30 s cooldown pushed the next try up to a minute past it, long after the
venue was back. A window the venue's history no longer reaches stays open for
good, with that reason in ``detail``. Book-only gaps (a sequence gap on a book
channel, a checksum mismatch) are healed by the venue feed's resync, not here;
they are only counted.

:meth:`GapHealer.oldest_open` feeds the completeness watermark: data is
complete up to the start of the oldest trade gap still open.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import msgspec

from venuefeed.config import IngestionSettings
from venuefeed.log import get_logger
from venuefeed.models import DataGap
from venuefeed.pipeline.router import Pipeline
from venuefeed.stats import ErrorLog
from venuefeed.transport.backoff import Backoff
from venuefeed.transport.http import CircuitOpenError
from venuefeed.venues.base import HistoryLimit, Unsupported, VenueAdapter

__all__ = ["ALL_INSTRUMENTS", "TRADE_CAUSES", "GapHealer"]

log = get_logger("venuefeed.healer")

TRADE_CAUSES = frozenset({"disconnect", "restart", "missed_trades"})
"""Gaps whose trades the healer back-fills from REST."""
ALL_INSTRUMENTS = "*"
"""Scope of a gap that concerns every instrument the venue has subscribed (a restart)."""
REFUSED_RETRY_MIN = 0.25
"""Seconds before a fetch refused by an open circuit is tried again, at least."""

GapKey = tuple[str, str, int]


@dataclass(eq=False, slots=True)
class _Open:
    gap: DataGap
    attempts: int = 0
    """Failed fetches, refusals by an open circuit included (status: failing)."""
    failures: int = 0
    """Failed fetches that reached the venue: the backoff grows with these."""
    next_try: float = 0.0
    last_error: str | None = None
    live_at: int = 0
    """For a ``restart`` gap: when the stream was first seen live again (its end)."""


class GapHealer:
    """One venue's open gaps and the task that heals the trade windows among them."""

    def __init__(
        self,
        adapter: VenueAdapter,
        pipeline: Pipeline,
        settings: IngestionSettings,
        errors: ErrorLog,
        *,
        instruments: Callable[[], Collection[str]],
        live: Callable[[], bool],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.adapter = adapter
        self.venue = adapter.name
        self.pipeline = pipeline
        self.settings = settings
        self.errors = errors
        self._instruments = instruments
        self._live = live
        self._clock = clock
        self._open: dict[GapKey, _Open] = {}
        self._wake = asyncio.Event()
        self.healed = 0
        self.given_up = 0
        self.trades_fetched = 0

    # -- the ledger ----------------------------------------------------------

    def note(self, gap: DataGap) -> None:
        """A gap was opened, extended or healed (called synchronously as it is seen)."""
        key = (gap.instrument, gap.cause, gap.start)
        if gap.healed:
            self._open.pop(key, None)
            return
        entry = self._open.get(key)
        if entry is None:
            self._open[key] = _Open(gap)
            self._wake.set()
        elif gap.end and not entry.gap.end:
            entry.gap = gap

    def oldest_open(self) -> int | None:
        """Start of the oldest trade gap still open: trades are complete up to there."""
        starts = [k[2] for k, e in self._open.items() if k[1] in TRADE_CAUSES]
        return min(starts) if starts else None

    def view(self) -> dict[str, Any]:
        now = time.time_ns()
        failing = [e for e in self._open.values() if e.attempts >= 3]
        oldest = min((e.gap.start for e in self._open.values()), default=None)
        return {
            "open": len(self._open),
            "open_by_cause": dict(Counter(k[1] for k in self._open)),
            "oldest_open_age_s": round((now - oldest) / 1e9, 1) if oldest else None,
            "failing": len(failing),
            "last_error": failing[-1].last_error if failing else None,
            "healed": self.healed,
            "given_up": self.given_up,
            "trades_fetched": self.trades_fetched,
        }

    # -- healing -------------------------------------------------------------

    async def run(self) -> None:
        """Heal due trade gaps, oldest first, forever (a supervised component)."""
        while True:
            due, wait = self._due()
            if due:
                await self._heal(due)
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=wait)

    def _due(self) -> tuple[list[_Open], float]:
        """Gaps ready to heal now, and how long until the next one may be."""
        now = self._clock()
        wall = time.time_ns()
        delay_ns = int(self.settings.heal_delay_seconds * 1e9)
        due: list[_Open] = []
        wait = 1.0
        for key, entry in sorted(self._open.items(), key=lambda kv: kv[0][2]):
            if key[1] not in TRADE_CAUSES:
                continue
            if entry.next_try > now:
                wait = min(wait, entry.next_try - now)
                continue
            gap = entry.gap
            if gap.cause == "restart":
                if not entry.live_at:
                    if not self._live():
                        continue
                    entry.live_at = wall  # from here on, trades arrive on the stream
                end = entry.live_at
            elif gap.end:
                end = gap.end
            else:
                continue  # still open at the venue side; the end comes with the reconnect
            ready_at = end + delay_ns
            if ready_at > wall:
                wait = min(wait, (ready_at - wall) / 1e9)
                continue
            due.append(entry)
        return due, max(0.05, wait)

    async def _heal(self, entries: list[_Open]) -> None:
        """Heal every due gap with one fetch of the window that covers them all.

        Under a storm of cuts the windows overlap or sit seconds apart, and a
        venue's history request costs the same for a longer window (Polymarket
        pages newest first until it passes the start): one fetch instead of
        one per gap keeps healing ahead of the cuts.
        """
        now = time.time_ns()
        ends = {id(e): e.live_at or e.gap.end or now for e in entries}
        instruments = sorted({i for e in entries for i in self._scope(e.gap)})
        margin = int(self.settings.gap_margin_seconds * 1e9)
        start = min(e.gap.start for e in entries) - margin
        end = max(ends.values()) + margin
        count = 0
        try:
            window = self.adapter.fetch_trade_window(
                instruments, start, end, concurrency=self.settings.max_concurrency
            )
            async for trade in window:
                count += 1
                await self.pipeline.process(trade, live=False)
        except (HistoryLimit, Unsupported) as exc:
            self.trades_fetched += count
            for entry in entries:
                await self._give_up(entry, ends[id(entry)], str(exc) or type(exc).__name__)
            return
        except CircuitOpenError as exc:  # nothing sent: try when a probe may go
            self._retry_later(entries, f"{type(exc).__name__}: {exc}", refused_for=exc.retry_in)
            return
        except Exception as exc:  # the venue or the network: try again later
            self._retry_later(entries, f"{type(exc).__name__}: {exc}")
            return
        self.trades_fetched += count
        for entry in entries:
            gap = entry.gap
            self.healed += 1
            healed = msgspec.structs.replace(
                gap, end=ends[id(entry)], healed=True, ts_recv=time.time_ns(),
                detail=f"{gap.detail or gap.cause}; trades back-filled from REST",
            )  # fmt: skip
            self._open.pop((gap.instrument, gap.cause, gap.start), None)
            await self.pipeline.process(healed)

    def _retry_later(
        self, entries: list[_Open], error: str, *, refused_for: float | None = None
    ) -> None:
        """Schedule the next try: after a backoff, or, for a fetch an open circuit
        refused, when the breaker lets a probe through (``refused_for`` seconds)."""
        delay = 1.0
        for entry in entries:
            entry.attempts += 1
            entry.last_error = error
            if refused_for is not None:
                delay = max(REFUSED_RETRY_MIN, refused_for)
            else:
                entry.failures += 1
                backoff = Backoff(1.0, self.settings.heal_retry_max_seconds)
                for _ in range(entry.failures):
                    delay = backoff.next_delay()
            entry.next_try = self._clock() + delay
        self.errors.add(self.venue, "heal_failed", f"{len(entries)} gap(s): {error}")
        log.warning("gap heal failed; will retry", venue=self.venue, gaps=len(entries),
                    error=error, retry_in=round(delay, 1))  # fmt: skip

    async def _give_up(self, entry: _Open, end: int, reason: str) -> None:
        """The venue cannot give this window back: the gap stays open, and says why."""
        gap = entry.gap
        self.given_up += 1
        self._open.pop((gap.instrument, gap.cause, gap.start), None)
        self.errors.add(self.venue, "gap_unhealable", f"{gap.cause} gap: {reason}")
        log.warning("gap cannot be healed", venue=self.venue, cause=gap.cause, reason=reason)
        record = msgspec.structs.replace(
            gap, end=end, ts_recv=time.time_ns(), detail=f"not healable: {reason}"
        )
        await self.pipeline.process(record)

    def _scope(self, gap: DataGap) -> list[str]:
        if gap.instruments:
            return list(gap.instruments)
        if gap.instrument == ALL_INSTRUMENTS:
            return sorted(self._instruments())
        return [gap.instrument]
