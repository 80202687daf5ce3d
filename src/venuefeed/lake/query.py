"""SQL over everything venuefeed stored: DuckDB on the Parquet lake and the SQL store.

Names a query can use:

* ``lake.<table>`` -- the Parquet lake (``storage.parquet_root``): every
  table folder, read with its ``venue`` and ``date`` partition columns.
* ``store.<table>`` -- the SQLite or PostgreSQL store, every table of
  :mod:`venuefeed.schema`, typed like the lake (:mod:`venuefeed.lake.store_arrow`).
* ``trades``, ``books``, ``book_levels``, ``book_deltas``, ``candles``,
  ``quotes``, ``gaps``, ``markets`` -- convenience views over the store when
  there is one, else over the lake. ``books`` is one row per book snapshot
  with its ``bids`` and ``asks`` as lists of ``{price, size}``, best first,
  whichever side it comes from.

Only the store tables a query names are read (the lake is scanned lazily by
DuckDB itself). Everything is read-only: the store is opened read-only and
DuckDB runs in memory.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import duckdb
import pyarrow as pa

from venuefeed import schema
from venuefeed.lake.store_arrow import postgres_table, sqlite_table

__all__ = ["CONVENIENCE", "Catalog", "QueryError", "StoreSource"]

CONVENIENCE: dict[str, str] = {
    "trades": "trades",
    "books": "book_snapshots",
    "book_levels": "book_levels",
    "book_deltas": "book_deltas",
    "candles": "candles",
    "quotes": "quotes",
    "gaps": "data_gaps",
    "markets": "markets",
}
"""Unqualified view -> the table it shows."""

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class QueryError(Exception):
    """The query could not run; the message is DuckDB's, one line."""


@dataclass(frozen=True)
class StoreSource:
    """Where the SQL store is: a SQLite file, or a PostgreSQL URL and schema."""

    kind: Literal["sqlite", "postgres"]
    sqlite_path: Path | None = None
    database_url: str | None = None
    pg_schema: str = "venuefeed"

    def read(self, table: schema.Table) -> pa.Table:
        if self.kind == "sqlite":
            assert self.sqlite_path is not None
            return sqlite_table(self.sqlite_path, table)
        assert self.database_url is not None
        return asyncio.run(postgres_table(self.database_url, self.pg_schema, table))


class Catalog:
    """A DuckDB connection with the lake and store views of one query."""

    def __init__(self, parquet_root: Path | None, store: StoreSource | None) -> None:
        self.parquet_root = parquet_root
        self.store = store
        self.con = duckdb.connect(":memory:")
        self.lake_tables = self._lake_tables()

    def _lake_tables(self) -> list[str]:
        root = self.parquet_root
        if root is None or not root.is_dir():
            return []
        return sorted(
            d.name
            for d in root.iterdir()
            if d.is_dir() and not d.name.startswith(("_", ".")) and any(d.rglob("*.parquet"))
        )

    def prepare(self, sql: str) -> None:
        """Create the views ``sql`` can name; read only the store tables it mentions."""
        words = {w.lower() for w in _WORD.findall(sql)}
        con = self.con
        root = self.parquet_root
        if root is not None and self.lake_tables:
            con.execute("CREATE SCHEMA IF NOT EXISTS lake")
            for name in self.lake_tables:
                pattern = str(root / name / "**" / "*.parquet").replace("'", "''")
                con.execute(
                    f'CREATE OR REPLACE VIEW lake."{name}" AS SELECT * FROM read_parquet('
                    f"'{pattern}', hive_partitioning = true, union_by_name = true)"
                )
        if self.store is not None:
            con.execute("CREATE SCHEMA IF NOT EXISTS store")
            wanted = {n for n in schema.TABLES_BY_NAME if n in words}
            wanted |= {CONVENIENCE[w] for w in words if w in CONVENIENCE}
            if "book_snapshots" in wanted:
                wanted.add("book_levels")
            for name in sorted(wanted):
                arrow = self.store.read(schema.TABLES_BY_NAME[name])
                con.register(f"__store_{name}", arrow)
                con.execute(
                    f'CREATE OR REPLACE VIEW store."{name}" AS SELECT * FROM "__store_{name}"'
                )
            if "book_snapshots" in wanted:
                con.execute(_STORE_BOOKS)
        self._convenience(words)

    def _convenience(self, words: set[str]) -> None:
        for view, table in CONVENIENCE.items():
            if view not in words:
                continue
            if self.store is not None:
                source = "store.books" if view == "books" else f'store."{table}"'
            elif table in self.lake_tables:
                source = f'lake."{table}"'
            else:
                continue
            self.con.execute(f'CREATE OR REPLACE VIEW "{view}" AS SELECT * FROM {source}')

    def run(self, sql: str) -> pa.Table:
        self.prepare(sql)
        try:
            relation = self.con.sql(sql)
            return relation.to_arrow_table() if relation is not None else pa.table({})
        except duckdb.Error as exc:
            raise QueryError(" ".join(str(exc).split())) from None

    def close(self) -> None:
        self.con.close()


_STORE_BOOKS = """
CREATE OR REPLACE VIEW store.books AS
SELECT s.venue, s.instrument, s.ts_venue, s.ts_recv, s.sequence, s.checksum, s.digest,
       coalesce(list(struct_pack(price := l.price, size := l.size) ORDER BY l.level)
                FILTER (WHERE l.side = 'bid'), []) AS bids,
       coalesce(list(struct_pack(price := l.price, size := l.size) ORDER BY l.level)
                FILTER (WHERE l.side = 'ask'), []) AS asks
FROM store.book_snapshots s LEFT JOIN store.book_levels l ON l.snapshot_id = s.id
GROUP BY ALL
"""
