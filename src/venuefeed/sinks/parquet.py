"""Parquet files for analysis: Hive-partitioned, exact decimals, written as data arrives.

Layout and types are :mod:`venuefeed.sinks.columnar`'s (shared with
``venuefeed export``): ``<root>/<table>/venue=<v>/date=<YYYY-MM-DD>/part-*.parquet``,
columns as in the SQL schema (:mod:`venuefeed.schema`), decimals as
``decimal128(38, 12)`` (amounts, a product of two numbers, ``(38, 18)``)
with anything wider kept exactly in ``_exact`` -- no row is ever skipped for
its precision -- plus ``_id``: the record's
natural-key id (:mod:`venuefeed.sinks.keys`). Book snapshots keep their
levels as ``bids``/``asks`` lists of ``{price, size}``. Markets, watermarks
and book-state changes are not written: they belong to the SQL stores.

**What "durable" means here.** A Parquet file is unreadable until its footer
is written, so a row group flushed into an open file is not yet safe: a
crash would lose the whole file. Instead every accepted batch is first
appended to a write-ahead log (fsynced, :mod:`venuefeed.sinks.journal`) and
only then acknowledged. Rows are written to the open (hidden) part files in
row groups of ``row_group_rows`` as they arrive; every ``roll_rows`` rows or
``roll_seconds`` all open parts are closed, fsynced and atomically renamed to
their final names, and only then is the log discarded. Readers see closed
parts only (the open ones start with a dot, which readers skip). After a
crash, ``start`` deletes the half-written parts and rebuilds them from the
log.

**A failing disk** (full, I/O errors): the write raises
:class:`SinkUnavailable` -- the batch is kept upstream (spool or writer).
The open parts are discarded and the records they held, all in the log,
are rebuilt from it before the next batch is taken, exactly as after a
crash; a roll never makes half its parts visible (see
:meth:`PartitionWriter.commit`). A failed roll on the timer is retried and
shown by :meth:`ParquetSink.problems`.

**Exactly once**: a record whose ``_id`` was written recently (a bounded
cache of ``dedup_ids`` ids, refilled from the newest parts at start) is
skipped. Deduplication therefore covers replays and reconnect overlaps, not
arbitrary re-ingestion of old data -- for that, ``_id`` is in every row.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pyarrow.parquet as pq

from venuefeed import metrics
from venuefeed.log import get_logger
from venuefeed.models import BookSnapshot
from venuefeed.sinks import rows
from venuefeed.sinks.base import Record, Sink, SinkUnavailable
from venuefeed.sinks.columnar import SNAPSHOTS, Layout, PartitionWriter, sql_layout
from venuefeed.sinks.journal import Journal, decode_batch, encode_batch, read_frames
from venuefeed.sinks.keys import message_id

__all__ = ["ParquetSink"]

log = get_logger("venuefeed.parquet")

Row = tuple[Any, ...]
T = TypeVar("T")


def _snapshot_row(s: BookSnapshot) -> Row:
    def levels(side: Iterable[Any]) -> list[tuple[str, str]]:
        return [(lv.price, lv.size) for lv in side]

    return (*rows.snapshot_row(s), levels(s.bids), levels(s.asks))


_LAYOUTS: dict[type[Any], tuple[Layout, Callable[[Any], Iterable[Row]]]] = {
    cls: (sql_layout(table), build) for cls, (table, build) in rows.ROW_BUILDERS.items()
}


def _unavailable(exc: OSError) -> SinkUnavailable:
    cause = "disk full" if exc.errno == errno.ENOSPC else "I/O error"
    return SinkUnavailable(f"parquet: {cause} ({exc})")


class ParquetSink(Sink):
    """Writes events to Hive-partitioned Parquet parts (see the module docstring)."""

    name = "parquet"

    def __init__(
        self,
        root: str | Path,
        *,
        roll_rows: int = 100_000,
        roll_seconds: float = 300.0,
        row_group_rows: int = 10_000,
        dedup_ids: int = 1_000_000,
    ) -> None:
        self.root = Path(root)
        self.roll_rows = roll_rows
        self.roll_seconds = roll_seconds
        self._parts = PartitionWriter(self.root, row_group_rows)
        self._dedup_max = dedup_ids
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._unrolled: list[str] = []
        """Ids buffered into the open parts: forgotten again if those parts are lost."""
        self._lock = asyncio.Lock()
        self._thread_lock = threading.Lock()
        self._wal: Journal | None = None
        self._wal_number = 0
        self._opened = time.monotonic()
        self._timer: asyncio.Task[None] | None = None
        self._broken: str | None = None
        """Why the open parts were discarded; the next write rebuilds them from the log."""
        self._broken_since: float | None = None
        self.rows_written = 0
        self.parts: list[Path] = []

    @property
    def _wal_dir(self) -> Path:
        return self.root / "_wal"

    async def start(self) -> None:
        try:
            await asyncio.to_thread(self._locked, self._recover)
        except OSError as exc:
            await asyncio.to_thread(self._locked, self._forget_open_parts)
            raise _unavailable(exc) from exc
        self._timer = asyncio.create_task(self._roll_timer(), name="parquet-roll")

    async def write(self, batch: Sequence[Record]) -> None:
        candidates = [r for r in batch if type(r) in _LAYOUTS or isinstance(r, BookSnapshot)]
        if not candidates:
            return
        async with self._lock:
            try:
                accepted = await asyncio.to_thread(self._locked, self._write, candidates)
            except OSError as exc:
                raise _unavailable(exc) from exc
        metrics.SINK_RECORDS.labels(self.name).inc(accepted)

    async def close(self) -> None:
        """Roll what is open; if the disk refuses, the log stays for the next start."""
        async with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._timer
                self._timer = None
            try:
                await asyncio.to_thread(self._locked, self._close)
            except OSError as exc:
                raise _unavailable(exc) from exc

    def problems(self) -> list[str]:
        if self._broken is None or self._broken_since is None:
            return []
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self._broken_since))
        return [
            f"storage: parquet: cannot write parts: {self._broken} (since {since}); "
            f"their records are kept in {self._wal_dir} and rebuilt when the disk takes them"
        ]

    # -- helpers (worker thread unless noted) --------------------------------

    def _locked(self, work: Callable[..., T], *args: Any) -> T:
        """Run ``work`` holding the thread lock.

        The asyncio lock alone is not enough: a cancelled ``await
        asyncio.to_thread(...)`` releases it while the thread still runs, and a
        second roll must never touch the same open files.
        """
        with self._thread_lock:
            return work(*args)

    def _write(self, candidates: Sequence[Record]) -> int:
        """Accept a batch (rebuilding lost parts first), rolling when the parts are big enough."""
        try:
            if self._broken is not None:
                self._rebuild()
            accepted = self._accept(candidates)
            if self._parts.rows >= self.roll_rows:
                self._roll()
        except OSError as exc:
            self._break(exc)
            raise
        finally:
            self._report_exact_text()
        return accepted

    def _close(self) -> None:
        try:
            if self._broken is not None:
                self._rebuild()
            self._roll()
        except OSError as exc:
            self._break(exc)
            raise
        finally:
            if self._wal is not None:
                self._wal.close()
                self._wal = None

    def _break(self, exc: OSError) -> None:
        """The open parts may be incomplete: drop them; their records are all in the log."""
        if self._broken is None:
            log.error("parquet cannot write; open parts discarded, rebuilt from the log later",
                      error=str(exc))  # fmt: skip
            self._broken_since = time.time()
        self._broken = str(exc)
        self._forget_open_parts()

    def _forget_open_parts(self) -> None:
        self._parts.abort()
        for record_id in self._unrolled:
            self._seen.pop(record_id, None)
        self._unrolled.clear()

    def _rebuild(self) -> None:
        """Buffer again every record of the current log (after a failure dropped the parts)."""
        if self._wal is not None:
            for _, payload in read_frames(self._wal.path):
                self._buffer(self._fresh(decode_batch(payload)))
        log.info("parquet parts rebuilt from the log",
                 after_s=round(time.time() - (self._broken_since or 0), 1))  # fmt: skip
        self._broken = self._broken_since = None

    def _fresh(self, records: Iterable[Record]) -> dict[str, Record]:
        fresh: dict[str, Record] = {}
        for record in records:
            record_id = message_id(record)
            if record_id not in self._seen:
                fresh.setdefault(record_id, record)
        return fresh

    def _accept(self, candidates: Sequence[Record]) -> int:
        """Journal the records not seen before, then buffer their rows; return how many."""
        fresh = self._fresh(candidates)
        if fresh:
            if self._wal is None:
                self._open_wal()
            assert self._wal is not None
            self._wal.append(encode_batch(list(fresh.values())))  # durable from here on
            self._buffer(fresh)
        return len(fresh)

    def _buffer(self, records: dict[str, Record]) -> None:
        for record_id, record in records.items():
            if isinstance(record, BookSnapshot):
                self._parts.add(SNAPSHOTS, _snapshot_row(record), record_id)
            else:
                layout, build = _LAYOUTS[type(record)]
                for row in build(record):
                    self._parts.add(layout, row, record_id)
            self._remember(record_id)
            self.rows_written += 1

    def _remember(self, record_id: str) -> None:
        self._seen[record_id] = None
        self._unrolled.append(record_id)
        if len(self._seen) > self._dedup_max:
            self._seen.popitem(last=False)

    def _open_wal(self) -> None:
        self._wal_dir.mkdir(parents=True, exist_ok=True)
        self._wal_number += 1
        self._wal = Journal(self._wal_dir / f"wal-{time.time_ns()}-{self._wal_number}.log")
        self._opened = time.monotonic()

    def _roll(self) -> None:
        if self._parts.rows:
            self.parts.extend(self._parts.commit())
            self._report_exact_text()
        self._unrolled.clear()  # their rows are in closed, durable parts now
        wal, self._wal = self._wal, None
        self._opened = time.monotonic()
        if wal is not None:
            wal.close()
            wal.path.unlink()  # if this fails, the next start replays it: all duplicates

    def _report_exact_text(self) -> None:
        """Publish how many values went to ``_exact`` since the last call."""
        counts = self._parts.exact_text
        for table, count in counts.items():
            metrics.SINK_TEXT_DECIMALS.labels(self.name, table).inc(count)
        counts.clear()

    async def _roll_timer(self) -> None:
        while True:
            await asyncio.sleep(min(self.roll_seconds, 1.0))
            if self._parts.rows and time.monotonic() - self._opened >= self.roll_seconds:
                async with self._lock:
                    with contextlib.suppress(OSError):  # kept in _broken, shown in problems()
                        await asyncio.to_thread(self._locked, self._timed_roll)

    def _timed_roll(self) -> None:
        try:
            self._roll()
        except OSError as exc:
            self._break(exc)
            raise

    def _recover(self) -> None:
        """Refill the dedup cache, drop half-written parts, rebuild them from the WAL."""
        self.root.mkdir(parents=True, exist_ok=True)
        for temp in self.root.glob("*/*/*/.*.inprogress"):
            temp.unlink()
        self._seen.clear()
        self._load_seen()
        logs = sorted(self._wal_dir.glob("wal-*.log")) if self._wal_dir.is_dir() else []
        replayed = 0
        for path in logs:
            Journal(path).close()  # truncates a torn tail
            for _, payload in read_frames(path):
                todo = self._fresh(decode_batch(payload))
                self._buffer(todo)
                replayed += len(todo)
        if logs:
            self._roll()
            for path in logs:
                path.unlink()
            log.info("parquet rebuilt parts from the write-ahead log", records=replayed)

    def _load_seen(self) -> None:
        # A compaction (venuefeed.lake.compact) may replace parts while this runs: a part
        # that is gone has its rows in the compacted file, which is read instead.
        dated: list[tuple[float, Path]] = []
        for part in self.root.glob("*/*/*/part-*.parquet"):
            with contextlib.suppress(FileNotFoundError):
                dated.append((part.stat().st_mtime, part))
        ids: list[str] = []
        for _, part in sorted(dated, reverse=True):
            if len(ids) >= self._dedup_max:
                break
            try:
                column = pq.read_table(part, columns=["_id"]).column("_id").to_pylist()
            except FileNotFoundError:
                continue
            ids.extend(i for i in column if i is not None)
        for record_id in reversed(ids[: self._dedup_max]):
            self._seen[record_id] = None
