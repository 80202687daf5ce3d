"""SQLite when the disk or the database fails: the real cause surfaces, nothing is dropped.

The full-disk tests mount a small tmpfs and really fill it (root only: CI runs
as root; elsewhere they are skipped with the reason). The database, its spool
and the writer are the real ones, wired as ``build_sinks`` wires them.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from venuefeed.models import Trade
from venuefeed.pipeline.writer import SinkWriter
from venuefeed.sinks.base import InvalidRecords, SinkUnavailable
from venuefeed.sinks.deadletter import DeadLetterStore
from venuefeed.sinks.spool import SpoolingSink
from venuefeed.sinks.sqlite import SqliteStore, classify, migrate, open_reader
from venuefeed.sinks.sqlite_commit import Committer

from .helpers import FlakySink, fill


def trade(n: int) -> Trade:
    # Long ids fill pages quickly: a small disk runs out after a few hundred rows.
    return Trade(venue="pm", instrument="tok", ts_venue=1_700_000_000_000_000_000 + n,
                 ts_recv=1_700_000_000_000_000_000 + n, trade_id=f"{n:08d}-" + "x" * 120,
                 price="0.5", size="10")  # fmt: skip


async def wait_for(predicate: Callable[[], bool], within: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def stored_ids(path: Path) -> list[str]:
    conn = open_reader(path)
    try:
        return [str(r[0]) for r in conn.execute("SELECT trade_id FROM trades")]
    finally:
        conn.close()


def integrity(path: Path) -> str:
    conn = open_reader(path)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def test_a_full_database_reports_disk_full_not_a_failed_rollback(tmp_path: Path) -> None:
    """The double-ROLLBACK regression: SQLite rolls back by itself on SQLITE_FULL."""
    path = tmp_path / "v.db"
    migrate(path)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count={pages + 2}")  # SQLite's own "disk is full"
    with pytest.raises(sqlite3.OperationalError) as raised:
        Committer(conn)._transaction([[trade(n) for n in range(2000)]], None)
    assert raised.value.sqlite_errorname == "SQLITE_FULL"
    assert not conn.in_transaction
    failure = classify(raised.value)
    assert isinstance(failure, SinkUnavailable)
    assert str(failure) == "sqlite: disk full (SQLITE_FULL: database or disk is full)"
    conn.close()


def test_errors_are_classified_by_what_caused_them() -> None:
    constraint = sqlite3.IntegrityError("NOT NULL constraint failed: trades.price")
    assert isinstance(classify(constraint), InvalidRecords)
    assert isinstance(classify(OverflowError("Python int too large")), InvalidRecords)
    assert isinstance(classify(sqlite3.OperationalError("disk I/O error")), SinkUnavailable)
    assert isinstance(classify(PermissionError("read-only file system")), SinkUnavailable)
    bug = KeyError("nobody knows")
    assert classify(bug) is bug  # unclassified: callers keep the batch


async def test_a_locked_database_spools_then_lands_everything_once(tmp_path: Path) -> None:
    db = tmp_path / "v.db"
    migrate(db)
    spool = SpoolingSink(SqliteStore(db, busy_timeout=0.1), tmp_path / "spool", 10_000_000,
                         retry_max_seconds=0.05)  # fmt: skip
    writer = SinkWriter(spool, batch_size=50)
    await spool.start()
    writer.start()
    locker = sqlite3.connect(db, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")  # an operator's long transaction
    for n in range(500):
        await writer.put(trade(n))
    await writer.drain()  # durable: in the spool, since the database is locked
    (problem,) = writer.problems()
    assert problem.startswith("storage: sqlite: database locked (SQLITE_BUSY")
    assert "500 records in the spool" in problem
    assert writer.failing_since is None  # the spool took it: intake goes on
    locker.execute("ROLLBACK")
    locker.close()
    await wait_for(lambda: spool.status()["spooled_batches"] == 0)
    await writer.close()
    await spool.close()
    ids = stored_ids(db)
    assert sorted(ids) == sorted(trade(n).trade_id for n in range(500))
    assert writer.problems() == []


async def test_full_disk_holds_everything_says_so_and_lands_it_once(small_disk: Path) -> None:
    """The database and its spool on one full disk: intake stops, nothing is dropped."""
    db = small_disk / "v.db"
    dead = DeadLetterStore(small_disk / "dead.jsonl")
    spool = SpoolingSink(SqliteStore(db), small_disk / "spool", 50_000_000, dead_letters=dead,
                         retry_max_seconds=0.05)  # fmt: skip
    writer = SinkWriter(spool, max_pending=2_000, batch_size=200, retry_max_seconds=0.05)
    await spool.start()
    writer.start()
    for n in range(100):
        await writer.put(trade(n))
    await writer.drain()
    filler = fill(small_disk, leave=64 * 1024)
    total = 8_000
    intake = Intake(writer, range(100, total))
    await wait_for(lambda: writer.failing_since is not None)
    await wait_for(lambda: writer.pending == 2_000)
    await asyncio.sleep(0.3)
    assert not intake.task.done()  # intake stopped before anything accepted was dropped
    assert writer.stored + writer.held == 100 + intake.accepted and dead.count == 0
    problems = writer.problems()
    text = "\n".join(problems)
    assert "storage: sqlite: disk full (SQLITE_FULL" in text
    assert "spool cannot write" in text and "No space left on device" in text
    assert "writer queue full" in text
    assert f"{writer.held} records held" in text
    filler.unlink()
    await asyncio.wait_for(intake.task, 60)
    await asyncio.wait_for(writer.close(), 60)
    await wait_for(lambda: spool.status()["spooled_batches"] == 0, 60)
    await spool.close()
    ids = stored_ids(db)
    assert len(ids) == len(set(ids)) == total  # everything, exactly once
    assert integrity(db) == "ok"
    assert writer.problems() == [] and dead.count == 0


async def test_a_spool_on_a_full_disk_holds_and_leaves_no_torn_frame(small_disk: Path) -> None:
    down = FlakySink()
    down.down = True
    spool = SpoolingSink(down, small_disk / "spool", 50_000_000, retry_max_seconds=0.05)
    writer = SinkWriter(spool, max_pending=500, batch_size=100, retry_max_seconds=0.05)
    await spool.start()
    writer.start()
    filler = fill(small_disk, leave=256 * 1024)
    intake = Intake(writer, range(4_000))
    await wait_for(lambda: spool.spool_error is not None)
    await wait_for(lambda: writer.pending == 500)
    assert not intake.task.done()
    spooled = spool.status()["spooled_records"]
    assert spooled > 0 and spooled + writer.held == intake.accepted
    text = "\n".join(writer.problems())
    assert "flaky: down; and its spool cannot take the batch" in text
    assert f"flaky spool cannot write to {small_disk / 'spool'}" in text
    # A restart now must find exactly the frames that were acknowledged: none torn.
    again = SpoolingSink(FlakySink(), small_disk / "spool", 50_000_000)
    again._load()
    assert again.status()["spooled_records"] == spooled
    filler.unlink()
    await asyncio.wait_for(intake.task, 60)
    down.down = False
    await asyncio.wait_for(writer.close(), 60)
    await wait_for(lambda: spool.status()["spooled_batches"] == 0, 60)
    await spool.close()
    ids = [r.trade_id for r in down.stored]  # type: ignore[union-attr]
    assert sorted(ids) == sorted(trade(n).trade_id for n in range(4_000))
    assert writer.problems() == []


class Intake:
    """Puts trades into the writer as a venue feed would; counts what the writer accepted."""

    def __init__(self, writer: SinkWriter, numbers: range) -> None:
        self.accepted = 0
        self.task = asyncio.create_task(self._run(writer, numbers))

    async def _run(self, writer: SinkWriter, numbers: range) -> None:
        for n in numbers:
            await writer.put(trade(n))
            self.accepted += 1
