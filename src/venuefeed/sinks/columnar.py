"""Rows -> Hive-partitioned Parquet parts: the layout the Parquet sink and ``export`` share.

Layout: ``<root>/<table>/venue=<v>/date=<YYYY-MM-DD>/<prefix>-<ns>-<id>.parquet``,
which pyarrow, pandas, polars and DuckDB read as one dataset with ``venue``
and ``date`` columns. ``date`` is the event's UTC day (the venue's timestamp;
the receive time when the venue gave none).

**Exact decimals, never a row lost to them.** A number the venue sent (a
price, a size, a volume) is ``decimal128(38, 12)``: 26 integer and 12
fractional digits, where the venues use at most 8 today. A number we compute
as the product of two of them -- a whale trade's ``amount``, price x size,
16 fractional digits on Binance -- is ``decimal128(38, 18)``. Every reader
does arithmetic on these natively (DuckDB ``DECIMAL``, polars ``Decimal``,
pandas/pyarrow ``Decimal``), and the split scale matters there: DuckDB gives
a product the sum of both scales, so ``price * size`` is ``DECIMAL(38, 24)``
and holds any notional below 10^14, where two scale-18 columns would
overflow above 100. (polars gives a product the larger of the two scales and
rounds to it: widen one side first, ``pl.col("price").cast(pl.Decimal(38,
18)) * pl.col("size")``.) 38 is the widest precision all of them read
(``decimal256`` would not survive polars or DuckDB). A value wider still is
not rounded and its row is not dropped: its column is left null and the
exact text goes into the row's ``_exact`` column, a JSON object
``{"column": "text"}`` (levels as ``"bids[2].price"``) -- counted, and null
in every other row.

The text-to-decimal conversion is Arrow's own (vectorised, and it refuses to
round); only a batch holding a value that does not fit is looked at value by
value.
"""

from __future__ import annotations

import bisect
import contextlib
import datetime as dt
import os
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import quote

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq

from venuefeed import schema
from venuefeed.sinks.journal import fsync_dir

__all__ = [
    "DECIMAL",
    "LEVELS",
    "PRODUCT",
    "SNAPSHOTS",
    "TIME_COLUMNS",
    "Layout",
    "PartitionWriter",
    "decimal_array",
    "decimal_problem",
    "sql_layout",
]

DECIMAL = pa.decimal128(38, 12)
"""A number as a venue sends it."""
PRODUCT = pa.decimal128(38, 18)
"""A number computed as the product of two venue numbers."""
PRODUCTS = frozenset({("whale_activity", "amount")})
"""The (table, column) decimals that are products, typed :data:`PRODUCT`."""
LEVELS = pa.list_(pa.struct([pa.field("price", DECIMAL), pa.field("size", DECIMAL)]))
"""A side of a book snapshot: ``[{price, size}, ...]``, best first."""

_ARROW: dict[schema.ColumnType, pa.DataType] = {
    "text": pa.string(),
    "bigint": pa.int64(),
    "int": pa.int32(),
    "serial": pa.int64(),
    "decimal": DECIMAL,  # PRODUCT for the columns in PRODUCTS
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
    "book_levels": ("ts_venue", "ts_recv"),
    "market_status_changes": ("ts_venue", "ts_recv"),
    "whale_activity": ("ts_venue", "detected_at"),
    "account_fills": ("ts_venue", "ts_recv"),
    "account_orders": ("ts_venue", "ts_recv"),
    "whale_positions": ("ts_venue", "ts_recv"),
    "pair_quotes": ("ts_venue", "ts_recv"),
    "candles": ("open_time", "ts_recv"),
    "data_gaps": ("start_ns",),
    "markets": ("updated_at",),
    "market_versions": ("recorded_at",),
}
"""Per table, the event time that picks the ``date`` partition: the first non-zero column."""

Row = tuple[Any, ...]
_encode_json = msgspec.json.encode


def decimal_problem(text: str, type_: pa.Decimal128Type = DECIMAL) -> str | None:
    """Why ``text`` does not fit ``type_`` exactly, or ``None`` if it does."""
    scale, integer_digits = type_.scale, type_.precision - type_.scale
    try:
        value = Decimal(text)
    except InvalidOperation:
        return "not a decimal number"
    if not value.is_finite():
        return "not a finite number"
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    count = len(digits)
    while count > 1 and exponent < 0 and digits[count - 1] == 0:  # trailing zeros are free
        count -= 1
        exponent += 1
    if -exponent > scale:
        return f"{-exponent} fractional digits (at most {scale})"
    if count + exponent > integer_digits and any(digits[:count]):
        return f"{count + exponent} integer digits (at most {integer_digits})"
    return None


def decimal_array(
    values: Sequence[str | None], type_: pa.Decimal128Type = DECIMAL
) -> tuple[pa.Array, list[int]]:
    """``values`` as exact decimals of ``type_``; also the positions left null for not fitting."""
    try:
        return pa.array(values, pa.string()).cast(type_), []
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        wide = [i for i, v in enumerate(values) if v is not None and decimal_problem(v, type_)]
        kept = list(values)
        for i in wide:
            kept[i] = None
        return pa.array(kept, pa.string()).cast(type_), wide


def _levels_array(
    column: str, sides: Sequence[Sequence[tuple[str, str]]], exact: list[dict[str, str] | None]
) -> pa.Array:
    offsets = [0]
    prices: list[str] = []
    sizes: list[str] = []
    for side in sides:
        for price, size in side:
            prices.append(price)
            sizes.append(size)
        offsets.append(len(prices))
    price_array, wide_prices = decimal_array(prices)
    size_array, wide_sizes = decimal_array(sizes)
    for flat, values, field in ((wide_prices, prices, "price"), (wide_sizes, sizes, "size")):
        for i in flat:
            row = bisect.bisect_right(offsets, i) - 1
            entry = exact[row] = exact[row] or {}
            entry[f"{column}[{i - offsets[row]}].{field}"] = values[i]
    struct = pa.StructArray.from_arrays([price_array, size_array], fields=list(LEVELS.value_type))
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), struct, type=LEVELS)


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
    """How one table's rows become Arrow columns (``venue`` lives in the path).

    The schema ends with ``_id`` (the record's natural-key id, when rows come
    from records) and ``_exact`` (see the module docstring).
    """

    table: str
    names: tuple[str, ...]
    """Row positions kept, by name, in row order (the ``venue`` position dropped)."""
    arrow: pa.Schema
    venue_index: int
    time_indexes: tuple[int, ...]

    def partition(self, row: Row) -> tuple[str, str]:
        ns = 0
        for i in self.time_indexes:
            ns = row[i] or 0
            if ns:
                break
        return str(row[self.venue_index]), _day(ns)

    def to_arrow(
        self, table_rows: Sequence[Row], ids: Sequence[str | None]
    ) -> tuple[pa.Table, int]:
        """The rows as an Arrow table, and how many values went to ``_exact``."""
        exact: list[dict[str, str] | None] = [None] * len(table_rows)
        columns: list[pa.Array] = []
        positions = [i for i in range(len(self.names) + 1) if i != self.venue_index]
        for position, field in zip(positions, self.arrow, strict=False):
            values: list[Any] = [r[position] for r in table_rows]
            if pa.types.is_decimal(field.type):
                array, wide = decimal_array(values, field.type)
                for i in wide:
                    entry = exact[i] = exact[i] or {}
                    entry[field.name] = values[i]
                columns.append(array)
            elif field.type == LEVELS:
                columns.append(_levels_array(field.name, values, exact))
            else:
                columns.append(pa.array(values, type=field.type))
        columns.append(pa.array(ids, type=pa.string()))
        texts = [None if e is None else _encode_json(e).decode() for e in exact]
        columns.append(pa.array(texts, type=pa.string()))
        kept = sum(len(e) for e in exact if e is not None)
        return pa.Table.from_arrays(columns, schema=self.arrow), kept


_TRAILER = (pa.field("_id", pa.string()), pa.field("_exact", pa.string()))


def _field(table: str, column: schema.Column) -> pa.Field:
    if column.type != "decimal":
        return pa.field(column.name, _ARROW[column.type], nullable=column.nullable)
    type_ = PRODUCT if (table, column.name) in PRODUCTS else DECIMAL
    return pa.field(column.name, type_)  # nullable whatever SQL says: null means "see _exact"


def sql_layout(table: schema.Table, columns: Sequence[str] | None = None) -> Layout:
    """The layout of a SQL table's rows in ``columns`` order (default: insert columns)."""
    names = tuple(columns or table.insert_columns())
    by_name = {c.name: c for c in table.columns}
    kept = [n for n in names if n != "venue"]
    fields = [_field(table.name, by_name[n]) for n in kept]
    return Layout(
        table=table.name,
        names=tuple(kept),
        arrow=pa.schema([*fields, *_TRAILER]),
        venue_index=names.index("venue"),
        time_indexes=tuple(names.index(c) for c in TIME_COLUMNS.get(table.name, ())),
    )


SNAPSHOTS = Layout(
    table="book_snapshots",
    names=("instrument", "ts_venue", "ts_recv", "sequence", "checksum", "digest", "bids", "asks"),
    arrow=pa.schema(
        [
            pa.field("instrument", pa.string(), nullable=False),
            pa.field("ts_venue", pa.int64()),  # null: the venue sent the book untimed
            pa.field("ts_recv", pa.int64(), nullable=False),
            pa.field("sequence", pa.int64(), nullable=False),
            pa.field("checksum", pa.string()),
            pa.field("digest", pa.string(), nullable=False),
            pa.field("bids", LEVELS),
            pa.field("asks", LEVELS),
            *_TRAILER,
        ]
    ),
    venue_index=0,
    time_indexes=(2, 3),
)
"""Book snapshots with their levels: ``(venue, instrument, ts_venue, ts_recv, sequence,
checksum, digest, bids, asks)`` rows, each side a list of ``(price, size)`` text pairs."""


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
        self.exact_text: Counter[str] = Counter()
        """Per table, values kept as text in ``_exact`` (too wide for the decimal column)."""

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
        table, kept = layout.to_arrow([r for r, _ in buffer], [i for _, i in buffer])
        if kept:
            self.exact_text[layout.table] += kept
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
        """Close every open part, make it durable, then visible; return the final paths.

        Two phases: every part is closed (its footer written) and fsynced
        before any is renamed, so a full disk fails the roll with nothing
        visible -- the caller rebuilds it from its log, without duplicates.
        """
        for key in list(self._buffers):
            self._flush(key)
        for writer, temp, _ in self._writers.values():
            writer.close()
            with temp.open("rb+") as f:
                os.fsync(f.fileno())
        done: list[Path] = []
        for _, temp, final in self._writers.values():
            temp.rename(final)
            done.append(final)
        for directory in {final.parent for final in done}:
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
