"""Data-quality and storage reports from the SQLite store (`venuefeed quality`, `status`)."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from venuefeed.sinks.sqlite import open_reader

__all__ = ["VenueQuality", "quality_report", "storage_summary"]

NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class VenueQuality:
    venue: str
    instruments: int
    trades: int
    gaps_open: int
    gaps_healed: int
    gap_seconds: float
    coverage_pct: float
    """Share of the window not covered by a gap (averaged over instruments with data)."""
    stale_books: int
    """Instruments whose newest stored book snapshot is older than the stale limit."""


def _rows(conn: sqlite3.Connection, sql: str, *args: Any) -> list[sqlite3.Row]:
    return list(conn.execute(sql, args).fetchall())


def quality_report(
    db: Path, *, window_s: float = 86400, stale_s: float = 300, now_ns: int | None = None
) -> list[VenueQuality]:
    now = now_ns or time.time_ns()
    since = now - int(window_s * NS)
    conn = open_reader(db)
    try:
        venues = {r[0] for r in _rows(conn, "SELECT DISTINCT venue FROM trades")}
        venues |= {r[0] for r in _rows(conn, "SELECT DISTINCT venue FROM book_snapshots")}
        venues |= {r[0] for r in _rows(conn, "SELECT DISTINCT venue FROM data_gaps")}
        out = []
        for venue in sorted(venues):
            instruments = {
                r[0]
                for r in _rows(
                    conn, "SELECT DISTINCT instrument FROM trades WHERE venue = ?", venue
                )
            } | {
                r[0]
                for r in _rows(
                    conn, "SELECT DISTINCT instrument FROM book_snapshots WHERE venue = ?", venue
                )
            }
            trades = _rows(conn, "SELECT count(*) FROM trades WHERE venue = ?", venue)[0][0]
            gaps = _rows(
                conn,
                "SELECT healed, start_ns, CASE WHEN end_ns = 0 THEN ? ELSE end_ns END "
                "FROM data_gaps WHERE venue = ? AND (end_ns = 0 OR end_ns >= ?)",
                now, venue, since,
            )  # fmt: skip
            gap_ns = sum(max(0, min(end, now) - max(start, since)) for _, start, end in gaps)
            open_gaps = sum(1 for healed, _, _ in gaps if not healed)
            healed = len(gaps) - open_gaps
            span = max(1, now - since) * max(1, len(instruments))
            coverage = max(0.0, 100.0 * (1 - gap_ns / span))
            stale = _rows(
                conn,
                "SELECT count(*) FROM (SELECT instrument, max(ts_recv) AS last FROM book_snapshots "
                "WHERE venue = ? GROUP BY instrument) WHERE last < ?",
                venue, now - int(stale_s * NS),
            )[0][0]  # fmt: skip
            out.append(VenueQuality(venue, len(instruments), int(trades), open_gaps, healed,
                                    gap_ns / NS, round(coverage, 3), int(stale)))  # fmt: skip
        return out
    finally:
        conn.close()


def storage_summary(db: Path) -> dict[str, Any]:
    """Row counts and the newest trade per venue."""
    conn = open_reader(db)
    try:
        tables = ("markets", "trades", "book_snapshots", "price_updates", "quotes", "candles",
                  "whale_activity", "data_gaps")  # fmt: skip
        counts = {t: _rows(conn, f"SELECT count(*) FROM {t}")[0][0] for t in tables}
        newest = {
            r[0]: r[1] for r in _rows(conn, "SELECT venue, max(ts_recv) FROM trades GROUP BY venue")
        }
        return {"counts": counts, "newest_trade_ns": newest}
    finally:
        conn.close()
