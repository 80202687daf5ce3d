"""Records into SQLite rows, a group of batches per transaction.

Shared by the SQLite sink's two writers -- the writer process (default) and
the writer thread (where ``fork`` is unavailable) -- so both store exactly the
same rows and fail the same way:

* A group of batches is one transaction (group commit). ``deadline`` bounds
  it in time: once passed, the batches applied so far are committed and the
  rest wait for the next transaction, so a trade never waits behind more than
  a few milliseconds of other work.
* If a group fails on a data error, each batch is retried alone so one bad
  record cannot take good ones down with it; on any other error the whole
  group fails at once (see :func:`classify`).
"""

from __future__ import annotations

import sqlite3
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from venuefeed import schema
from venuefeed.log import get_logger
from venuefeed.models import BookSnapshot, BookState, Market
from venuefeed.sinks import rows
from venuefeed.sinks.base import InvalidRecords, RawMessage, Record, SinkUnavailable, Watermark

__all__ = ["Committer", "classify", "rollback"]

log = get_logger("venuefeed.sqlite")

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


def rollback(conn: sqlite3.Connection) -> None:
    """Roll back if a transaction is still open: after SQLITE_FULL, IOERR or NOMEM SQLite
    may already have rolled back by itself, and a second ROLLBACK would fail and replace
    the real error."""
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error as exc:  # keep the original error; this one is secondary
            log.warning("sqlite rollback failed", error=str(exc))


_INSERT = {
    t.name: schema.insert_sql(t, "sqlite", update=rows.UPSERT_COLUMNS.get(t.name, ()))
    for t in schema.TABLES
}
_INSERT_SNAPSHOT = schema.insert_sql(schema.BOOK_SNAPSHOTS, "sqlite", returning="id")
_UPSERT_WATERMARK = schema.insert_sql(schema.WATERMARKS, "sqlite", update=("value", "updated_at"))


class Committer:
    """Writes groups of batches into one connection (see the module docstring)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.commits = 0
        self.rows_written = 0
        self.last_error: str | None = None

    def commit(
        self, group: Sequence[Sequence[Record]], deadline: float | None = None
    ) -> tuple[int, list[BaseException | None]]:
        """Store the first batches of ``group``; return how many, and each one's outcome.

        At least one batch is taken; more until ``deadline`` (``time.monotonic``)
        passes. The outcome of a batch is ``None`` (durable) or the classified
        failure to report for it.
        """
        try:
            taken = self._transaction(group, deadline)
        except Exception as exc:
            failure = self._failed(exc)
            if len(group) == 1 or not isinstance(failure, InvalidRecords):
                return len(group), [failure] * len(group)  # an outage fails the whole group
            # A data error: retry each batch alone, so only the one with the bad record fails.
            outcomes: list[BaseException | None] = []
            for batch in group:
                try:
                    self._transaction([batch], None)
                except Exception as single:
                    outcomes.append(self._failed(single))
                else:
                    outcomes.append(None)
            return len(group), outcomes
        return taken, [None] * taken

    def _failed(self, exc: Exception) -> BaseException:
        failure = classify(exc)
        self.last_error = str(failure) if failure is not exc else f"{type(exc).__name__}: {exc}"
        return failure

    def _transaction(self, group: Sequence[Sequence[Record]], deadline: float | None) -> int:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        taken = count = 0
        try:
            for batch in group:
                count += self._apply(batch)
                taken += 1
                if deadline is not None and time.monotonic() >= deadline:
                    break
            conn.execute("COMMIT")
        except BaseException:
            rollback(conn)
            raise
        self.commits += 1
        self.rows_written += count
        return taken

    def _apply(self, batch: Sequence[Record]) -> int:
        conn = self.conn
        by_table: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        builders = rows.ROW_BUILDERS
        count = 0
        for record in batch:
            entry = builders.get(type(record))
            if entry is not None:
                table, build = entry
                by_table[table.name].extend(build(record))
            elif isinstance(record, BookSnapshot):
                count += self._snapshot(record)
            elif isinstance(record, Market):
                self._market(record)
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

    def _snapshot(self, snap: BookSnapshot) -> int:
        conn = self.conn
        found = conn.execute(_INSERT_SNAPSHOT, rows.snapshot_row(snap)).fetchone()
        if found is None:  # the same snapshot was stored before
            return 0
        levels = rows.level_rows(snap, int(found[0]))
        conn.executemany(_INSERT["book_levels"], levels)
        return 1 + len(levels)

    def _market(self, market: Market) -> None:
        """Insert or update a market; a changed rules/metadata digest adds a version."""
        conn = self.conn
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
