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
  under heavy load commits amortise (throughput). If a group fails on a data
  error, each batch is retried alone so one bad record cannot take good ones
  down with it; on any other error the whole group fails at once.
* **Errors say what they are** (:func:`classify`). A constraint or data error
  caused by a record is :class:`InvalidRecords` (the caller bisects it down to
  that record); disk full, I/O errors, a locked or read-only database are
  :class:`SinkUnavailable` with the real cause (``"sqlite: disk full"``). When
  SQLite already rolled the transaction back itself (it does on a full disk),
  no second ``ROLLBACK`` is issued -- that one would fail and hide the cause.
* **Bounded**: at most ``max_pending`` batches wait for the thread; further
  writers wait (backpressure), they do not pile up memory (rule 5).
* **A lock is waited for** ``busy_timeout`` (5 s), then the write fails as
  ``"sqlite: database locked"`` and the batch goes to the spool: another
  writer holding the database (a long transaction, a checkpoint) delays
  storage, never intake.
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
from venuefeed.sinks.base import (
    InvalidRecords,
    RawMessage,
    Record,
    Sink,
    SinkUnavailable,
    Watermark,
)

__all__ = ["SchemaStatus", "SqliteStore", "classify", "migrate", "open_reader", "schema_status"]

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


def _connect(
    path: Path, synchronous: Synchronous = "NORMAL", busy_timeout: float = 30.0
) -> sqlite3.Connection:
    if str(path) != ":memory:":
        path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=busy_timeout
    )
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
    return conn


def open_reader(path: str | Path) -> sqlite3.Connection:
    """A read-only connection that never blocks (or is blocked by) the writer."""
    conn = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout=5000")
    conn.row_factory = sqlite3.Row
    return conn


_CAUSES = {
    "SQLITE_FULL": "disk full",
    "SQLITE_IOERR": "I/O error",
    "SQLITE_BUSY": "database locked",
    "SQLITE_LOCKED": "database locked",
    "SQLITE_READONLY": "database read-only",
    "SQLITE_CANTOPEN": "cannot open the database file",
    "SQLITE_CORRUPT": "database corrupt",
    "SQLITE_NOTADB": "not a database",
    "SQLITE_NOMEM": "out of memory",
    "SQLITE_PERM": "permission denied",
    "SQLITE_PROTOCOL": "locking protocol error",
}
"""Primary result code -> what an operator reads first (extended codes map to their primary)."""

_DATA_ERRORS: tuple[type[BaseException], ...] = (
    sqlite3.IntegrityError,  # a NOT NULL / CHECK / UNIQUE constraint refused the row
    sqlite3.DataError,  # a value too big for SQLite
    OverflowError,  # an integer beyond 64 bits
    TypeError,  # a record the store cannot map to rows
    ValueError,
)


def classify(exc: BaseException) -> BaseException:
    """The exception as the sink contract names it (:mod:`venuefeed.sinks.base`).

    Data errors become :class:`InvalidRecords`; what SQLite reports about the
    database or the disk becomes :class:`SinkUnavailable` with a readable
    cause. Anything else is returned unchanged: unclassified, which callers
    treat as an outage too.
    """
    if isinstance(exc, _DATA_ERRORS):
        return InvalidRecords("sqlite", f"{type(exc).__name__}: {exc}")
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorname", None) or ""
        primary = "_".join(code.split("_")[:2])
        cause = _CAUSES.get(primary, code or type(exc).__name__)
        return SinkUnavailable(f"sqlite: {cause} ({code or type(exc).__name__}: {exc})")
    if isinstance(exc, OSError | MemoryError):
        return SinkUnavailable(f"sqlite: {type(exc).__name__}: {exc}")
    return exc


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back if a transaction is still open: after SQLITE_FULL, IOERR or NOMEM SQLite
    may already have rolled back by itself, and a second ROLLBACK would fail and replace
    the real error."""
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error as exc:  # keep the original error; this one is secondary
            log.warning("sqlite rollback failed", error=str(exc))


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
                _rollback(conn)
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
        busy_timeout: float = 5.0,
    ) -> None:
        self.path = Path(path)
        self._synchronous: Synchronous = synchronous
        self._busy_timeout = busy_timeout
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._slots = asyncio.Semaphore(max_pending)
        self._max_group = max_group
        self._thread: threading.Thread | None = None
        self.commits = 0
        self.rows_written = 0
        self.last_error: str | None = None

    async def start(self) -> None:
        try:
            await asyncio.to_thread(migrate, self.path)
            conn = await asyncio.to_thread(
                _connect, self.path, self._synchronous, self._busy_timeout
            )
        except (sqlite3.OperationalError, OSError) as exc:  # disk full, locked, unreadable
            raised = classify(exc)
            raise raised from exc
        self._thread = threading.Thread(
            target=self._run, args=(conn,), name="venuefeed-sqlite-writer", daemon=True
        )
        self._thread.start()

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

    def _run(self, conn: sqlite3.Connection) -> None:
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
                try:
                    self._commit_group(conn, group)
                except Exception as exc:  # a bug here must fail these writes, not the thread
                    log.error("sqlite writer error", error=f"{type(exc).__name__}: {exc}")
                    for _, future, loop in group:
                        self._settle(future, loop, exc)
                if stop:
                    return
        finally:
            conn.close()

    def _commit_group(self, conn: sqlite3.Connection, group: list[Any]) -> None:
        try:
            self._transaction(conn, [batch for batch, _, _ in group])
        except Exception as exc:
            failure = self._failed(exc)
            if len(group) == 1 or not isinstance(failure, InvalidRecords):
                for _, future, loop in group:  # an outage fails every batch of the group
                    self._settle(future, loop, failure)
                return
            # A data error: retry each batch alone, so only the one with the bad record fails.
            for batch, future, loop in group:
                try:
                    self._transaction(conn, [batch])
                except Exception as single:
                    self._settle(future, loop, self._failed(single))
                else:
                    self._settle(future, loop, None)
            return
        for _, future, loop in group:
            self._settle(future, loop, None)

    def _failed(self, exc: Exception) -> BaseException:
        failure = classify(exc)
        self.last_error = str(failure) if failure is not exc else f"{type(exc).__name__}: {exc}"
        return failure

    @staticmethod
    def _settle(
        future: asyncio.Future[None], loop: asyncio.AbstractEventLoop, exc: BaseException | None
    ) -> None:  # from the writer thread
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
            _rollback(conn)
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
