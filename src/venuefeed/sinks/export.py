"""Export stored data to Parquet (the sink's layout) or CSV: ``venuefeed export``.

The Parquet output is laid out and typed exactly like the Parquet sink's
(:mod:`venuefeed.sinks.columnar`): ``<out>/<table>/venue=<v>/date=<d>/export-*.parquet``,
decimals as ``decimal128(38, 12)`` (amounts ``(38, 18)``) with anything
wider kept exactly in ``_exact``, ``_id`` empty (rows from SQL are not records). So a dataset
written live and one exported later read alike -- book snapshots included,
with their levels as ``bids``/``asks`` lists. ``book_levels`` exports flat,
one row per level with its snapshot's identity (venue, instrument, times,
sequence, digest, id). No row is ever skipped.

Rows are streamed in chunks -- an export of a large table needs memory for a
chunk and one row group per open partition, not for the table. Decimal
values come out exact: SQLite stores the canonical text, PostgreSQL
``NUMERIC`` arrives as ``Decimal`` and is turned back into canonical text.
In CSV a snapshot's sides are JSON arrays of ``[price, size]`` text pairs.
"""

from __future__ import annotations

import csv
import datetime as dt
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, TextIO

import msgspec

from venuefeed import exact, schema
from venuefeed.sinks.columnar import SNAPSHOTS, TIME_COLUMNS, Layout, PartitionWriter, sql_layout

__all__ = ["EXPORTABLE", "ExportResult", "export", "parse_since"]

Source = Literal["sqlite", "postgres"]
Format = Literal["parquet", "csv"]
Row = tuple[Any, ...]

BOOK_LEVELS_FLAT = schema.Table(
    "book_levels",
    (
        schema.C("venue", "text", False),
        schema.C("instrument", "text", False),
        schema.C("ts_venue", "bigint"),
        schema.C("ts_recv", "bigint", False),
        schema.C("sequence", "bigint", False),
        schema.C("digest", "text", False),
        schema.C("snapshot_id", "bigint", False),
        schema.C("side", "text", False),
        schema.C("level", "int", False),
        schema.C("price", "decimal", False),
        schema.C("size", "decimal", False),
    ),
    key=("snapshot_id", "side", "level"),
)
"""``book_levels`` as exported: each level with its snapshot's identity (not a stored table)."""

_SNAPSHOT_COLUMNS = ("venue", "instrument", "ts_venue", "ts_recv", "sequence", "checksum",
                     "digest", "id")  # fmt: skip
_LEVEL_COLUMNS = ("side", "level", "price", "size")

EXPORTABLE = (
    *(name for name in TIME_COLUMNS if name in schema.TABLES_BY_NAME
      and "venue" in schema.TABLES_BY_NAME[name].column_names()),
    "book_levels",
)  # fmt: skip
"""Tables with a venue and an event time: what can be partitioned and filtered by ``since``."""


@dataclass
class ExportResult:
    rows: int = 0
    exact_text: int = 0
    """Decimal values too wide for their Parquet column, exported exactly in ``_exact``."""
    files: list[Path] = field(default_factory=list)


def parse_since(text: str | None) -> int:
    """``2024-05-01``, ``2024-05-01T12:00:00`` (UTC unless an offset is given) or ns -> ns."""
    if text is None or text == "":
        return 0
    if text.isdigit():
        return int(text)
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--since: not a date, datetime or ns timestamp: {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1_000


def _time_sql(table: str, alias: str = "") -> str:
    cols = [f'{alias}"{c}"' for c in TIME_COLUMNS[table]]
    if len(cols) == 1:
        return cols[0]
    return f"COALESCE(NULLIF({cols[0]}, 0), {cols[1]})"


def _select(table: str, marker: str, qualify: Callable[[str], str]) -> str:
    """The query for ``table``, in event-time order, with ``marker`` for ``since``."""
    if table in ("book_snapshots", "book_levels"):
        when = _time_sql("book_snapshots", "s.")
        snap = ", ".join(f's."{c}"' for c in _SNAPSHOT_COLUMNS)
        level = ", ".join(f'l."{c}"' for c in _LEVEL_COLUMNS)
        join = "LEFT JOIN" if table == "book_snapshots" else "JOIN"
        return (
            f"SELECT {snap}, {level} FROM {qualify('book_snapshots')} s "
            f'{join} {qualify("book_levels")} l ON l."snapshot_id" = s."id" '
            f'WHERE {when} >= {marker} ORDER BY {when}, s."id", l."side", l."level"'
        )
    spec = schema.TABLES_BY_NAME[table]
    cols = ", ".join(f'"{c}"' for c in spec.insert_columns())
    when = _time_sql(table)
    return f"SELECT {cols} FROM {qualify(table)} WHERE {when} >= {marker} ORDER BY {when}"


def _text(value: Any) -> Any:
    """A stored decimal as canonical text (PostgreSQL hands ``Decimal``, SQLite text)."""
    return exact.from_decimal(value) if isinstance(value, Decimal) else value


def _normalizer(table: schema.Table) -> Callable[[Row], Row]:
    """Row as stored -> row as the Parquet sink builds it (canonical text, real bools)."""
    kinds = [c.type for c in table.columns if c.name != table.serial]

    def normalize(row: Row) -> Row:
        out = list(row)
        for i, kind in enumerate(kinds):
            value = out[i]
            if value is None:
                continue
            if kind == "decimal":
                out[i] = _text(value) if isinstance(value, Decimal) else str(value)
            elif kind == "bool":
                out[i] = bool(value)
        return tuple(out)

    return normalize


def _level_rows(rows: Iterator[Row]) -> Iterator[Row]:
    """Joined snapshot+level rows -> flat ``book_levels`` rows (:data:`BOOK_LEVELS_FLAT`)."""
    for venue, instrument, ts_venue, ts_recv, seq, _, digest, sid, side, level, price, size in rows:
        yield (venue, instrument, ts_venue, ts_recv, seq, digest, sid, side, level,
               _text(price), _text(size))  # fmt: skip


class _Snapshots:
    """Joined snapshot+level rows (a snapshot's levels consecutive) -> snapshot rows.

    A snapshot may straddle two chunks, so the last one is held until the next
    chunk (or :meth:`finish`) shows it is complete.
    """

    def __init__(self) -> None:
        self._current: list[Any] | None = None
        self._id: Any = None

    def feed(self, rows: Iterator[Row]) -> Iterator[Row]:
        for row in rows:
            if self._current is None or row[7] != self._id:
                if self._current is not None:
                    yield tuple(self._current)
                self._id = row[7]
                self._current = [*row[:7], [], []]
            side, price, size = row[8], row[10], row[11]
            if side is not None:
                self._current[7 if side == "bid" else 8].append((_text(price), _text(size)))

    def finish(self) -> Iterator[Row]:
        if self._current is not None:
            yield tuple(self._current)
            self._current = None


def _sqlite_rows(path: Path, sql: str, since: int, chunk: int) -> Iterator[list[Row]]:
    from venuefeed.sinks.sqlite import open_reader

    conn = open_reader(path)
    try:
        cursor = conn.execute(sql, (since,))
        while rows := cursor.fetchmany(chunk):
            yield [tuple(r) for r in rows]
    finally:
        conn.close()


async def _postgres_rows(url: str, sql: str, since: int, chunk: int) -> AsyncIterator[list[Row]]:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction(readonly=True):
            cursor = await conn.cursor(sql, since)
            while rows := await cursor.fetch(chunk):
                yield [tuple(r) for r in rows]
    finally:
        await conn.close()


async def _chunks(
    source: Source,
    table: str,
    since: int,
    chunk: int,
    sqlite_path: Path | None,
    database_url: str | None,
    pg_schema: str,
) -> AsyncIterator[list[Row]]:
    if source == "sqlite":
        sql = _select(table, "?", lambda name: f'"{name}"')
        for rows in _sqlite_rows(_existing(sqlite_path), sql, since, chunk):
            yield rows
    else:
        from venuefeed.sinks.postgres import resolve_url

        sql = _select(table, "$1", lambda name: f'"{pg_schema}"."{name}"')
        async for rows in _postgres_rows(resolve_url(database_url), sql, since, chunk):
            yield rows


async def _rows(table: str, chunks: AsyncIterator[list[Row]]) -> AsyncIterator[list[Row]]:
    """Chunks of rows in the shape the Parquet layout (and the CSV columns) expect."""
    if table == "book_snapshots":
        snapshots = _Snapshots()
        async for rows in chunks:
            yield list(snapshots.feed(iter(rows)))
        yield list(snapshots.finish())
    elif table == "book_levels":
        async for rows in chunks:
            yield list(_level_rows(iter(rows)))
    else:
        normalize = _normalizer(schema.TABLES_BY_NAME[table])
        async for rows in chunks:
            yield [normalize(r) for r in rows]


def _layout(table: str) -> tuple[Layout, tuple[str, ...]]:
    """The Parquet layout of ``table`` and its CSV header."""
    if table == "book_snapshots":
        return SNAPSHOTS, ("venue", *SNAPSHOTS.names)
    spec = BOOK_LEVELS_FLAT if table == "book_levels" else schema.TABLES_BY_NAME[table]
    return sql_layout(spec), spec.insert_columns()


async def export(
    source: Source,
    table: str,
    since: str | int | None,
    fmt: Format,
    out: Path,
    *,
    sqlite_path: Path | None = None,
    database_url: str | None = None,
    pg_schema: str = "venuefeed",
    chunk_rows: int = 50_000,
) -> ExportResult:
    """Export ``table`` rows whose event time is at or after ``since`` to ``out``.

    ``out`` is a directory for Parquet (Hive layout below it) and a file for
    CSV (``-`` writes to standard output).
    """
    if table not in EXPORTABLE:
        raise ValueError(f"cannot export {table!r}; choose one of {', '.join(EXPORTABLE)}")
    since_ns = since if isinstance(since, int) else parse_since(since)
    chunks = _chunks(source, table, since_ns, chunk_rows, sqlite_path, database_url, pg_schema)
    rows = _rows(table, chunks)
    layout, header = _layout(table)
    result = ExportResult()
    if fmt == "csv":
        if str(out) == "-":
            await _write_csv(rows, header, sys.stdout, result)
        else:
            with _create(Path(out)) as f:
                await _write_csv(rows, header, f, result)
            result.files.append(Path(out))
        return result
    writer = PartitionWriter(Path(out), row_group_rows=chunk_rows, prefix="export")
    try:
        async for chunk in rows:
            for row in chunk:
                writer.add(layout, row, None)
            result.rows += len(chunk)
        result.files = writer.commit()
    except BaseException:
        writer.abort()
        raise
    result.exact_text = sum(writer.exact_text.values())
    return result


# Export is a batch job with its own event loop (the CLI verb); its file I/O
# blocking that loop costs nothing, so plain blocking calls are used on purpose.


def _existing(path: Path | None) -> Path:
    if path is None or not Path(path).exists():
        raise FileNotFoundError(f"no SQLite database at {path}")
    return Path(path)


def _create(path: Path) -> TextIO:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("w", newline="", encoding="utf-8")


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return msgspec.json.encode(value).decode()
    return value


async def _write_csv(
    rows: AsyncIterator[list[Row]], header: tuple[str, ...], f: TextIO, result: ExportResult
) -> None:
    out = csv.writer(f)
    out.writerow(header)
    async for chunk in rows:
        for row in chunk:
            out.writerow([_csv_value(v) for v in row])
        result.rows += len(chunk)
