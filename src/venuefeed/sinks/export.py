"""Export stored data to Parquet (the sink's layout) or CSV: ``venuefeed export``.

The Parquet output is laid out and typed exactly like the Parquet sink's
(:mod:`venuefeed.sinks.parquet`): ``<out>/<table>/venue=<v>/date=<d>/export-*.parquet``,
decimals as ``decimal128(38, 9)``, ``_id`` empty (rows from SQL are not
records). So a dataset written live and one exported later read alike.

Rows are streamed in chunks -- an export of a large table needs memory for a
chunk and one row group per open partition, not for the table. Decimal
values come out exact: SQLite stores the canonical text, PostgreSQL
``NUMERIC`` arrives as ``Decimal`` and is turned back into canonical text.
A value that Parquet's ``decimal128(38, 9)`` cannot hold is skipped and
counted in the result (CSV has no such limit).
"""

from __future__ import annotations

import csv
import datetime as dt
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, TextIO

from venuefeed import exact, schema
from venuefeed.sinks.parquet import TIME_COLUMNS, PartitionWriter, sql_layout

__all__ = ["EXPORTABLE", "ExportResult", "export", "parse_since"]

Source = Literal["sqlite", "postgres"]
Format = Literal["parquet", "csv"]

EXPORTABLE = tuple(
    name for name in TIME_COLUMNS if "venue" in schema.TABLES_BY_NAME[name].column_names()
)
"""Tables with a venue and an event time: what can be partitioned and filtered by ``since``."""


@dataclass
class ExportResult:
    rows: int = 0
    rejected: int = 0
    first_problem: str | None = None
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


def _time_sql(table: str) -> str:
    cols = TIME_COLUMNS[table]
    if len(cols) == 1:
        return f'"{cols[0]}"'
    return f'COALESCE(NULLIF("{cols[0]}", 0), "{cols[1]}")'


def _select(table: schema.Table, marker: str, qualified: str) -> str:
    cols = ", ".join(f'"{c}"' for c in table.insert_columns())
    when = _time_sql(table.name)
    return f"SELECT {cols} FROM {qualified} WHERE {when} >= {marker} ORDER BY {when}"


def _normalizer(table: schema.Table) -> Any:
    """Row as stored -> row as the Parquet sink builds it (canonical text, real bools)."""
    kinds = [c.type for c in table.columns if c.name != table.serial]

    def normalize(row: tuple[Any, ...]) -> tuple[Any, ...]:
        out = list(row)
        for i, kind in enumerate(kinds):
            value = out[i]
            if value is None:
                continue
            if kind == "decimal":
                out[i] = exact.from_decimal(value) if isinstance(value, Decimal) else str(value)
            elif kind == "bool":
                out[i] = bool(value)
        return tuple(out)

    return normalize


def _sqlite_rows(path: Path, table: schema.Table, since: int, chunk: int) -> Iterator[list[Any]]:
    from venuefeed.sinks.sqlite import open_reader

    conn = open_reader(path)
    try:
        cursor = conn.execute(_select(table, "?", f'"{table.name}"'), (since,))
        while rows := cursor.fetchmany(chunk):
            yield [tuple(r) for r in rows]
    finally:
        conn.close()


async def _postgres_rows(
    url: str, pg_schema: str, table: schema.Table, since: int, chunk: int
) -> AsyncIterator[list[Any]]:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        sql = _select(table, "$1", f'"{pg_schema}"."{table.name}"')
        async with conn.transaction(readonly=True):
            cursor = await conn.cursor(sql, since)
            while rows := await cursor.fetch(chunk):
                yield [tuple(r) for r in rows]
    finally:
        await conn.close()


async def _chunks(
    source: Source,
    table: schema.Table,
    since: int,
    chunk: int,
    sqlite_path: Path | None,
    database_url: str | None,
    pg_schema: str,
) -> AsyncIterator[list[Any]]:
    if source == "sqlite":
        for rows in _sqlite_rows(_existing(sqlite_path), table, since, chunk):
            yield rows
    else:
        from venuefeed.sinks.postgres import resolve_url

        async for rows in _postgres_rows(resolve_url(database_url), pg_schema, table, since, chunk):
            yield rows


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
    spec = schema.TABLES_BY_NAME[table]
    since_ns = since if isinstance(since, int) else parse_since(since)
    normalize = _normalizer(spec)
    chunks = _chunks(source, spec, since_ns, chunk_rows, sqlite_path, database_url, pg_schema)
    result = ExportResult()
    if fmt == "csv":
        if str(out) == "-":
            await _write_csv(chunks, spec, normalize, sys.stdout, result)
        else:
            with _create(Path(out)) as f:
                await _write_csv(chunks, spec, normalize, f, result)
            result.files.append(Path(out))
        return result
    layout = sql_layout(spec)
    writer = PartitionWriter(Path(out), row_group_rows=chunk_rows, prefix="export")
    try:
        async for rows in chunks:
            for row in map(normalize, rows):
                problem = layout.problem(row)
                if problem is not None:
                    result.rejected += 1
                    result.first_problem = result.first_problem or problem
                    continue
                writer.add(layout, row, None)
                result.rows += 1
        result.files = writer.commit()
    except BaseException:
        writer.abort()
        raise
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


async def _write_csv(
    chunks: AsyncIterator[list[Any]],
    spec: schema.Table,
    normalize: Any,
    f: TextIO,
    result: ExportResult,
) -> None:
    out = csv.writer(f)
    out.writerow(spec.insert_columns())
    async for rows in chunks:
        for row in map(normalize, rows):
            out.writerow(
                ["" if v is None else ("true" if v else "false") if isinstance(v, bool) else v
                 for v in row]
            )  # fmt: skip
            result.rows += 1
