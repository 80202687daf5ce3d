"""SQLite, the embedded default store.

Why it looks like this:

* **WAL mode** so that another process (the CLI, a notebook, the dashboard)
  reads while ingestion writes, without either blocking the other.
* **A writer of its own**: by default a spawned process
  (:mod:`venuefeed.sinks.sqlite_process`), so turning records into rows and
  SQLite's work never take the event loop's interpreter lock; where spawning is
  unavailable, a thread with its own connection. Either way
  :meth:`SqliteStore.write` hands the batch over and returns only after its
  ``COMMIT``: the caller learns a batch is durable only once it is (rule 4).
* **Group commit** (:mod:`venuefeed.sinks.sqlite_commit`): the writer drains
  every batch waiting into one transaction, bounded by time (5 ms of work)
  and size. Under light load each batch commits at once (low latency); under
  heavy load commits amortise (throughput). If a group fails on a data
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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from venuefeed import schema
from venuefeed.log import get_logger
from venuefeed.models import DataGap
from venuefeed.sinks import rows
from venuefeed.sinks.base import Record, Sink, failure_text
from venuefeed.sinks.sqlite_commit import Committer, classify, rollback
from venuefeed.sinks.sqlite_process import WriterProcess, process_available

__all__ = [
    "SchemaStatus",
    "SqliteStore",
    "classify",
    "connect",
    "migrate",
    "open_reader",
    "schema_status",
]

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


def connect(
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
    conn = connect(Path(path))
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
                rollback(conn)
                raise
            applied.append(migration.version)
        return applied
    finally:
        conn.close()


def schema_status(path: str | Path) -> SchemaStatus:
    conn = connect(Path(path))
    try:
        applied = _applied(conn)
    finally:
        conn.close()
    current = max((v for v, _, _ in applied), default=0)
    return SchemaStatus(str(path), current, schema.MIGRATIONS[-1].version, tuple(applied))


WriterKind = Literal["process", "thread"]


class SqliteStore(Sink):
    """The SQLite sink. ``start()`` migrates and starts the writer (see the module docstring).

    ``writer="process"`` (the default where POSIX spawn is available) stores in a
    process of its own; ``"thread"`` in a thread of this process.
    """

    name = "sqlite"

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: Synchronous = "NORMAL",
        max_pending: int = 64,
        max_group: int = 256,
        busy_timeout: float = 5.0,
        writer: WriterKind | None = None,
        commit_seconds: float = 0.005,
    ) -> None:
        self.path = Path(path)
        self._synchronous: Synchronous = synchronous
        self._busy_timeout = busy_timeout
        self.writer_kind: WriterKind = writer or ("process" if process_available() else "thread")
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._slots = asyncio.Semaphore(max_pending)
        self._max_group = max_group
        self._commit_seconds = commit_seconds
        self._thread: threading.Thread | None = None
        self._process: WriterProcess | None = None
        self.last_error: str | None = None

    async def start(self) -> None:
        try:
            await asyncio.to_thread(migrate, self.path)
            if self.writer_kind == "thread":
                conn = await asyncio.to_thread(
                    connect, self.path, self._synchronous, self._busy_timeout
                )
        except (sqlite3.OperationalError, OSError) as exc:  # disk full, locked, unreadable
            raised = classify(exc)
            raise raised from exc
        if self.writer_kind == "process":
            self._process = WriterProcess(
                self.path, self._synchronous, self._busy_timeout,
                self._commit_seconds, self._max_group,
            )  # fmt: skip
            await self._process.start()
            return
        self._thread = threading.Thread(
            target=self._run, args=(conn,), name="venuefeed-sqlite-writer", daemon=True
        )
        self._thread.start()

    async def write(self, batch: Sequence[Record]) -> None:
        if not batch:
            return
        if self._thread is None and self._process is None:
            raise RuntimeError("SqliteStore.write before start()")
        async with self._slots:
            try:
                if self._process is not None:
                    await self._process.write(batch)
                    return
                loop = asyncio.get_running_loop()
                future: asyncio.Future[None] = loop.create_future()
                self._queue.put((batch, future, loop))
                await future
            except Exception as exc:
                self.last_error = failure_text(self.name, exc)
                raise

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
        process, self._process = self._process, None
        if process is not None:
            await process.close()
        thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(_STOP)
            await asyncio.to_thread(thread.join)

    # -- writer thread (where no process can be spawned) ---------------------------

    def _run(self, conn: sqlite3.Connection) -> None:
        committer = Committer(conn)
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
                    _, outcomes = committer.commit([batch for batch, _, _ in group])
                except Exception as exc:  # a bug here must fail these writes, not the thread
                    log.error("sqlite writer error", error=f"{type(exc).__name__}: {exc}")
                    outcomes = [exc] * len(group)
                for (_, future, loop), outcome in zip(group, outcomes, strict=True):
                    self._settle(future, loop, outcome)
                if stop:
                    return
        finally:
            conn.close()

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
