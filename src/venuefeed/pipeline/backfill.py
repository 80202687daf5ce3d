"""Chunked, resumable backfill of trades or candles for one instrument.

The range is cut into chunks; each chunk is fetched (bounded concurrency, the
venue's rate limit applies in its HTTP client) and written to the sink
together with a :class:`~venuefeed.sinks.base.Watermark` in the same
``write`` -- one transaction in the SQL stores -- so a chunk is either fully
stored and marked done, or not at all. A rerun reads the watermarks and
skips finished chunks; records are idempotent anyway, so a chunk that was
fetched twice (killed between fetch and commit) stores nothing twice.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Literal

import msgspec

from venuefeed.models import Candle, Trade
from venuefeed.sinks.base import Sink, Watermark
from venuefeed.venues.base import VenueAdapter

__all__ = ["BackfillPlan", "BackfillResult", "interval_ns", "run_backfill"]

NS = 1_000_000_000
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_INTERVAL = re.compile(r"^(\d+)([smhdw])$")

Kind = Literal["trades", "candles"]


def interval_ns(interval: str) -> int:
    """``"1m"`` -> 60 s in ns. Units: s, m, h, d, w (months vary in length: not supported)."""
    match = _INTERVAL.match(interval)
    if match is None:
        raise ValueError(f"interval {interval!r}: expected a number and one of s, m, h, d, w")
    return int(match[1]) * _UNITS[match[2]] * NS


@dataclass(frozen=True, slots=True)
class BackfillPlan:
    venue: str
    instrument: str
    kind: Kind
    start_ns: int
    end_ns: int
    interval: str = "1m"
    chunk_ns: int | None = None
    """Chunk length; default one hour of trades or 1000 candles (a page on most venues)."""

    def chunk_length(self) -> int:
        if self.chunk_ns is not None:
            return self.chunk_ns
        return 3600 * NS if self.kind == "trades" else interval_ns(self.interval) * 1000

    def chunks(self) -> list[tuple[int, int]]:
        """Half-open ``[start, end)`` chunks covering the range; aligned so reruns match."""
        if self.end_ns <= self.start_ns:
            raise ValueError("backfill range is empty: --to must be after --from")
        size = self.chunk_length()
        first = self.start_ns - self.start_ns % size
        return [
            (max(s, self.start_ns), min(s + size, self.end_ns))
            for s in range(first, self.end_ns, size)
        ]

    def key(self, chunk: tuple[int, int]) -> str:
        interval = self.interval if self.kind == "candles" else "-"
        return f"{self.prefix()}{interval}:{chunk[0]}:{chunk[1]}"

    def prefix(self) -> str:
        return f"backfill:{self.venue}:{self.instrument}:{self.kind}:"


@dataclass(slots=True)
class BackfillResult:
    chunks_total: int = 0
    chunks_skipped: int = 0
    chunks_done: int = 0
    records: int = 0
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0


Progress = Callable[[BackfillResult], None]


async def run_backfill(
    adapter: VenueAdapter,
    sink: Sink,
    plan: BackfillPlan,
    *,
    concurrency: int = 4,
    progress: Progress | None = None,
) -> BackfillResult:
    """Fetch every unfinished chunk of ``plan`` and store it with its watermark."""
    started = time.monotonic()
    chunks = plan.chunks()
    done = await sink.read_watermarks(plan.prefix())
    todo = [c for c in chunks if plan.key(c) not in done]
    result = BackfillResult(chunks_total=len(chunks), chunks_skipped=len(chunks) - len(todo))
    if progress is not None:
        progress(result)
    limit = asyncio.Semaphore(concurrency)

    def fetch(chunk: tuple[int, int]) -> AsyncIterator[Trade | Candle]:
        if plan.kind == "trades":
            return adapter.fetch_trades(plan.instrument, chunk[0], chunk[1])
        return adapter.fetch_candles(plan.instrument, plan.interval, chunk[0], chunk[1])

    async def one(chunk: tuple[int, int]) -> None:
        async with limit:
            records = [r async for r in fetch(chunk) if chunk[0] <= _when(r) < chunk[1]]
            mark = {"records": len(records), "finished_at": time.time_ns()}
            watermark = Watermark(plan.key(chunk), msgspec.json.encode(mark).decode())
            await sink.write([*records, watermark])
            result.chunks_done += 1
            result.records += len(records)
            if progress is not None:
                progress(result)

    outcomes = await asyncio.gather(*(one(c) for c in todo), return_exceptions=True)
    for chunk, outcome in zip(todo, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            result.failed.append(f"{plan.key(chunk)}: {type(outcome).__name__}: {outcome}")
    result.seconds = time.monotonic() - started
    return result


def _when(record: Trade | Candle) -> int:
    """The time that places a record in exactly one chunk (no duplicates at boundaries)."""
    return record.open_time if isinstance(record, Candle) else record.ts_venue
