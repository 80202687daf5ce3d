"""``venuefeed book --at`` over PostgreSQL: the same book as from SQLite, and the real one.

The recorded live run is replayed into the real PostgreSQL and SQLite at once
(deltas stored, snapshots stored rarely, so most instants need deltas on top
of an older snapshot), and the replay's own books are kept at every change
(:class:`~venuefeed.lake.book_states.BookStates`). At sampled instants the
book rebuilt from PostgreSQL alone must be the one rebuilt from SQLite, level
for level, and the replayed book itself.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from venuefeed.config import load_config
from venuefeed.lake.book_at import SqliteHistory, book_at, postgres_history
from venuefeed.lake.book_states import BookStates
from venuefeed.lake.replay import replay
from venuefeed.models import BookLevel

from ..sinks.helpers import require_postgres
from .conftest import Cli
from .recorded import LiveRun, live_extra

DEPTH = 10


@pytest.fixture
def pg_schema() -> Iterator[tuple[str, str]]:
    url = require_postgres()
    schema = f"bookat_{uuid.uuid4().hex[:10]}"
    yield url, schema

    async def drop() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    asyncio.run(drop())


def levels(rows: list[tuple[str, str]]) -> list[BookLevel]:
    return [BookLevel(price, size) for price, size in rows]


def test_book_at_from_postgres_equals_the_replayed_book(
    live: LiveRun, pg_schema: tuple[str, str], tmp_path: Path,
    capsys: pytest.CaptureFixture[str], cli: Cli,
) -> None:  # fmt: skip
    url, schema = pg_schema
    overrides = {**live_extra(tmp_path / "unused.db"), "storage.sinks": ["sqlite", "postgres"],
                 "storage.database_url": url, "storage.postgres_schema": schema,
                 "ingestion.book_persist_interval_seconds": 2.5}  # fmt: skip
    states = BookStates(DEPTH)
    asyncio.run(replay(live.recording, load_config(overrides=overrides, environ={}),
                       hooks=[states.hook]))  # fmt: skip

    rng = random.Random(3)
    truth = [row for rows in states.states.values() for row in rows]
    samples = rng.sample(truth, min(40, len(truth)))
    sqlite = SqliteHistory(tmp_path / "unused.db")
    with_changes = as_replayed = checked = 0
    for state in samples:
        venue, instrument, at = state["venue"], state["instrument"], state["ts_recv"]
        history = asyncio.run(postgres_history(url, schema, venue, instrument, at))
        rebuilt = book_at(history, venue, instrument, at, snapshot_depth=DEPTH)
        from_sqlite = book_at(sqlite, venue, instrument, at, snapshot_depth=DEPTH)
        assert rebuilt == from_sqlite, (venue, instrument, at)
        assert rebuilt is not None, (venue, instrument, at)
        checked += 1
        with_changes += rebuilt.changes > 0 and rebuilt.snapshot_ts < at
        sides = ((rebuilt.bids, levels(state["bids"]), rebuilt.bids_complete),
                 (rebuilt.asks, levels(state["asks"]), rebuilt.asks_complete))  # fmt: skip
        # The state kept is the top DEPTH levels; the rebuild may know more than that.
        as_replayed += all(got[:DEPTH] == (want if complete else want[: len(got[:DEPTH])])
                           for got, want, complete in sides)  # fmt: skip
    sqlite.close()
    assert with_changes >= len(samples) // 4  # many rebuilt through deltas, not a stored copy
    assert as_replayed == checked

    # The command line reads PostgreSQL when the config stores there.
    state = samples[-1]
    config = tmp_path / "pg.yaml"
    config.write_text(json.dumps({"storage": {"sinks": ["postgres"], "database_url": url,
                                              "postgres_schema": schema},
                                  "ingestion": {"book_depth": DEPTH}}))  # fmt: skip
    capsys.readouterr()
    assert cli("--config", str(config), "book", state["venue"], state["instrument"],
               "--at", str(state["ts_recv"]), "--depth", "3", "--json") == 0  # fmt: skip
    out = capsys.readouterr().out
    shown = json.loads(out[out.index("{") :])
    assert shown["bids"] == [list(level) for level in state["bids"][:3]]
    assert shown["asks"] == [list(level) for level in state["asks"][:3]]
