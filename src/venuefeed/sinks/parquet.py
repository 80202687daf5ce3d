"""Parquet files for analysis: Hive-partitioned, exact decimals, written as data arrives.

Layout: ``<root>/<table>/venue=<v>/date=<YYYY-MM-DD>/part-<ns>-<id>.parquet``,
which pyarrow, pandas, polars and DuckDB read as one dataset with ``venue``
and ``date`` columns (``hive_partitioning``). ``date`` is the event's UTC day
(the venue's timestamp; the receive time when the venue gave none).

Columns follow the SQL schema (:mod:`venuefeed.schema`) so an export from
SQLite or PostgreSQL (:mod:`venuefeed.sinks.export`) has the same shape,
plus ``_id``: the record's natural-key id (:mod:`venuefeed.sinks.keys`).
Book snapshots keep their levels as ``bids``/``asks`` lists of
``{price, size}``. Markets, watermarks and book-state changes are not
written: they belong to the SQL stores.

**Exact decimals** are ``decimal128(38, 9)``: every price and size the
venues send today has at most 8 fractional digits, and a fixed scale keeps
columns comparable and summable in every reader. A value with more than 9
fractional digits (or more than 29 integer digits) cannot be stored exactly;
its record is skipped, counted in ``sink_rejected_rows_total`` and logged once
per column -- never rounded.

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

**Exactly once**: a record whose ``_id`` was written recently (a bounded
cache of ``dedup_ids`` ids, refilled from the newest parts at start) is
skipped. Deduplication therefore covers replays and reconnect overlaps, not
arbitrary re-ingestion of old data -- for that, ``_id`` is in every row.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import threading
import time
import uuid
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import pyarrow as pa
import pyarrow.parquet as pq

from venuefeed import metrics, schema
from venuefeed.log import get_logger
from venuefeed.models import BookSnapshot
from venuefeed.sinks import rows
from venuefeed.sinks.base import Record, Sink
from venuefeed.sinks.journal import Journal, decode_batch, encode_batch, fsync_dir, read_frames
from venuefeed.sinks.keys import message_id

__all__ = [
    "DECIMAL",
    "TIME_COLUMNS",
    "Layout",
    "ParquetSink",
    "PartitionWriter",
    "decimal_problem",
    "sql_layout",
]

log = get_logger("venuefeed.parquet")

DECIMAL = pa.decimal128(38, 9)
_SCALE = 9
_MAX_INTEGER_DIGITS = 38 - _SCALE

_ARROW: dict[schema.ColumnType, pa.DataType] = {
    "text": pa.string(),
    "bigint": pa.int64(),
    "int": pa.int32(),
    "serial": pa.int64(),
    "decimal": DECIMAL,
    "bool": pa.bool_(),
    "json": pa.string(),
    "blob": pa.binary(),
    "float": pa.float64(),
}

TIME_COLUMNS: dict[str, tuple[str, ...]] = {
    "trades": ("ts_venue", "ts_recv"),
    "quotes": ("ts_venue", "ts_recv"),
    "price_updates": ("ts_venue", "ts_recv"),
    "book_deltas": ("ts_venue", "ts_recv"),
    "book_snapshots": ("ts_venue", "ts_recv"),
    "market_status_changes": ("ts_venue", "ts_recv"),
    "whale_activity": ("ts_venue", "detected_at"),
    "candles": ("open_time", "ts_recv"),
    "data_gaps": ("start_ns",),
    "markets": ("updated_at",),
    "market_versions": ("recorded_at",),
}
"""Per table, the event time that picks the ``date`` partition: the first non-zero column."""

Row = tuple[Any, ...]
T = TypeVar("T")


def decimal_problem(text: str) -> str | None:
    """Why ``text`` does not fit ``decimal128(38, 9)`` exactly, or ``None`` if it does."""
    digits = text.lstrip("-")
    integer, _, fraction = digits.partition(".")
    if len(fraction) > _SCALE:
        return f"{len(fraction)} fractional digits (at most {_SCALE})"
    if len(integer.lstrip("0")) > _MAX_INTEGER_DIGITS:
        return f"more than {_MAX_INTEGER_DIGITS} integer digits"
    return None


_DAYS: dict[int, str] = {}
"""Day number -> ``YYYY-MM-DD``; a few entries per run, looked up for every row."""


def _day(ns: int) -> str:
    day = ns // 86_400_000_000_000
    text = _DAYS.get(day)
    if text is None:
        text = _DAYS[day] = (dt.date(1970, 1, 1) + dt.timedelta(days=day)).isoformat()
    return text


@dataclass(frozen=True)
class Layout:
    """How one table's rows become Arrow columns (``venue`` lives in the path)."""

    table: str
    names: tuple[str, ...]
    """Row positions kept, by name, in row order (the ``venue`` position dropped)."""
    arrow: pa.Schema
    venue_index: int
    time_indexes: tuple[int, ...]
    decimal_indexes: tuple[int, ...]
    """Positions in the *original* row of decimal columns (validated before writing)."""

    def partition(self, row: Row) -> tuple[str, str]:
        ns = 0
        for i in self.time_indexes:
            ns = row[i] or 0
            if ns:
                break
        return str(row[self.venue_index]), _day(ns)

    def problem(self, row: Row) -> str | None:
        for i in self.decimal_indexes:
            value = row[i]
            if value is not None and (why := decimal_problem(value)) is not None:
                return f"{self.table}: {value!r} has {why}"
        return None

    def to_arrow(self, table_rows: Sequence[Row], ids: Sequence[str | None]) -> pa.Table:
        columns: list[pa.Array] = []
        for position, field in zip(self._positions, self.arrow, strict=False):
            values: list[Any] = [r[position] for r in table_rows]
            if field.type == DECIMAL:
                values = [None if v is None else Decimal(v) for v in values]
            columns.append(pa.array(values, type=field.type))
        columns.append(pa.array(ids, type=pa.string()))
        return pa.Table.from_arrays(columns, schema=self.arrow)

    @property
    def _positions(self) -> list[int]:
        return [i for i in range(len(self.names) + 1) if i != self.venue_index]


def sql_layout(table: schema.Table, columns: Sequence[str] | None = None) -> Layout:
    """The layout of a SQL table's rows in ``columns`` order (default: insert columns)."""
    names = tuple(columns or table.insert_columns())
    by_name = {c.name: c for c in table.columns}
    kept = [n for n in names if n != "venue"]
    fields = [pa.field(n, _ARROW[by_name[n].type], nullable=by_name[n].nullable) for n in kept]
    fields.append(pa.field("_id", pa.string()))
    return Layout(
        table=table.name,
        names=tuple(kept),
        arrow=pa.schema(fields),
        venue_index=names.index("venue"),
        time_indexes=tuple(names.index(c) for c in TIME_COLUMNS.get(table.name, ())),
        decimal_indexes=tuple(i for i, n in enumerate(names) if by_name[n].type == "decimal"),
    )


_LEVEL = pa.list_(pa.struct([pa.field("price", DECIMAL), pa.field("size", DECIMAL)]))
_SNAPSHOT_NAMES = ("venue", "instrument", "ts_venue", "ts_recv", "sequence", "checksum",
                   "digest", "bids", "asks")  # fmt: skip
_SNAPSHOTS = Layout(
    table="book_snapshots",
    names=_SNAPSHOT_NAMES[1:],
    arrow=pa.schema(
        [
            pa.field("instrument", pa.string(), nullable=False),
            pa.field("ts_venue", pa.int64(), nullable=False),
            pa.field("ts_recv", pa.int64(), nullable=False),
            pa.field("sequence", pa.int64(), nullable=False),
            pa.field("checksum", pa.string()),
            pa.field("digest", pa.string(), nullable=False),
            pa.field("bids", _LEVEL),
            pa.field("asks", _LEVEL),
            pa.field("_id", pa.string()),
        ]
    ),
    venue_index=0,
    time_indexes=(2, 3),
    decimal_indexes=(),
)


def _snapshot_row(s: BookSnapshot) -> Row:
    def levels(side: Iterable[Any]) -> list[dict[str, Decimal]]:
        return [{"price": Decimal(lv.price), "size": Decimal(lv.size)} for lv in side]

    return (*rows.snapshot_row(s), levels(s.bids), levels(s.asks))


def _snapshot_problem(s: BookSnapshot) -> str | None:
    for level in (*s.bids, *s.asks):
        for value in (level.price, level.size):
            if (why := decimal_problem(value)) is not None:
                return f"book_snapshots: {value!r} has {why}"
    return None


_LAYOUTS: dict[type[Any], tuple[Layout, Callable[[Any], Iterable[Row]]]] = {
    cls: (sql_layout(table), build) for cls, (table, build) in rows.ROW_BUILDERS.items()
}


class PartitionWriter:
    """Open part files of one roll, one per (table, venue, date); blocking, thread-confined."""

    def __init__(self, root: Path, row_group_rows: int, prefix: str = "part") -> None:
        self.root = root
        self.row_group_rows = row_group_rows
        self.prefix = prefix
        self._buffers: dict[tuple[str, str, str], list[tuple[Row, str | None]]] = defaultdict(list)
        self._layouts: dict[str, Layout] = {}
        self._writers: dict[tuple[str, str, str], tuple[pq.ParquetWriter, Path, Path]] = {}
        self.rows = 0

    def add(self, layout: Layout, row: Row, row_id: str | None) -> None:
        venue, date = layout.partition(row)
        key = (layout.table, venue, date)
        self._layouts[layout.table] = layout
        buffer = self._buffers[key]
        buffer.append((row, row_id))
        self.rows += 1
        if len(buffer) >= self.row_group_rows:
            self._flush(key)

    def _flush(self, key: tuple[str, str, str]) -> None:
        buffer = self._buffers.pop(key, None)
        if not buffer:
            return
        layout = self._layouts[key[0]]
        table = layout.to_arrow([r for r, _ in buffer], [i for _, i in buffer])
        entry = self._writers.get(key)
        if entry is None:
            table_name, venue, date = key
            directory = self.root / table_name / f"venue={quote(venue, safe='')}" / f"date={date}"
            directory.mkdir(parents=True, exist_ok=True)
            name = f"{self.prefix}-{time.time_ns()}-{uuid.uuid4().hex[:8]}.parquet"
            final, temp = directory / name, directory / f".{name}.inprogress"
            writer = pq.ParquetWriter(temp, layout.arrow, compression="zstd")
            entry = self._writers[key] = (writer, temp, final)
        entry[0].write_table(table)

    def commit(self) -> list[Path]:
        """Close every open part, make it durable and visible; return the final paths."""
        for key in list(self._buffers):
            self._flush(key)
        done: list[Path] = []
        directories: set[Path] = set()
        for writer, temp, final in self._writers.values():
            writer.close()
            with temp.open("rb+") as f:
                os.fsync(f.fileno())
            temp.rename(final)
            directories.add(final.parent)
            done.append(final)
        for directory in directories:
            fsync_dir(directory)
        self._writers.clear()
        self.rows = 0
        return done

    def abort(self) -> None:
        for writer, temp, _ in self._writers.values():
            with contextlib.suppress(Exception):
                writer.close()
            temp.unlink(missing_ok=True)
        self._writers.clear()
        self._buffers.clear()
        self.rows = 0


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
        self._lock = asyncio.Lock()
        self._thread_lock = threading.Lock()
        self._wal: Journal | None = None
        self._wal_number = 0
        self._opened = time.monotonic()
        self._timer: asyncio.Task[None] | None = None
        self._warned: set[str] = set()
        self.rows_written = 0
        self.rejected = 0
        self.parts: list[Path] = []

    @property
    def _wal_dir(self) -> Path:
        return self.root / "_wal"

    async def start(self) -> None:
        await asyncio.to_thread(self._locked, self._recover)
        self._timer = asyncio.create_task(self._roll_timer(), name="parquet-roll")

    async def write(self, batch: Sequence[Record]) -> None:
        candidates = [
            r
            for r in batch
            if (type(r) in _LAYOUTS or isinstance(r, BookSnapshot)) and not self._rejected(r)
        ]
        if not candidates:
            return
        async with self._lock:
            accepted = await asyncio.to_thread(self._locked, self._accept, candidates)
            if self._parts.rows >= self.roll_rows:
                await asyncio.to_thread(self._locked, self._roll)
        metrics.SINK_RECORDS.labels(self.name).inc(accepted)

    async def close(self) -> None:
        async with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._timer
                self._timer = None
            await asyncio.to_thread(self._locked, self._roll)
            if self._wal is not None:
                self._wal.close()
                self._wal.path.unlink()
                self._wal = None

    # -- helpers (worker thread unless noted) --------------------------------

    def _locked(self, work: Callable[..., T], *args: Any) -> T:
        """Run ``work`` holding the thread lock.

        The asyncio lock alone is not enough: a cancelled ``await
        asyncio.to_thread(...)`` releases it while the thread still runs, and a
        second roll must never touch the same open files.
        """
        with self._thread_lock:
            return work(*args)

    def _rejected(self, record: Record) -> bool:
        """Event loop: does a decimal of ``record`` not fit? Count and log once per table."""
        if isinstance(record, BookSnapshot):
            problem = _snapshot_problem(record)
            table = "book_snapshots"
        else:
            layout, build = _LAYOUTS[type(record)]
            table = layout.table
            problem = next((p for r in build(record) if (p := layout.problem(r))), None)
        if problem is None:
            return False
        self.rejected += 1
        metrics.SINK_REJECTED_ROWS.labels(self.name, table, "decimal_scale").inc()
        if table not in self._warned:
            self._warned.add(table)
            log.error(
                "record skipped: not exactly representable as Parquet decimal128(38, 9)",
                problem=problem,
            )
        return True

    def _accept(self, candidates: Sequence[Record]) -> int:
        """Journal the records not seen before, then buffer their rows; return how many."""
        fresh: dict[str, Record] = {}
        for record in candidates:
            record_id = message_id(record)
            if record_id not in self._seen:
                fresh.setdefault(record_id, record)
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
                self._parts.add(_SNAPSHOTS, _snapshot_row(record), record_id)
            else:
                layout, build = _LAYOUTS[type(record)]
                for row in build(record):
                    self._parts.add(layout, row, record_id)
            self._remember(record_id)
            self.rows_written += 1

    def _remember(self, record_id: str) -> None:
        self._seen[record_id] = None
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
        if self._wal is not None:  # its rows are all in closed, durable parts now
            self._wal.close()
            self._wal.path.unlink()
            self._wal = None
        self._opened = time.monotonic()

    async def _roll_timer(self) -> None:
        while True:
            await asyncio.sleep(min(self.roll_seconds, 1.0))
            if self._parts.rows and time.monotonic() - self._opened >= self.roll_seconds:
                async with self._lock:
                    await asyncio.to_thread(self._locked, self._roll)

    def _recover(self) -> None:
        """Refill the dedup cache, drop half-written parts, rebuild them from the WAL."""
        self.root.mkdir(parents=True, exist_ok=True)
        for temp in self.root.glob("*/*/*/.*.inprogress"):
            temp.unlink()
        self._load_seen()
        logs = sorted(self._wal_dir.glob("wal-*.log")) if self._wal_dir.is_dir() else []
        replayed = 0
        for path in logs:
            Journal(path).close()  # truncates a torn tail
            for _, payload in read_frames(path):
                todo = {
                    i: r for r in decode_batch(payload) if (i := message_id(r)) not in self._seen
                }
                self._buffer(todo)
                replayed += len(todo)
        if logs:
            self._roll()
            for path in logs:
                path.unlink()
            log.info("parquet rebuilt parts from the write-ahead log", records=replayed)

    def _load_seen(self) -> None:
        parts = sorted(
            self.root.glob("*/*/*/part-*.parquet"), key=lambda p: p.stat().st_mtime, reverse=True
        )
        ids: list[str] = []
        for part in parts:
            if len(ids) >= self._dedup_max:
                break
            column = pq.read_table(part, columns=["_id"]).column("_id").to_pylist()
            ids.extend(i for i in column if i is not None)
        for record_id in reversed(ids[: self._dedup_max]):
            self._seen[record_id] = None
