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
* **One deadline per write** (``write_timeout``, default 5 s) covers
  acquiring (or opening) a connection, writing and committing. Past it -- a
  server that stalls without closing the socket, say -- the connection is
  terminated on the spot (no ``ROLLBACK`` or cancel request that would wait
  on the same dead socket; the server rolls back when the socket goes) and
  :class:`SinkUnavailable` sends the batch to the spool. Any failure other
  than a data error terminates the connection the same way, so pooled
  connections never hang on release and closing the pool is bounded
  (``close_timeout``). Start (connect and migrate) has its own, longer bound.
* **Errors say what they are** (:func:`classify`): data and constraint
  errors (SQLSTATE classes 22 and 23, or a value the driver cannot encode)
  are :class:`InvalidRecords`; connection, resource, operator and system
  errors are :class:`SinkUnavailable`. The replay of a spooled batch is
  harmless even when the lost connection had in fact committed: writes are
  idempotent.
"""

from __future__ import annotations

import asyncio
import decimal
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
from venuefeed.sinks.base import (
    InvalidRecords,
    RawMessage,
    Record,
    Sink,
    SinkUnavailable,
    Watermark,
)

__all__ = [
    "BULK_TABLES",
    "PostgresStore",
    "applied_migrations",
    "classify",
    "migrate",
    "resolve_url",
]

log = get_logger("venuefeed.postgres")

BULK_TABLES = frozenset({"trades", "book_deltas", "quotes", "price_updates"})
"""Tables that receive most rows; written through COPY and a staging table."""

_DATA_CLASSES = frozenset({"22", "23"})
"""SQLSTATE classes caused by the data: data exception, integrity constraint violation."""
_OUTAGE_CLASSES = frozenset({"08", "25", "40", "53", "55", "57", "58", "XX"})
"""Connection, transaction state (read-only standby), rollback (serialization, deadlock),
insufficient resources (disk full), lock not available, operator intervention (shutdown,
cancel), system (I/O) and internal errors: the server's state, not the data's."""
_DRIVER_DATA_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.exceptions._base.DataError,  # a value asyncpg cannot encode for its column
    decimal.InvalidOperation,  # not a decimal
    TypeError,  # a record the store cannot map to rows
    ValueError,
)


def classify(exc: BaseException) -> BaseException:
    """The exception as the sink contract names it (:mod:`venuefeed.sinks.base`).

    :class:`InvalidRecords` for data errors, :class:`SinkUnavailable` for the
    server's or the network's state; anything else is returned unchanged
    (unclassified, which callers treat as an outage too).
    """
    if isinstance(exc, asyncpg.PostgresError):
        state = str(getattr(exc, "sqlstate", "") or "")
        text = f"{type(exc).__name__} ({state}): {exc}"
        if state[:2] in _DATA_CLASSES:
            return InvalidRecords("postgres", text)
        if state[:2] in _OUTAGE_CLASSES:
            return SinkUnavailable(f"postgres: {text}")
    elif isinstance(exc, _DRIVER_DATA_ERRORS):
        return InvalidRecords("postgres", f"{type(exc).__name__}: {exc}")
    elif isinstance(exc, TimeoutError):
        return SinkUnavailable("postgres: no answer in time (TimeoutError)")
    elif isinstance(exc, OSError | asyncpg.InterfaceError | asyncpg.InternalClientError):
        return SinkUnavailable(f"postgres: {type(exc).__name__}: {exc}")
    return exc


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
        write_timeout: float = 5.0,
        connect_timeout: float = 5.0,
        start_timeout: float = 60.0,
        close_timeout: float = 5.0,
    ) -> None:
        self._url = url
        self.pg_schema = pg_schema
        self._pool_size = pool_size
        self.copy_threshold = copy_threshold
        self._write_timeout = write_timeout
        self._connect_timeout = min(connect_timeout, write_timeout)
        self._start_timeout = max(start_timeout, write_timeout)
        self._close_timeout = close_timeout
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
        conn: asyncpg.Connection | None = None
        pool: asyncpg.Pool | None = None
        try:
            async with asyncio.timeout(self._start_timeout):
                conn = await asyncpg.connect(self._url, timeout=self._connect_timeout)
                applied = await migrate(conn, self.pg_schema)
                pool = await asyncpg.create_pool(
                    self._url,
                    # No floor: asyncpg would keep reconnecting in the background (and log
                    # tracebacks) while the server is down; a write opens what it needs.
                    min_size=0,
                    max_size=self._pool_size,
                    init=self._init_connection,
                    reset=_keep_session,
                    timeout=self._connect_timeout,
                )
        except Exception as exc:
            if pool is not None:
                pool.terminate()
            failure = classify(exc)
            if isinstance(failure, SinkUnavailable):
                raise failure from exc
            raise
        finally:
            if conn is not None:
                conn.terminate()  # its work is committed; no need to wait for a goodbye
        self._pool = pool
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
        pool = self._pool
        if pool is None:
            raise SinkUnavailable("postgres: not started")
        try:
            count = await self._transaction(pool, batch)
        except Exception as exc:
            failure = classify(exc)
            if isinstance(failure, SinkUnavailable):
                metrics.SINK_UNAVAILABLE.labels(self.name).inc()
            if failure is exc:
                raise
            raise failure from exc
        self.commits += 1
        self.rows_written += count
        metrics.SINK_RECORDS.labels(self.name).inc(len(batch))

    async def _transaction(self, pool: asyncpg.Pool, batch: Sequence[Record]) -> int:
        """One transaction within the deadline; on any failure the connection is terminated."""
        conn: Any = None
        try:
            async with asyncio.timeout(self._write_timeout):
                conn = await pool.acquire()
                transaction = conn.transaction()
                await transaction.start()
                count = await self._apply(conn, batch)
                await transaction.commit()
        except BaseException as exc:
            if conn is not None:
                conn.terminate()  # the server rolls back; nothing waits on this socket again
            if isinstance(exc, TimeoutError):
                raise SinkUnavailable(
                    f"postgres: no answer within {self._write_timeout:g} s (write deadline)"
                ) from exc
            raise
        finally:
            if conn is not None:
                await pool.release(conn)  # local work only: see _keep_session
        return count

    async def _fetch(self, sql: str, *args: Any) -> list[Any]:
        """A read within the write deadline, failing as the sink contract names it."""
        pool = self._pool
        if pool is None:
            raise SinkUnavailable("postgres: not started")
        try:
            async with asyncio.timeout(self._write_timeout):
                return list(await pool.fetch(sql, *args))
        except Exception as exc:
            raise classify(exc) from exc

    async def read_watermarks(self, prefix: str) -> dict[str, str]:
        sql = (
            f"SELECT key, value FROM {_quote(self.pg_schema)}.watermarks "
            "WHERE substr(key, 1, length($1)) = $1"
        )
        return {str(r["key"]): str(r["value"]) for r in await self._fetch(sql, prefix)}

    async def close(self) -> None:
        """Close the pool gracefully within ``close_timeout``, else terminate it."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), self._close_timeout)
        except Exception as exc:  # a stalled server: do not wait for its goodbye
            pool.terminate()
            log.warning("postgres pool terminated at close", error=f"{type(exc).__name__}: {exc}")

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


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool reset on release: nothing to reset.

    asyncpg's default sends ``RESET ALL`` and friends -- a round trip per
    write, and one that would wait forever on a stalled socket. Our sessions
    hold no state to reset (the staging tables are meant to persist), and a
    failed write terminates its connection instead of returning it.
    """


def _stage_name(table: str) -> str:
    return f"_venuefeed_stage_{table}"


def _stage(table: str) -> str:
    return _quote(_stage_name(table))
