"""PostgreSQL, the store for scale: the same schema and semantics as SQLite.

Why it looks like this:

* **One schema, two dialects.** Tables, keys and migrations come from
  :mod:`venuefeed.schema`; only the rendering differs. Everything lives in one
  PostgreSQL schema (``storage.postgres_schema``) with its own
  ``schema_migrations`` table, so several installations (or tests) can share
  a database.
* **Exact decimals.** Prices and sizes are ``NUMERIC`` built with ``Decimal``
  from the canonical strings; a float never touches them.
* **One transaction per batch.** Data, market versions, snapshot levels and
  watermarks commit together, and :meth:`PostgresStore.write` returns after
  ``COMMIT`` -- so a watermark never claims data that is not stored (rule 4).
* **COPY for the big tables.** Trades, book deltas, quotes and price updates
  are copied (binary ``COPY``) into a per-connection temporary staging table
  and moved with ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``: the
  idempotent path at COPY speed. Small batches use ``executemany``, which
  costs fewer round trips below ``copy_threshold`` rows.
* **Unreachable means SinkUnavailable.** A refused connection, a dropped one
  or a timeout raises :class:`SinkUnavailable`; the batch is then spooled and
  replayed, and the idempotent writes make the replay harmless even when the
  lost connection had in fact committed.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import asyncpg

from venuefeed import metrics, schema
from venuefeed.log import get_logger
from venuefeed.models import BookSnapshot, BookState, DataGap, Market
from venuefeed.sinks import rows
from venuefeed.sinks.base import RawMessage, Record, Sink, SinkUnavailable, Watermark

__all__ = [
    "BULK_TABLES",
    "PostgresStore",
    "applied_migrations",
    "migrate",
    "resolve_url",
    "unreachable",
]

log = get_logger("venuefeed.postgres")

BULK_TABLES = frozenset({"trades", "book_deltas", "quotes", "price_updates"})
"""Tables that receive most rows; written through COPY and a staging table."""

_UNREACHABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
)


def unreachable(exc: BaseException) -> bool:
    """Does ``exc`` mean "the server is not reachable right now" (not "the data is bad")?

    ``InterfaceError`` covers both a closed connection and client-side misuse
    (``DataError`` for a bad value is one of its subclasses); only the first
    is an outage -- spooling a bad batch would retry it forever.
    """
    if isinstance(exc, _UNREACHABLE):
        return True
    return (
        isinstance(exc, asyncpg.exceptions.InterfaceError)
        and not isinstance(exc, asyncpg.exceptions.DataError)
        and "closed" in str(exc)
    )


Row = tuple[Any, ...]


def resolve_url(configured: str | None) -> str:
    """``storage.database_url``, else the conventional ``DATABASE_URL`` variable."""
    url = configured or os.environ.get("DATABASE_URL")
    if not url:
        raise ValueError("PostgreSQL sink needs storage.database_url or DATABASE_URL")
    return url


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _decimal_converter(table: schema.Table) -> Callable[[Row], Row]:
    """Row with canonical decimal strings -> row with ``Decimal`` for NUMERIC columns."""
    positions = [
        i for i, c in enumerate(c for c in table.columns if c.name != table.serial)
        if c.type == "decimal"
    ]  # fmt: skip

    def convert(row: Row) -> Row:
        values = list(row)
        for i in positions:
            if values[i] is not None:
                values[i] = Decimal(values[i])
        return tuple(values)

    return convert


_CONVERT = {t.name: _decimal_converter(t) for t in schema.TABLES}


async def _ensure_migrations_table(conn: asyncpg.Connection, pg_schema: str) -> None:
    await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote(pg_schema)}")
    await conn.execute(
        f"CREATE TABLE IF NOT EXISTS {_quote(pg_schema)}.schema_migrations ("
        "version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at BIGINT NOT NULL)"
    )


async def applied_migrations(conn: asyncpg.Connection, pg_schema: str) -> list[int]:
    found = await conn.fetchval("SELECT to_regclass($1)", f"{_quote(pg_schema)}.schema_migrations")
    if found is None:
        return []
    records = await conn.fetch(
        f"SELECT version FROM {_quote(pg_schema)}.schema_migrations ORDER BY version"
    )
    return [int(r["version"]) for r in records]


async def migrate(conn: asyncpg.Connection, pg_schema: str) -> list[int]:
    """Apply pending migrations to ``pg_schema``, each in its own transaction.

    A session advisory lock serialises concurrent starters (several processes
    starting at once); the second one finds nothing left to do. Refuses a
    schema migrated by a newer venuefeed, like the SQLite store.
    """
    lock_key = f"venuefeed-migrate:{pg_schema}"
    await conn.execute("SELECT pg_advisory_lock(hashtext($1))", lock_key)
    try:
        await _ensure_migrations_table(conn, pg_schema)
        done = set(await applied_migrations(conn, pg_schema))
        latest = schema.MIGRATIONS[-1].version
        if done and max(done) > latest:
            raise RuntimeError(
                f"schema {pg_schema}: version {max(done)} is newer than this venuefeed ({latest})"
            )
        applied: list[int] = []
        for migration in schema.MIGRATIONS:
            if migration.version in done:
                continue
            async with conn.transaction():
                for statement in migration.sql("postgres", schema=pg_schema):
                    await conn.execute(statement.replace("{schema}", _quote(pg_schema)))
                await conn.execute(
                    f"INSERT INTO {_quote(pg_schema)}.schema_migrations VALUES ($1, $2, $3)",
                    migration.version,
                    migration.description,
                    time.time_ns(),
                )
            applied.append(migration.version)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", lock_key)


class PostgresStore(Sink):
    """The PostgreSQL sink. ``start()`` migrates the schema and opens the pool."""

    name = "postgres"

    def __init__(
        self,
        url: str,
        *,
        pg_schema: str = "venuefeed",
        pool_size: int = 4,
        copy_threshold: int = 64,
        command_timeout: float = 30.0,
        connect_timeout: float = 5.0,
    ) -> None:
        self._url = url
        self.pg_schema = pg_schema
        self._pool_size = pool_size
        self.copy_threshold = copy_threshold
        self._command_timeout = command_timeout
        self._connect_timeout = connect_timeout
        self._pool: asyncpg.Pool | None = None
        self.rows_written = 0
        self.commits = 0
        q = _quote(pg_schema)
        self._insert = {
            t.name: schema.insert_sql(
                t, "postgres", update=rows.UPSERT_COLUMNS.get(t.name, ()), schema=pg_schema
            )
            for t in schema.TABLES
        }
        self._insert_snapshot = schema.insert_sql(
            schema.BOOK_SNAPSHOTS, "postgres", schema=pg_schema, returning="id"
        )
        self._upsert_watermark = schema.insert_sql(
            schema.WATERMARKS, "postgres", update=("value", "updated_at"), schema=pg_schema
        )
        self._new_market = self._insert["markets"] + ' RETURNING "version"'
        self._lock_market = (
            f'SELECT "version", "version_hash" FROM {q}.markets '
            'WHERE "venue" = $1 AND "market_id" = $2 FOR UPDATE'
        )
        market_cols = schema.MARKETS.insert_columns()
        self._market_update_cols = [
            c for c in market_cols if c not in ("venue", "market_id", "first_seen")
        ]
        sets = ", ".join(f"{_quote(c)} = ${i}" for i, c in enumerate(self._market_update_cols, 1))
        n = len(self._market_update_cols)
        self._update_market = (
            f'UPDATE {q}.markets SET {sets} WHERE "venue" = ${n + 1} AND "market_id" = ${n + 2}'
        )
        self._from_stage = {}
        for name in BULK_TABLES:
            table = schema.TABLES_BY_NAME[name]
            cols = ", ".join(_quote(c) for c in table.insert_columns())
            key = ", ".join(_quote(c) for c in table.key)
            self._from_stage[name] = (
                f"INSERT INTO {q}.{_quote(name)} ({cols}) SELECT {cols} FROM {_stage(name)} "
                f"ON CONFLICT ({key}) DO NOTHING"
            )

    async def start(self) -> None:
        try:
            conn = await asyncpg.connect(self._url, timeout=self._connect_timeout)
            try:
                applied = await migrate(conn, self.pg_schema)
            finally:
                await conn.close()
            self._pool = await asyncpg.create_pool(
                self._url,
                min_size=1,
                max_size=self._pool_size,
                init=self._init_connection,
                command_timeout=self._command_timeout,
                timeout=self._connect_timeout,
            )
        except Exception as exc:
            if unreachable(exc):
                raise SinkUnavailable(f"postgres: {type(exc).__name__}: {exc}") from exc
            raise
        if applied:
            log.info("postgres schema migrated", schema=self.pg_schema, applied=applied)

    async def _init_connection(self, conn: asyncpg.Connection) -> None:
        """Each pooled connection gets its own staging tables, emptied at every commit."""
        for name in BULK_TABLES:
            await conn.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {_stage(name)} "
                f"(LIKE {_quote(self.pg_schema)}.{_quote(name)} INCLUDING DEFAULTS) "
                "ON COMMIT DELETE ROWS"
            )

    async def write(self, batch: Sequence[Record]) -> None:
        if not batch:
            return
        if self._pool is None:
            raise SinkUnavailable("postgres: not started")
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                count = await self._apply(conn, batch)
        except Exception as exc:
            if not unreachable(exc):
                raise
            metrics.SINK_UNAVAILABLE.labels(self.name).inc()
            raise SinkUnavailable(f"postgres: {type(exc).__name__}: {exc}") from exc
        self.commits += 1
        self.rows_written += count
        metrics.SINK_RECORDS.labels(self.name).inc(len(batch))

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def _fetch(self, sql: str, *args: Any) -> list[Any]:
        if self._pool is None:
            raise SinkUnavailable("postgres: not started")
        try:
            async with self._pool.acquire() as conn:
                return list(await conn.fetch(sql, *args))
        except Exception as exc:
            if not unreachable(exc):
                raise
            raise SinkUnavailable(f"postgres: {type(exc).__name__}: {exc}") from exc

    async def read_watermarks(self, prefix: str) -> dict[str, str]:
        records = await self._fetch(
            f"SELECT key, value FROM {_quote(self.pg_schema)}.watermarks "
            "WHERE substr(key, 1, $1) = $2",
            len(prefix),
            prefix,
        )
        return {str(r["key"]): str(r["value"]) for r in records}

    async def read_open_gaps(self, venue: str) -> list[DataGap]:
        sql = rows.OPEN_GAPS_SQL.replace("data_gaps", f"{_quote(self.pg_schema)}.data_gaps")
        records = await self._fetch(sql, venue)
        return [rows.gap_from_row(venue, tuple(r)) for r in records]

    # -- one transaction ---------------------------------------------------

    async def _apply(self, conn: asyncpg.Connection, batch: Sequence[Record]) -> int:
        by_table: dict[str, list[Row]] = defaultdict(list)
        builders = rows.ROW_BUILDERS
        count = 0
        watermarks: list[Row] = []
        for record in batch:
            entry = builders.get(type(record))
            if entry is not None:
                table, build = entry
                by_table[table.name].extend(build(record))
            elif isinstance(record, BookSnapshot):
                count += await self._snapshot(conn, record)
            elif isinstance(record, Market):
                await self._market(conn, record)
                count += 1
            elif isinstance(record, Watermark):
                watermarks.append((record.key, record.value, time.time_ns()))
            elif isinstance(record, RawMessage):
                by_table["raw_messages"].append(rows.raw_row(record))
            elif isinstance(record, BookState):
                continue  # transient sync state: status and the bus carry it, tables do not
            else:
                raise TypeError(f"postgres store cannot store {type(record).__name__}")
        for name, table_rows in by_table.items():
            convert = _CONVERT[name]
            converted = [convert(r) for r in table_rows]
            if name in BULK_TABLES and len(converted) >= self.copy_threshold:
                await self._copy(conn, name, converted)
            else:
                await conn.executemany(self._insert[name], converted)
            count += len(converted)
        if watermarks:
            await conn.executemany(self._upsert_watermark, watermarks)
            count += len(watermarks)
        return count

    async def _copy(self, conn: asyncpg.Connection, name: str, table_rows: list[Row]) -> None:
        columns = schema.TABLES_BY_NAME[name].insert_columns()
        await conn.copy_records_to_table(
            _stage_name(name), records=table_rows, columns=list(columns)
        )
        await conn.execute(self._from_stage[name])

    async def _snapshot(self, conn: asyncpg.Connection, snap: BookSnapshot) -> int:
        snapshot_id = await conn.fetchval(self._insert_snapshot, *rows.snapshot_row(snap))
        if snapshot_id is None:  # the same snapshot was stored before
            return 0
        convert = _CONVERT["book_levels"]
        levels = [convert(r) for r in rows.level_rows(snap, int(snapshot_id))]
        if levels:
            await conn.executemany(self._insert["book_levels"], levels)
        return 1 + len(levels)

    async def _market(self, conn: asyncpg.Connection, market: Market) -> None:
        """Insert or update a market; a changed rules/metadata digest adds a version.

        The insert-first, then ``SELECT ... FOR UPDATE`` order makes two
        concurrent writers of the same market agree on its version number.
        """
        now = time.time_ns()
        convert_market = _CONVERT["markets"]
        convert_version = _CONVERT["market_versions"]
        created = await conn.fetchval(
            self._new_market, *convert_market(rows.market_row(market, 1, now))
        )
        if created is not None:
            await conn.execute(
                self._insert["market_versions"],
                *convert_version(rows.market_version_row(market, 1, now)),
            )
            return
        current = await conn.fetchrow(self._lock_market, market.venue, market.market_id)
        version, stored = int(current["version"]), str(current["version_hash"])
        if stored != rows.market_version_hash(market):
            version += 1
            await conn.execute(
                self._insert["market_versions"],
                *convert_version(rows.market_version_row(market, version, now)),
            )
        row = convert_market(rows.market_row(market, version, now))
        columns = schema.MARKETS.insert_columns()
        values = [row[columns.index(c)] for c in self._market_update_cols]
        await conn.execute(self._update_market, *values, market.venue, market.market_id)


def _stage_name(table: str) -> str:
    return f"_venuefeed_stage_{table}"


def _stage(table: str) -> str:
    return _quote(_stage_name(table))
