"""The ``market_pairs`` table: suggestions, and a person's decision on each.

Like the ``whales`` table, it lives in the SQLite store and is edited from the
CLI or the API while the service runs; the service re-reads the confirmed
pairs now and then, so a pair confirmed by hand is quoted within seconds,
without a restart. Suggesting again never undoes a decision: a confirmed or
rejected pair keeps its status (and a confirmed pair its mapping) however
often it is suggested.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import msgspec

from venuefeed.models import Market, Outcome
from venuefeed.pairs.match import Candidate, Mapping

__all__ = ["ConfirmedPair", "PairStore", "Status", "markets_of"]

Status = Literal["suggested", "confirmed", "rejected"]
MAPPINGS: tuple[Mapping, ...] = ("yes_yes", "yes_no")


class ConfirmedPair(msgspec.Struct, frozen=True):
    """What the quoting needs of a confirmed pair."""

    pair_id: str
    kalshi_market: str
    polymarket_token: str
    mapping: Mapping


class PairStore:
    """``market_pairs`` (and the ``markets`` it suggests from) in one SQLite database."""

    def __init__(self, path: str | Path) -> None:
        from venuefeed.sinks.sqlite import migrate

        self.path = Path(path)
        migrate(self.path)

    def _conn(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30)
        conn.row_factory = sqlite3.Row
        return conn

    def add_suggestions(self, candidates: Iterable[Candidate]) -> int:
        """Store candidates as ``suggested``; scores of undecided ones are refreshed."""
        now = time.time_ns()
        rows = [_suggestion_row(c, now) for c in candidates]
        sql = (
            "INSERT INTO market_pairs (pair_id, kalshi_market, polymarket_market, "
            "polymarket_token, kalshi_title, polymarket_title, mapping, score, title_score, "
            "rules_score, close_gap_seconds, suggested_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT (pair_id) DO UPDATE SET score = excluded.score, "
            "title_score = excluded.title_score, rules_score = excluded.rules_score, "
            "close_gap_seconds = excluded.close_gap_seconds, "
            "mapping = CASE WHEN market_pairs.status = 'suggested' THEN excluded.mapping "
            "ELSE market_pairs.mapping END"
        )
        with self._conn() as conn:
            conn.executemany(sql, rows)
        return len(rows)

    def decide(self, pair_id: str, status: Status, mapping: Mapping | None = None) -> bool:
        """Confirm or reject a stored pair (optionally fixing its mapping); False if unknown."""
        if mapping is not None and mapping not in MAPPINGS:
            raise ValueError(f"mapping must be one of {', '.join(MAPPINGS)}, not {mapping!r}")
        with self._conn() as conn:
            cur = conn.execute(
                "UPDATE market_pairs SET status = ?, decided_at = ?, "
                "mapping = COALESCE(?, mapping) WHERE pair_id = ?",
                (status, time.time_ns(), mapping, pair_id),
            )
            return cur.rowcount > 0

    def all(self, status: Status | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM market_pairs"
        args: tuple[str, ...] = ()
        if status is not None:
            sql += " WHERE status = ?"
            args = (status,)
        with self._conn() as conn:
            rows = conn.execute(sql + " ORDER BY status, score DESC, pair_id", args)
            return [dict(r) for r in rows]

    def confirmed(self) -> list[ConfirmedPair]:
        return [
            ConfirmedPair(r["pair_id"], r["kalshi_market"], r["polymarket_token"], r["mapping"])
            for r in self.all("confirmed")
        ]

    def markets(self, venue: str, *, open_only: bool = True) -> list[Market]:
        """The stored markets of one venue (what ``discover`` found), for suggesting."""
        sql = (
            "SELECT market_id, title, rules, outcomes, status, close_time, event_id "
            "FROM markets WHERE venue = ?"
        )
        if open_only:
            sql += " AND status IN ('open', 'upcoming', 'unknown')"
        with self._conn() as conn:
            return markets_of(venue, conn.execute(sql, (venue,)).fetchall())


_OUTCOMES = msgspec.json.Decoder(list[dict[str, str]])


def markets_of(venue: str, rows: Iterable[sqlite3.Row]) -> list[Market]:
    """``markets`` rows back as :class:`Market` (the fields matching looks at)."""

    out = []
    for r in rows:
        outcomes = tuple(
            Outcome(o.get("name", ""), o.get("token_id", "")) for o in _OUTCOMES.decode(r[3])
        )
        market = Market(venue=venue, market_id=r[0], title=r[1], rules=r[2], outcomes=outcomes,
                        close_time=r[5], event_id=r[6])  # fmt: skip
        out.append(market)
    return out


def _suggestion_row(c: Candidate, now: int) -> tuple[object, ...]:
    return (
        c.pair_id, c.kalshi.market_id, c.polymarket.market_id, c.polymarket.outcomes[0].token_id,
        c.kalshi.title, c.polymarket.title, c.mapping, c.score, c.title_score, c.rules_score,
        c.close_gap_seconds, now,
    )  # fmt: skip
