"""SQLite, the embedded default store.

Why it looks like this:

* **WAL mode** so that another process (the CLI, a notebook, the dashboard)
  reads while ingestion writes, without either blocking the other.
* **One writer thread** with its own connection. ``sqlite3`` calls block, and
  the event loop must never block, so :meth:`SqliteStore.write` hands the
  batch over and awaits a future the thread resolves after ``COMMIT``. The
  caller therefore learns a batch is durable only once it is (rule 4).
* **Group commit**: the thread drains every batch waiting in the queue into one
  transaction. Under light load each batch commits at once (low latency);
  under heavy load commits amortise (throughput). If a group fails, each batch
  is retried alone so one bad record cannot take good ones down with it.
* **Bounded**: at most ``max_pending`` batches wait for the thread; further
  writers wait (backpressure), they do not pile up memory (rule 5).
* ``synchronous=NORMAL`` in WAL survives a crash of the process (what we
  guard against); ``FULL`` adds an fsync per commit for power-loss safety at
  a latency cost. It is configurable.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from venuefeed import schema
from venuefeed.log import get_logger
from venuefeed.models import BookSnapshot, BookState, DataGap, Market
from venuefeed.sinks import rows
from venuefeed.sinks.base import RawMessage, Record, Sink, Watermark

__all__ = ["SchemaStatus", "SqliteStore", "migrate", "open_reader", "schema_status"]

log = get_logger("venuefeed.sqlite")

Synchronous = Literal["OFF", "NORMAL", "FULL"]
_STOP = object()


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    path: str
    current: int
    latest: int
    applied: tuple[tuple[int, str, int], ...]
    """(version, description, applied_at ns) of each applied migration."""

    @property
    def pending(self) -> tuple[int, ...]:
        return tuple(m.version for m in schema.MIGRATIONS if m.version > self.current)


def _connect(path: Path, synchronous: Synchronous = "NORMAL") -> sqlite3.Connection:
    if str(path) != ":memory:":
        path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def open_reader(path: str | Path) -> sqlite3.Connection:
    """A read-only connection that never blocks (or is blocked by) the writer."""
    conn = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout=5000")
    conn.row_factory = sqlite3.Row
    return conn


_MIGRATIONS_TABLE = """CREATE TABLE IF NOT EXISTS schema_migrations (
  version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at INTEGER NOT NULL)"""


def _applied(conn: sqlite3.Connection) -> list[tuple[int, str, int]]:
    conn.execute(_MIGRATIONS_TABLE)
    cur = conn.execute(
        "SELECT version, description, applied_at FROM schema_migrations ORDER BY version"
    )
    return [(int(v), str(d), int(a)) for v, d, a in cur.fetchall()]


def migrate(path: str | Path) -> list[int]:
    """Apply pending migrations in order, each in its own transaction; return those applied.

    Running it again applies nothing. Refuses a database migrated by a newer
    venuefeed (its version is above ours), rather than guessing.
    """
    conn = _connect(Path(path))
    try:
        done = {v for v, _, _ in _applied(conn)}
        latest = schema.MIGRATIONS[-1].version
        if done and max(done) > latest:
            raise RuntimeError(
                f"{path}: schema version {max(done)} is newer than this venuefeed ({latest})"
            )
        applied: list[int] = []
        for migration in schema.MIGRATIONS:
            if migration.version in done:
                continue
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in migration.sql("sqlite"):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                    (migration.version, migration.description, time.time_ns()),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            applied.append(migration.version)
        return applied
    finally:
        conn.close()


def schema_status(path: str | Path) -> SchemaStatus:
    conn = _connect(Path(path))
    try:
        applied = _applied(conn)
    finally:
        conn.close()
    current = max((v for v, _, _ in applied), default=0)
    return SchemaStatus(str(path), current, schema.MIGRATIONS[-1].version, tuple(applied))


_INSERT = {
    t.name: schema.insert_sql(t, "sqlite", update=rows.UPSERT_COLUMNS.get(t.name, ()))
    for t in schema.TABLES
}
_INSERT_SNAPSHOT = schema.insert_sql(schema.BOOK_SNAPSHOTS, "sqlite", returning="id")
_UPSERT_WATERMARK = schema.insert_sql(schema.WATERMARKS, "sqlite", update=("value", "updated_at"))


class SqliteStore(Sink):
    """The SQLite sink. ``start()`` migrates and starts the writer thread."""

    name = "sqlite"

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: Synchronous = "NORMAL",
        max_pending: int = 64,
        max_group: int = 256,
    ) -> None:
        self.path = Path(path)
        self._synchronous: Synchronous = synchronous
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._slots = asyncio.Semaphore(max_pending)
        self._max_group = max_group
        self._thread: threading.Thread | None = None
        self.commits = 0
        self.rows_written = 0
        self.last_error: str | None = None

    async def start(self) -> None:
        await asyncio.to_thread(migrate, self.path)
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="venuefeed-sqlite-writer", daemon=True
        )
        self._thread.start()
        await asyncio.to_thread(ready.wait)

    async def write(self, batch: Sequence[Record]) -> None:
        if not batch:
            return
        if self._thread is None:
            raise RuntimeError("SqliteStore.write before start()")
        loop = asyncio.get_running_loop()
        async with self._slots:
            future: asyncio.Future[None] = loop.create_future()
            self._queue.put((batch, future, loop))
            await future

    async def read_watermarks(self, prefix: str) -> dict[str, str]:
        def read() -> dict[str, str]:
            conn = open_reader(self.path)
            try:
                cur = conn.execute(
                    "SELECT key, value FROM watermarks WHERE substr(key, 1, ?) = ?",
                    (len(prefix), prefix),
                )
                return {str(k): str(v) for k, v in cur.fetchall()}
            finally:
                conn.close()

        return await asyncio.to_thread(read)

    async def read_open_gaps(self, venue: str) -> list[DataGap]:
        def read() -> list[DataGap]:
            conn = open_reader(self.path)
            try:
                cur = conn.execute(rows.OPEN_GAPS_SQL.replace("$1", "?"), (venue,))
                return [rows.gap_from_row(venue, tuple(r)) for r in cur.fetchall()]
            finally:
                conn.close()

        return await asyncio.to_thread(read)

    async def close(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(_STOP)
            await asyncio.to_thread(thread.join)

    # -- writer thread -----------------------------------------------------

    def _run(self, ready: threading.Event) -> None:
        conn = _connect(self.path, self._synchronous)
        ready.set()
        try:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    return
                group = [item]
                stop = False
                while len(group) < self._max_group:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is _STOP:
                        stop = True
                        break
                    group.append(more)
                self._commit_group(conn, group)
                if stop:
                    return
        finally:
            conn.close()

    def _commit_group(self, conn: sqlite3.Connection, group: list[Any]) -> None:
        try:
            self._transaction(conn, [batch for batch, _, _ in group])
        except Exception as exc:
            if len(group) == 1:
                batch, future, loop = group[0]
                self._settle(future, loop, self._failed(exc, batch))
                return
            # Retry each batch alone: only the one with the bad record fails.
            for batch, future, loop in group:
                try:
                    self._transaction(conn, [batch])
                except Exception as single:
                    self._settle(future, loop, self._failed(single, batch))
                else:
                    self._settle(future, loop, None)
            return
        for _, future, loop in group:
            self._settle(future, loop, None)

    def _failed(self, exc: Exception, batch: Sequence[Record]) -> Exception:
        self.last_error = f"{type(exc).__name__}: {exc}"
        log.error("sqlite batch failed", error=self.last_error, records=len(batch))
        return exc

    @staticmethod
    def _settle(
        future: asyncio.Future[None], loop: asyncio.AbstractEventLoop, exc: BaseException | None
    ) -> None:
        def settle() -> None:
            if future.done():
                return
            if exc is None:
                future.set_result(None)
            else:
                future.set_exception(exc)

        loop.call_soon_threadsafe(settle)

    def _transaction(self, conn: sqlite3.Connection, batches: list[Sequence[Record]]) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            count = 0
            for batch in batches:
                count += self._apply(conn, batch)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self.commits += 1
        self.rows_written += count

    def _apply(self, conn: sqlite3.Connection, batch: Sequence[Record]) -> int:
        by_table: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        builders = rows.ROW_BUILDERS
        count = 0
        for record in batch:
            entry = builders.get(type(record))
            if entry is not None:
                table, build = entry
                by_table[table.name].extend(build(record))
            elif isinstance(record, BookSnapshot):
                count += self._snapshot(conn, record)
            elif isinstance(record, Market):
                self._market(conn, record)
                count += 1
            elif isinstance(record, Watermark):
                conn.execute(_UPSERT_WATERMARK, (record.key, record.value, time.time_ns()))
                count += 1
            elif isinstance(record, RawMessage):
                by_table["raw_messages"].append(rows.raw_row(record))
            elif isinstance(record, BookState):
                continue  # transient sync state: status and the bus carry it, tables do not
            else:
                raise TypeError(f"sqlite store cannot store {type(record).__name__}")
        for name, table_rows in by_table.items():
            conn.executemany(_INSERT[name], table_rows)
            count += len(table_rows)
        return count

    @staticmethod
    def _snapshot(conn: sqlite3.Connection, snap: BookSnapshot) -> int:
        found = conn.execute(_INSERT_SNAPSHOT, rows.snapshot_row(snap)).fetchone()
        if found is None:  # the same snapshot was stored before
            return 0
        levels = rows.level_rows(snap, int(found[0]))
        conn.executemany(_INSERT["book_levels"], levels)
        return 1 + len(levels)

    @staticmethod
    def _market(conn: sqlite3.Connection, market: Market) -> None:
        """Insert or update a market; a changed rules/metadata digest adds a version."""
        now = time.time_ns()
        digest = rows.market_version_hash(market)
        current = conn.execute(
            "SELECT version, version_hash FROM markets WHERE venue = ? AND market_id = ?",
            (market.venue, market.market_id),
        ).fetchone()
        if current is None:
            conn.execute(_INSERT["markets"], rows.market_row(market, 1, now))
            conn.execute(_INSERT["market_versions"], rows.market_version_row(market, 1, now))
            return
        version, stored = int(current[0]), str(current[1])
        if stored != digest:
            version += 1
            conn.execute(_INSERT["market_versions"], rows.market_version_row(market, version, now))
        row = rows.market_row(market, version, now)
        columns = schema.MARKETS.insert_columns()
        update = [c for c in columns if c not in ("venue", "market_id", "first_seen")]
        values = [row[columns.index(c)] for c in update]
        assignments = ", ".join(f'"{c}" = ?' for c in update)
        conn.execute(
            f"UPDATE markets SET {assignments} WHERE venue = ? AND market_id = ?",
            (*values, market.venue, market.market_id),
        )
