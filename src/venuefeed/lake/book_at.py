"""An instrument's book at any past instant, rebuilt from what was stored.

The start is the newest stored snapshot at or before the instant; then every
stored delta from that snapshot's receive time up to the instant is applied.
Two properties of the data make this exact:

* **Deltas carry absolute sizes** (every venue's; Kalshi's increments are
  turned into sizes by the live book before a delta is emitted). Applying a
  delta the snapshot already contains is harmless, so starting at the
  snapshot's own time -- rather than guessing which deltas of that
  nanosecond it holds -- gives the same book.
* **A stored snapshot is the live book** at its receive time (the pipeline
  stores the stream's book, stamped with the time of the last event it
  applied), and after a resync the fresh snapshot is stored at once.

What it cannot know is what the snapshot left out: it holds the top
``ingestion.book_depth`` levels. A side with fewer levels than that was
complete; otherwise levels beyond its worst price are unknown, and a level
a delta adds out there is not shown, because the levels between would be
missing. The result says how deep each side is known. Instants between
stored snapshots without stored deltas (``ingestion.store_book_deltas``
off) give the snapshot's book and say so.

The source is a :class:`BookHistory`: :class:`SqliteHistory` reads the
SQLite store as it goes; PostgreSQL is read asynchronously, so
:func:`postgres_history` reads the one snapshot and the changes after it
first and answers from memory (:class:`LoadedHistory`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from venuefeed import exact
from venuefeed.book import price_key
from venuefeed.models import BookLevel, BookSnapshot

__all__ = [
    "BookAt",
    "BookHistory",
    "LevelChange",
    "LoadedHistory",
    "SqliteHistory",
    "book_at",
    "postgres_history",
]


@dataclass(frozen=True, slots=True)
class LevelChange:
    """One level of a stored delta: ``size`` is absolute, zero removes the level."""

    ts_recv: int
    side: str
    price: str
    size: str


class BookHistory(Protocol):
    def snapshot_at(self, venue: str, instrument: str, at: int) -> BookSnapshot | None:
        """The newest snapshot with ``ts_recv <= at``."""
        ...

    def changes(self, venue: str, instrument: str, start: int, end: int) -> Iterable[LevelChange]:
        """Level changes with ``start <= ts_recv <= end``, in the order they were applied."""
        ...


@dataclass
class BookAt:
    venue: str
    instrument: str
    at: int
    snapshot_ts: int
    """Receive time of the snapshot the book was rebuilt from."""
    changes: int
    """Level changes applied on top of it."""
    bids: list[BookLevel] = field(default_factory=list)
    asks: list[BookLevel] = field(default_factory=list)
    bids_complete: bool = False
    asks_complete: bool = False
    """A complete side shows every level; otherwise only those down to the snapshot's worst."""

    def top(self, depth: int) -> tuple[list[BookLevel], list[BookLevel]]:
        return self.bids[:depth], self.asks[:depth]


class _Side:
    """Levels keyed by price, and the worst price still known (None: all of them)."""

    def __init__(self, levels: Sequence[BookLevel], complete: bool, best_high: bool) -> None:
        self.best_high = best_high
        self.levels: dict[float, BookLevel] = {}
        for level in levels:  # stored prices are checked text: a key is never missing
            key = price_key(level.price)
            if key is not None and not _zero(level.size):
                self.levels[key] = level
        self.frontier: float | None = None
        if not complete and self.levels:
            self.frontier = min(self.levels) if best_high else max(self.levels)

    def set(self, price: str, size: str) -> None:
        key = price_key(price)
        if key is None:
            return
        if _zero(size):
            self.levels.pop(key, None)
        elif self._known(key):
            self.levels[key] = BookLevel(price, size)

    def _known(self, key: float) -> bool:
        frontier = self.frontier
        if frontier is None:
            return True
        return key >= frontier if self.best_high else key <= frontier

    def best_first(self) -> list[BookLevel]:
        keys = sorted(self.levels, reverse=self.best_high)
        return [
            BookLevel(exact.canon(self.levels[k].price), exact.canon(self.levels[k].size))
            for k in keys
        ]


def _zero(size: str) -> bool:
    return not size.strip("0.")


def book_at(
    history: BookHistory, venue: str, instrument: str, at: int, *, snapshot_depth: int
) -> BookAt | None:
    """The book of ``instrument`` at ``at`` (ns, receive time), or None before any snapshot.

    ``snapshot_depth`` is how many levels a side of a stored snapshot holds at
    most (``ingestion.book_depth``): a side with fewer was complete.
    """
    snap = history.snapshot_at(venue, instrument, at)
    if snap is None:
        return None
    bids = _Side(snap.bids, len(snap.bids) < snapshot_depth, best_high=True)
    asks = _Side(snap.asks, len(snap.asks) < snapshot_depth, best_high=False)
    applied = 0
    for change in history.changes(venue, instrument, snap.ts_recv, at):
        (bids if change.side == "bid" else asks).set(change.price, change.size)
        applied += 1
    return BookAt(
        venue=venue, instrument=instrument, at=at, snapshot_ts=snap.ts_recv, changes=applied,
        bids=bids.best_first(), asks=asks.best_first(),
        bids_complete=bids.frontier is None, asks_complete=asks.frontier is None,
    )  # fmt: skip


class SqliteHistory:
    """:class:`BookHistory` over the SQLite store (read-only)."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)

    def close(self) -> None:
        self._db.close()

    def snapshot_at(self, venue: str, instrument: str, at: int) -> BookSnapshot | None:
        row = self._db.execute(
            "SELECT id, ts_venue, ts_recv, sequence, checksum FROM book_snapshots "
            "WHERE venue = ? AND instrument = ? AND ts_recv <= ? "
            "ORDER BY ts_recv DESC, id DESC LIMIT 1",
            (venue, instrument, at),
        ).fetchone()
        if row is None:
            return None
        snapshot_id, ts_venue, ts_recv, sequence, checksum = row
        sides: dict[str, list[BookLevel]] = {"bid": [], "ask": []}
        for side, price, size in self._db.execute(
            "SELECT side, price, size FROM book_levels WHERE snapshot_id = ? ORDER BY side, level",
            (snapshot_id,),
        ):
            sides[side].append(BookLevel(price, size))
        return BookSnapshot(
            venue=venue, instrument=instrument, ts_venue=ts_venue, ts_recv=ts_recv,
            bids=sides["bid"], asks=sides["ask"], sequence=None if sequence == -1 else sequence,
            checksum=checksum,
        )  # fmt: skip

    def changes(self, venue: str, instrument: str, start: int, end: int) -> Iterable[LevelChange]:
        rows = self._db.execute(
            "SELECT ts_recv, side, price, size FROM book_deltas "
            "WHERE venue = ? AND instrument = ? AND ts_recv BETWEEN ? AND ? "
            "ORDER BY ts_recv, rowid",
            (venue, instrument, start, end),
        )
        for ts_recv, side, price, size in rows:
            yield LevelChange(ts_recv, side, price, size)


@dataclass
class LoadedHistory:
    """:class:`BookHistory` of one instrument at one instant, read beforehand."""

    snapshot: BookSnapshot | None
    level_changes: list[LevelChange]

    def snapshot_at(self, venue: str, instrument: str, at: int) -> BookSnapshot | None:
        snap = self.snapshot
        if snap is None or (snap.venue, snap.instrument) != (venue, instrument):
            return None
        return snap if snap.ts_recv <= at else None

    def changes(self, venue: str, instrument: str, start: int, end: int) -> Iterable[LevelChange]:
        return [c for c in self.level_changes if start <= c.ts_recv <= end]


async def postgres_history(
    url: str, pg_schema: str, venue: str, instrument: str, at: int
) -> LoadedHistory:
    """What :func:`book_at` needs from the PostgreSQL store for ``instrument`` at ``at``.

    Read in one read-only transaction. Changes of one receive time are applied
    in the order the rows were written (``ctid``): a table only appended to
    keeps it.
    """
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction(readonly=True, isolation="repeatable_read"):
            row = await conn.fetchrow(
                "SELECT id, ts_venue, ts_recv, sequence, checksum "
                f'FROM "{pg_schema}".book_snapshots '
                "WHERE venue = $1 AND instrument = $2 AND ts_recv <= $3 "
                "ORDER BY ts_recv DESC, id DESC LIMIT 1",
                venue, instrument, at,
            )  # fmt: skip
            if row is None:
                return LoadedHistory(None, [])
            sides: dict[str, list[BookLevel]] = {"bid": [], "ask": []}
            for level in await conn.fetch(
                f'SELECT side, price, size FROM "{pg_schema}".book_levels '
                "WHERE snapshot_id = $1 ORDER BY side, level",
                row["id"],
            ):
                sides[level["side"]].append(BookLevel(_text(level["price"]), _text(level["size"])))
            deltas = await conn.fetch(
                f'SELECT ts_recv, side, price, size FROM "{pg_schema}".book_deltas '
                "WHERE venue = $1 AND instrument = $2 AND ts_recv BETWEEN $3 AND $4 "
                "ORDER BY ts_recv, ctid",
                venue, instrument, row["ts_recv"], at,
            )  # fmt: skip
    finally:
        await conn.close()
    sequence = row["sequence"]
    snapshot = BookSnapshot(
        venue=venue, instrument=instrument, ts_venue=row["ts_venue"], ts_recv=row["ts_recv"],
        bids=sides["bid"], asks=sides["ask"], sequence=None if sequence == -1 else sequence,
        checksum=row["checksum"],
    )  # fmt: skip
    changes = [LevelChange(d["ts_recv"], d["side"], _text(d["price"]), _text(d["size"]))
               for d in deltas]  # fmt: skip
    return LoadedHistory(snapshot, changes)


def _text(value: Any) -> str:
    """A stored decimal as canonical text (PostgreSQL numerics come back as Decimal)."""
    if isinstance(value, Decimal):
        return exact.canon(format(value, "f"))
    return str(value)
