"""What landed: trades, gaps and the newest stored books, read straight from each store.

Read from the store itself (SQLite file, PostgreSQL schema, NATS stream) and
never through the service, which could be wrong in the same way twice.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec

from venuefeed import exact
from venuefeed.sim.base import Book

__all__ = ["Landed", "read_nats", "read_postgres", "read_sqlite"]


@dataclass
class Landed:
    """One venue's data in one store."""

    trades: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(instrument, trade_id) -> rows (a store with a natural key holds 1; a bus may hold more)."""
    gaps: list[tuple[str, bool]] | None = None
    """(cause, healed) of each gap that began in the window; None where the store keeps none."""
    books: dict[str, Book] | None = None
    """The newest stored top-N book of each instrument; None where the store keeps none."""


def _text(value: Any) -> str:
    return exact.from_decimal(value) if isinstance(value, Decimal) else exact.canon(str(value))


def _book(levels: list[tuple[str, Any, Any]]) -> Book:
    return (
        [(_text(p), _text(s)) for side, p, s in levels if side == "bid"],
        [(_text(p), _text(s)) for side, p, s in levels if side == "ask"],
    )


def read_sqlite(path: Path, venue: str, since_ns: int, until_ns: int) -> Landed:
    landed = Landed(gaps=[], books={})
    if not path.exists():
        return landed
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        for instrument, trade_id, rows in db.execute(
            "SELECT instrument, trade_id, count(*) FROM trades WHERE venue = ? "
            "GROUP BY instrument, trade_id", (venue,)
        ):  # fmt: skip
            landed.trades[(instrument, trade_id)] += rows
        landed.gaps = [
            (cause, bool(healed))
            for cause, healed in db.execute(
                "SELECT cause, healed FROM data_gaps WHERE venue = ? AND start_ns BETWEEN ? AND ?",
                (venue, since_ns, until_ns),
            )
        ]
        latest = db.execute(
            "SELECT instrument, max(id) FROM book_snapshots WHERE venue = ? GROUP BY instrument",
            (venue,),
        ).fetchall()
        books: dict[str, Book] = {}
        for instrument, snap_id in latest:
            levels = db.execute(
                "SELECT side, price, size FROM book_levels WHERE snapshot_id = ? "
                "ORDER BY side, level", (snap_id,)
            ).fetchall()  # fmt: skip
            books[instrument] = _book(levels)
        landed.books = books
    except sqlite3.OperationalError:  # the service never got as far as migrating
        pass
    finally:
        db.close()
    return landed


async def read_postgres(dsn: str, schema: str, venue: str, since_ns: int, until_ns: int) -> Landed:
    import asyncpg

    landed = Landed(gaps=[], books={})
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        if not await conn.fetchval("SELECT to_regclass('trades') IS NOT NULL"):
            return landed
        for row in await conn.fetch(
            "SELECT instrument, trade_id, count(*) AS n FROM trades WHERE venue = $1 "
            "GROUP BY instrument, trade_id", venue
        ):  # fmt: skip
            landed.trades[(row["instrument"], row["trade_id"])] += row["n"]
        landed.gaps = [
            (row["cause"], bool(row["healed"]))
            for row in await conn.fetch(
                "SELECT cause, healed FROM data_gaps WHERE venue = $1 "
                "AND start_ns BETWEEN $2 AND $3",
                venue,
                since_ns,
                until_ns,
            )
        ]
        books: dict[str, Book] = {}
        for row in await conn.fetch(
            "SELECT instrument, max(id) AS id FROM book_snapshots WHERE venue = $1 "
            "GROUP BY instrument", venue
        ):  # fmt: skip
            levels = await conn.fetch(
                "SELECT side, price, size FROM book_levels WHERE snapshot_id = $1 "
                "ORDER BY side, level", row["id"]
            )  # fmt: skip
            books[row["instrument"]] = _book([(r["side"], r["price"], r["size"]) for r in levels])
        landed.books = books
    finally:
        await conn.close()
    return landed


async def read_nats(url: str, stream: str, prefix: str, venues: list[str]) -> dict[str, Landed]:
    """Every trade message in ``stream`` (a repeat counts: the stream should hold each once)."""
    import nats
    import nats.errors

    out = {venue: Landed() for venue in venues}
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe(f"{prefix}.market_trades.>", stream=stream)
        while True:
            try:
                msgs = await sub.fetch(1000, timeout=2)
            except (TimeoutError, nats.errors.TimeoutError):
                break
            for msg in msgs:
                body = msgspec.json.decode(msg.data)
                landed = out.get(body.get("venue"))
                if landed is not None:
                    landed.trades[(body["instrument"], body["trade_id"])] += 1
                await msg.ack()
    finally:
        await nc.close()
    return out
