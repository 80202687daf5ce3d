"""Data-quality and storage reports from the SQLite store (`venuefeed quality`, `status`)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from venuefeed.sinks.sqlite import open_reader

__all__ = ["VenueQuality", "quality_report", "storage_summary"]

NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class VenueQuality:
    venue: str
    instruments: int
    """Instruments with trades or book snapshots in the window."""
    trades: int
    gaps_open: int
    gaps_healed: int
    gap_seconds: float
    """Instrument-seconds inside any gap of the window, healed or not."""
    coverage_pct: float | None
    """Share of instrument-time not inside a gap that is still open: healed windows had
    their data recovered. None when nothing is known (no instrument had data)."""
    stale_books: int
    """Instruments whose newest stored book snapshot is older than the stale limit."""
    note: str = ""
    """Why a venue has no data, when the caller knows (no subscription, no credentials)."""


def _rows(conn: sqlite3.Connection, sql: str, *args: Any) -> list[sqlite3.Row]:
    return list(conn.execute(sql, args).fetchall())


def _affected(instrument: str, listed: str, known: set[str]) -> set[str]:
    """The instruments a ledger entry concerns: its list, all of them (``*``), or itself."""
    names = set(json.loads(listed or "[]"))
    if names:
        return names & known
    if instrument == "*":
        return known
    return {instrument} & known


def quality_report(
    db: Path,
    *,
    window_s: float = 86400,
    stale_s: float = 300,
    now_ns: int | None = None,
    expected: Mapping[str, str] | None = None,
) -> list[VenueQuality]:
    """Per venue: coverage of the window by data that is known complete.

    ``expected`` names the venues the configuration enables, each with the
    reason it may have no data ("" when it should have some): such a venue is
    listed even without a row, instead of silently missing from the report.
    """
    now = now_ns or time.time_ns()
    since = now - int(window_s * NS)
    conn = open_reader(db)
    try:
        venues = {r[0] for r in _rows(conn, "SELECT DISTINCT venue FROM trades")}
        venues |= {r[0] for r in _rows(conn, "SELECT DISTINCT venue FROM book_snapshots")}
        venues |= {r[0] for r in _rows(conn, "SELECT DISTINCT venue FROM data_gaps")}
        venues |= set(expected or {})
        out = []
        for venue in sorted(venues):
            known = {
                r[0]
                for table in ("trades", "book_snapshots")
                for r in _rows(
                    conn,
                    f"SELECT DISTINCT instrument FROM {table} WHERE venue = ? AND ts_recv >= ?",
                    venue,
                    since,
                )
            }
            trades = _rows(conn, "SELECT count(*) FROM trades WHERE venue = ? AND ts_recv >= ?",
                           venue, since)[0][0]  # fmt: skip
            gaps = _rows(
                conn,
                "SELECT instrument, instruments, healed, start_ns, "
                "CASE WHEN end_ns = 0 THEN ? ELSE end_ns END "
                "FROM data_gaps WHERE venue = ? AND (end_ns = 0 OR end_ns >= ?)",
                now, venue, since,
            )  # fmt: skip
            gap_ns = open_ns = 0
            open_gaps = 0
            for instrument, listed, healed, start, end in gaps:
                span = max(0, min(end, now) - max(start, since))
                width = len(_affected(instrument, listed, known))
                gap_ns += span * width
                if not healed:
                    open_gaps += 1
                    open_ns += span * width
            coverage: float | None = None
            if known:
                total = max(1, now - since) * len(known)
                coverage = round(max(0.0, 100.0 * (1 - open_ns / total)), 3)
            stale = _rows(
                conn,
                "SELECT count(*) FROM (SELECT instrument, max(ts_recv) AS last FROM book_snapshots "
                "WHERE venue = ? GROUP BY instrument) WHERE last < ?",
                venue, now - int(stale_s * NS),
            )[0][0]  # fmt: skip
            note = ""
            if not known:
                note = (expected or {}).get(venue, "") or "no data in the window"
            out.append(VenueQuality(venue, len(known), int(trades), open_gaps,
                                    len(gaps) - open_gaps, gap_ns / NS, coverage, int(stale),
                                    note))  # fmt: skip
        return out
    finally:
        conn.close()


def _iso(ns: int) -> str:
    """``2026-11-30T09:12:03.123Z``: what a person reads, not nanoseconds."""
    moment = datetime.fromtimestamp(ns / NS, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def storage_summary(db: Path) -> dict[str, Any]:
    """Row counts and the newest trade per venue."""
    conn = open_reader(db)
    try:
        tables = ("markets", "trades", "book_snapshots", "price_updates", "quotes", "candles",
                  "whale_activity", "data_gaps")  # fmt: skip
        counts = {t: _rows(conn, f"SELECT count(*) FROM {t}")[0][0] for t in tables}
        now = time.time_ns()
        newest = {
            venue: {"at": _iso(ts), "age_s": round((now - ts) / NS, 1)}
            for venue, ts in _rows(conn, "SELECT venue, max(ts_recv) FROM trades GROUP BY venue")
        }
        return {"counts": counts, "newest_trade": newest}
    finally:
        conn.close()
