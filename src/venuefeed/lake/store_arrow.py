"""Store tables (SQLite or PostgreSQL) as Arrow tables, typed like the Parquet lake.

``venuefeed query`` runs DuckDB over the store without DuckDB's sqlite or
postgres extensions: those are downloaded when first installed, and a
machine without internet (or a bare clone) cannot get them. Instead the
store's own Python driver reads the table in chunks and the rows become
Arrow columns, which DuckDB scans without a copy.

Columns get the lake's types (:mod:`venuefeed.sinks.columnar`): exact
decimals as ``decimal128(38, 12)`` (amounts ``(38, 18)``), a value too wide
for that left null with its exact text in ``_exact`` -- so a query written
for the lake runs unchanged on the store and gives the same answer.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa

from venuefeed import schema
from venuefeed.sinks.columnar import DECIMAL, PRODUCT, PRODUCTS, decimal_array

__all__ = ["arrow_schema", "postgres_table", "rows_to_arrow", "sqlite_table"]

_CHUNK = 50_000

_TYPES: dict[schema.ColumnType, pa.DataType] = {
    "text": pa.string(),
    "bigint": pa.int64(),
    "int": pa.int64(),
    "serial": pa.int64(),
    "bool": pa.bool_(),
    "json": pa.string(),
    "blob": pa.binary(),
    "float": pa.float64(),
}


def _type(table: schema.Table, column: schema.Column) -> pa.DataType:
    if column.type == "decimal":
        return PRODUCT if (table.name, column.name) in PRODUCTS else DECIMAL
    return _TYPES[column.type]


def arrow_schema(table: schema.Table) -> pa.Schema:
    fields = [pa.field(c.name, _type(table, c)) for c in table.columns]
    return pa.schema([*fields, pa.field("_exact", pa.string())])


def rows_to_arrow(table: schema.Table, rows: Sequence[Sequence[Any]]) -> pa.RecordBatch:
    """One chunk of rows (in ``table.columns`` order) as a record batch of :func:`arrow_schema`."""
    out_schema = arrow_schema(table)
    arrays: list[pa.Array] = []
    exact: list[dict[str, str] | None] = [None] * len(rows)
    for position, column in enumerate(table.columns):
        values = [row[position] for row in rows]
        kind = out_schema.field(position).type
        if column.type == "decimal":
            texts = [None if v is None else _decimal_text(v) for v in values]
            array, wide = decimal_array(texts, kind)
            for i in wide:
                entry = exact[i] = exact[i] or {}
                entry[column.name] = str(texts[i])
            arrays.append(array)
        elif column.type == "bool":
            arrays.append(pa.array([None if v is None else bool(v) for v in values], kind))
        elif column.type == "json":
            arrays.append(pa.array([_json_text(v) for v in values], kind))
        else:
            arrays.append(pa.array(values, kind))
    texts = [None if e is None else msgspec.json.encode(e).decode() for e in exact]
    arrays.append(pa.array(texts, pa.string()))
    return pa.RecordBatch.from_arrays(arrays, schema=out_schema)


def _decimal_text(value: object) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def _json_text(value: object) -> str | None:
    """Compact JSON text, whichever store it came from (PostgreSQL's jsonb adds spaces)."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return msgspec.json.encode(msgspec.json.decode(value)).decode()
        except msgspec.DecodeError:
            return value
    return msgspec.json.encode(value).decode()


def _columns_sql(table: schema.Table, present: Iterable[str]) -> str:
    """The select list: columns a store of an older schema lacks are selected as NULL."""
    have = set(present)
    return ", ".join(f'"{c.name}"' if c.name in have else "NULL" for c in table.columns)


def sqlite_table(path: Path, table: schema.Table) -> pa.Table:
    """``table`` read from the SQLite file at ``path`` (read-only, never locks writers out)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        present = [r[1] for r in db.execute(f'PRAGMA table_info("{table.name}")')]
        if not present:
            return arrow_schema(table).empty_table()
        cursor = db.execute(f'SELECT {_columns_sql(table, present)} FROM "{table.name}"')
        batches = list(_batches(table, iter(lambda: cursor.fetchmany(_CHUNK), [])))
    finally:
        db.close()
    return pa.Table.from_batches(batches, schema=arrow_schema(table))


async def postgres_table(url: str, pg_schema: str, table: schema.Table) -> pa.Table:
    """``table`` read from PostgreSQL in one read-only transaction, a chunk at a time."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        present = [
            r["column_name"]
            for r in await conn.fetch(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = $1 AND table_name = $2",
                pg_schema,
                table.name,
            )
        ]
        if not present:
            return arrow_schema(table).empty_table()
        await conn.set_type_codec("jsonb", encoder=str, decoder=str, schema="pg_catalog")
        sql = f'SELECT {_columns_sql(table, present)} FROM "{pg_schema}"."{table.name}"'
        batches: list[pa.RecordBatch] = []
        async with conn.transaction(readonly=True, isolation="repeatable_read"):
            cursor = await conn.cursor(sql)
            while rows := await cursor.fetch(_CHUNK):
                batches.append(rows_to_arrow(table, [tuple(r) for r in rows]))
    finally:
        await conn.close()
    return pa.Table.from_batches(batches, schema=arrow_schema(table))


def _batches(
    table: schema.Table, chunks: Iterator[list[Sequence[Any]]]
) -> Iterator[pa.RecordBatch]:
    for rows in chunks:
        yield rows_to_arrow(table, rows)
