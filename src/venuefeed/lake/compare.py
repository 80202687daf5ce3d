"""Two stores compared on their canonical rows: trades and book snapshots.

What "the replay equals the live run" means, written once for the tests and
the proof (``bench/record_replay.py``). A row is compared on every canonical
field -- what an event says, not how a store numbered it: a snapshot's serial
id and its levels' ``snapshot_id`` are storage details, its levels are not.
Rows are matched by the store's natural key (trades: venue, instrument, trade
id; snapshots: venue, instrument, venue time, sequence and the digest of the
levels).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from venuefeed.lake.reader import iter_frames, venues
from venuefeed.transport.websocket import Frame

__all__ = [
    "SNAPSHOT_FIELDS",
    "TRADE_FIELDS",
    "Diff",
    "canonical_digest",
    "compare_rows",
    "frame_times",
    "stored_snapshots",
    "stored_trades",
]

TRADE_FIELDS = ("venue", "instrument", "trade_id", "market_id", "price", "size", "side",
                "maker", "taker", "ts_venue", "ts_recv", "flags")  # fmt: skip
SNAPSHOT_FIELDS = ("venue", "instrument", "ts_venue", "ts_recv", "sequence", "checksum",
                   "digest", "bids", "asks")  # fmt: skip

Row = dict[str, Any]


def _connect(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True)


def stored_trades(db: Path) -> dict[tuple[str, str, str], Row]:
    """Every trade of a SQLite store by its natural key."""
    with closing(_connect(db)) as conn:
        rows = conn.execute(f"SELECT {', '.join(TRADE_FIELDS)} FROM trades")
        return {(r[0], r[1], r[2]): dict(zip(TRADE_FIELDS, r, strict=True)) for r in rows}


def stored_snapshots(db: Path) -> dict[tuple[str, str, int | None, int, str], Row]:
    """Every book snapshot of a SQLite store with its levels, by its natural key."""
    with closing(_connect(db)) as conn:
        levels: dict[int, dict[str, list[tuple[str, str]]]] = {}
        for snapshot_id, side, price, size in conn.execute(
            "SELECT snapshot_id, side, price, size FROM book_levels "
            "ORDER BY snapshot_id, side, level"
        ):
            sides = levels.setdefault(snapshot_id, {"bid": [], "ask": []})
            sides[side].append((str(price), str(size)))
        out: dict[tuple[str, str, int | None, int, str], Row] = {}
        for row in conn.execute(
            "SELECT id, venue, instrument, ts_venue, ts_recv, sequence, checksum, digest "
            "FROM book_snapshots"
        ):
            snapshot_id, *fields = row
            sides = levels.get(snapshot_id, {"bid": [], "ask": []})
            record = dict(zip(SNAPSHOT_FIELDS, [*fields, sides["bid"], sides["ask"]], strict=True))
            out[(record["venue"], record["instrument"], record["ts_venue"], record["sequence"],
                 record["digest"])] = record  # fmt: skip
        return out


def frame_times(root: Path) -> set[int]:
    """Receive times of every WebSocket frame of a recording.

    A stored row stamped with one of them came from the stream; others came
    from the service's REST jobs (gap back-fill, snapshot passes), which a
    replay of the streams does not re-run.
    """
    return {
        record.ts_recv
        for venue in venues(root)
        for record in iter_frames(root, venue)
        if type(record) is Frame
    }


def canonical_digest(db: Path) -> str:
    """SHA-256 of the store's trades and book snapshots, sorted, every canonical field.

    Two stores with the same digest hold byte-identical canonical rows.
    """
    digest = hashlib.sha256()
    tables: list[dict[Any, Row]] = [dict(stored_trades(db)), dict(stored_snapshots(db))]
    for table in tables:
        for key in sorted(table, key=_orderable):
            digest.update(msgspec.msgpack.encode(table[key]))
    return digest.hexdigest()


def _orderable(key: Any) -> Any:
    """A row key that sorts: an unknown venue time (None) orders as -1, as the stores' key does."""
    if isinstance(key, tuple):
        return tuple(-1 if part is None else part for part in key)
    return key


@dataclass
class Diff:
    """How two sets of rows compare."""

    left: int
    right: int
    equal: int = 0
    different: list[tuple[Any, str]] = field(default_factory=list)
    """``(key, first differing field)`` for rows both have that differ."""
    only_left: list[Any] = field(default_factory=list)
    only_right: list[Any] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not self.different and not self.only_left and not self.only_right

    def summary(self) -> str:
        return (f"{self.left} vs {self.right} rows: {self.equal} equal on every compared field, "
                f"{len(self.different)} differ, {len(self.only_left)} only left, "
                f"{len(self.only_right)} only right")  # fmt: skip


def compare_rows(
    left: Mapping[Any, Row], right: Mapping[Any, Row], *, ignore: Iterable[str] = ()
) -> Diff:
    """Rows matched by key, compared on every field but ``ignore``."""
    skipped = set(ignore)
    diff = Diff(len(left), len(right))
    for key, row in left.items():
        other = right.get(key)
        if other is None:
            diff.only_left.append(key)
            continue
        differing = next((f for f in row if f not in skipped and row[f] != other.get(f)), None)
        if differing is None:
            diff.equal += 1
        else:
            diff.different.append((key, differing))
    diff.only_right = [key for key in right if key not in left]
    return diff
