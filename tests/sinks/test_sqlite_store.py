"""The SQLite store: migrations, idempotent writes, versions, a reader in another process."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from venuefeed import schema
from venuefeed.models import (
    BookLevel,
    BookSnapshot,
    Candle,
    DataGap,
    Market,
    MarketStatus,
    Outcome,
    Trade,
)
from venuefeed.sinks.base import InvalidRecords, Watermark
from venuefeed.sinks.sqlite import SqliteStore, migrate, open_reader, schema_status


def trade(n: int, price: str = "0.5") -> Trade:
    return Trade(venue="pm", instrument="tok", ts_venue=n, ts_recv=n, trade_id=f"t{n}",
                 price=price, size="10")  # fmt: skip


@pytest.fixture(params=["process", "thread"])
async def store(tmp_path: Path, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """Both writers: the forked process (the default) and the thread (where fork is missing)."""
    sink = SqliteStore(tmp_path / "v.db", writer=request.param)
    await sink.start()
    yield sink
    await sink.close()


def count(path: Path, table: str) -> int:
    return int(open_reader(path).execute(f"SELECT count(*) FROM {table}").fetchone()[0])


ALL_VERSIONS = [m.version for m in schema.MIGRATIONS]


def test_migrate_twice_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "v.db"
    assert migrate(path) == ALL_VERSIONS
    before = open_reader(path).execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
    assert migrate(path) == []
    after = open_reader(path).execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
    assert [tuple(r) for r in before] == [tuple(r) for r in after]
    status = schema_status(path)
    assert status.current == status.latest == ALL_VERSIONS[-1] and status.pending == ()


def test_a_database_migrated_step_by_step_equals_a_fresh_one(tmp_path: Path) -> None:
    """A store created by an older venuefeed (migration 1 only) catches up to the same tables."""
    old = tmp_path / "old.db"
    conn = sqlite3.connect(old)
    for statement in schema.MIGRATIONS[0].sql("sqlite"):
        conn.execute(statement)
    conn.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
        "description TEXT NOT NULL, applied_at INTEGER NOT NULL)"
    )
    conn.execute("INSERT INTO schema_migrations VALUES (1, 'initial schema', 0)")
    conn.commit()
    conn.close()
    assert migrate(old) == ALL_VERSIONS[1:]
    fresh = tmp_path / "fresh.db"
    migrate(fresh)

    def columns(path: Path) -> dict[str, list[str]]:
        reader = open_reader(path)
        names = [r[0] for r in reader.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {n: sorted(r[1] for r in reader.execute(f'PRAGMA table_info("{n}")')) for n in names}

    assert columns(old) == columns(fresh)
    assert "instruments" in columns(old)["data_gaps"]


def test_cli_db_migrate_on_empty_path(tmp_path: Path) -> None:
    path = tmp_path / "fresh.db"
    cmd = [sys.executable, "-m", "venuefeed.cli", "--db", str(path), "db", "migrate"]
    first = subprocess.run(cmd, capture_output=True, text=True, check=True)
    second = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert f"applied migration(s) {', '.join(map(str, ALL_VERSIONS))}" in first.stdout
    assert "up to date" in second.stdout
    assert count(path, "trades") == 0


async def test_same_trade_twice_is_one_row(store: SqliteStore) -> None:
    await store.write([trade(1), trade(1)])
    await store.write([trade(1), trade(2)])
    assert count(store.path, "trades") == 2


async def test_snapshot_levels_best_first_and_idempotent(store: SqliteStore) -> None:
    snap = BookSnapshot(
        venue="pm", instrument="tok", ts_venue=10, ts_recv=11,
        bids=[BookLevel("0.52", "5"), BookLevel("0.5", "7")],
        asks=[BookLevel("0.55", "1"), BookLevel("0.6", "2")],
    )  # fmt: skip
    await store.write([snap])
    await store.write([snap])
    rows = (
        open_reader(store.path)
        .execute("SELECT side, level, price, size FROM book_levels ORDER BY side, level")
        .fetchall()
    )
    assert [tuple(r) for r in rows] == [
        ("ask", 0, "0.55", "1"), ("ask", 1, "0.6", "2"),
        ("bid", 0, "0.52", "5"), ("bid", 1, "0.5", "7"),
    ]  # fmt: skip
    assert count(store.path, "book_snapshots") == 1


async def test_market_versions_kept_on_rules_change(store: SqliteStore) -> None:
    market = Market(venue="pm", market_id="m1", title="Will it rain?", rules="Resolves YES if...",
                    outcomes=(Outcome("Yes", "1", "0.4"), Outcome("No", "2", "0.6")))  # fmt: skip
    await store.write([market])
    # A price or status change is not a new version...
    moved = msgspec.structs.replace(
        market, outcomes=(Outcome("Yes", "1", "0.5"), Outcome("No", "2", "0.5")),
        status=MarketStatus.OPEN,
    )  # fmt: skip
    await store.write([moved])
    # ...a rules change is, and the old text is kept.
    await store.write([msgspec.structs.replace(moved, rules="Resolves YES only if...")])
    reader = open_reader(store.path)
    versions = reader.execute(
        "SELECT version, rules FROM market_versions ORDER BY version"
    ).fetchall()
    assert [tuple(v) for v in versions] == [
        (1, "Resolves YES if..."),
        (2, "Resolves YES only if..."),
    ]
    row = reader.execute("SELECT version, status, rules FROM markets").fetchone()
    assert tuple(row) == (2, "open", "Resolves YES only if...")


async def test_candle_upsert_and_gap_heal(store: SqliteStore) -> None:
    base = dict(venue="b", instrument="BTCUSDT", ts_venue=1, ts_recv=1, interval="1m",
                open_time=60, close_time=119, open="1", high="2", low="1", volume="3")  # fmt: skip
    await store.write([Candle(close="1.5", closed=False, **base)])  # type: ignore[arg-type]
    await store.write([Candle(close="1.7", closed=True, **base)])  # type: ignore[arg-type]
    gap = DataGap(
        venue="b", instrument="BTCUSDT", ts_venue=0, ts_recv=5, cause="disconnect", start=1
    )
    await store.write([gap])
    await store.write([msgspec.structs.replace(gap, end=9, healed=True)])
    reader = open_reader(store.path)
    assert tuple(reader.execute("SELECT close, closed FROM candles").fetchone()) == ("1.7", 1)
    assert tuple(reader.execute("SELECT end_ns, healed FROM data_gaps").fetchone()) == (9, 1)


async def test_watermark_commits_with_its_data(store: SqliteStore) -> None:
    await store.write([trade(1), Watermark("job:chunk:1", "done")])
    await store.write([Watermark("job:chunk:1", "done-again")])
    reader = open_reader(store.path)
    assert reader.execute("SELECT value FROM watermarks").fetchone()[0] == "done-again"


async def test_a_bad_batch_fails_alone(store: SqliteStore) -> None:
    class Junk:  # not a record
        pass

    good = [trade(n) for n in range(5)]
    results = await asyncio.gather(
        store.write(good), store.write([trade(99), Junk()]),  # type: ignore[list-item]
        return_exceptions=True,
    )  # fmt: skip
    assert results[0] is None
    assert isinstance(results[1], InvalidRecords) and "TypeError" in str(results[1])
    assert count(store.path, "trades") == 5  # the bad batch left nothing half-written
    assert store.last_error is not None


READER = """
import sqlite3, sys, time
conn = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
seen = [conn.execute("SELECT count(*) FROM trades").fetchone()[0]]
print("ready", flush=True)
deadline = time.time() + 20
while time.time() < deadline:
    n = conn.execute("SELECT count(*) FROM trades").fetchone()[0]
    seen.append(n)
    if n >= int(sys.argv[2]):
        break
    time.sleep(0.002)
print(len(seen), seen[0], seen[-1], all(a <= b for a, b in zip(seen, seen[1:])))
"""


async def test_another_process_reads_while_ingestion_writes(store: SqliteStore) -> None:
    total = 3000
    await store.write([trade(-1)])
    reader = await asyncio.create_subprocess_exec(
        sys.executable, "-c", READER, str(store.path), str(total + 1),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert reader.stdout is not None
    assert await asyncio.wait_for(reader.stdout.readline(), 30) == b"ready\n"
    for start in range(0, total, 50):
        await store.write([trade(n) for n in range(start, start + 50)])
        await asyncio.sleep(0)
    out, err = await asyncio.wait_for(reader.communicate(), 30)
    assert reader.returncode == 0, err.decode()
    polls, first, last, monotonic = out.decode().split()
    assert int(first) == 1 and int(last) == total + 1  # it read before, during and after
    assert monotonic == "True"
    assert int(polls) > 2
