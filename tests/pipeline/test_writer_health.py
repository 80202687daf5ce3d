"""Storage health tells the truth: ``/api/status`` problems come from the writer and its sinks.

These run the real :class:`Service` (no venue enabled) with the sinks
``build_sinks`` makes, break storage the way an operator would find it
broken, and read ``status()`` -- what ``/api/status`` serves.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from venuefeed import schema
from venuefeed.config import Settings, load_config
from venuefeed.models import Trade
from venuefeed.service import Service
from venuefeed.sinks.spool import SpoolingSink
from venuefeed.sinks.sqlite import open_reader


def trade(n: int) -> Trade:
    return Trade(venue="v", instrument="i", ts_venue=n, ts_recv=n, trade_id=str(n), price="0.5",
                 size="1")  # fmt: skip


def settings(tmp_path: Path, **extra: Any) -> Settings:
    overrides: dict[str, Any] = {
        "storage.sqlite_path": tmp_path / "v.db",
        "storage.spool_dir": tmp_path / "spool",
        "storage.dead_letter_path": tmp_path / "dead.jsonl",
        "venues.polymarket.enabled": False,
        "venues.kalshi.enabled": False,
        **extra,
    }
    return load_config(overrides=overrides, environ={})


async def wait_for(predicate: Callable[[], bool], within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_a_sink_failing_every_write_makes_status_unhealthy_with_the_cause(
    tmp_path: Path,
) -> None:
    service = Service(settings(tmp_path))
    await service.start(continuous=False)
    try:
        assert service.status()["healthy"]
        db = tmp_path / "v.db"
        with sqlite3.connect(db) as conn:
            conn.execute("DROP TABLE trades")  # every trade write fails from now on
        for n in range(100):
            await service.writer.put(trade(n))
        await service.writer.drain()  # accepted: durable in the spool
        status = service.status()
        assert not status["healthy"]
        (problem,) = status["problems"]
        assert problem.startswith("storage: sqlite: SQLITE_ERROR (SQLITE_ERROR: no such table")
        assert "since 20" in problem and "100 records in the spool" in problem
        assert isinstance(service.sink, SpoolingSink)
        with sqlite3.connect(db) as conn:
            for statement in schema.create_sql(schema.TRADES, "sqlite"):
                conn.execute(statement)
        await wait_for(lambda: service.status()["healthy"])
        rows = open_reader(db).execute("SELECT count(*) FROM trades").fetchone()[0]
        assert rows == 100
    finally:
        await service.stop()


async def test_a_filling_spool_is_reported_before_it_blocks_intake(tmp_path: Path) -> None:
    overrides = {"storage.spool_max_bytes": 40_000, "ingestion.queue_size": 100}
    service = Service(settings(tmp_path, **overrides))
    await service.start(continuous=False)
    db = tmp_path / "v.db"
    try:
        with sqlite3.connect(db) as conn:
            conn.execute("DROP TABLE trades")
        n = 0
        while not any("% full" in p for p in service.problems()):
            await service.writer.put(trade(n))
            await service.writer.drain()
            n += 1
        (filling,) = [p for p in service.problems() if "% full" in p]
        assert filling.startswith(("storage: sqlite spool 8", "storage: sqlite spool 9"))
        total = n + 2_000
        intake = asyncio.create_task(_put(service, range(n, total)))
        await wait_for(lambda: any("spool full" in p for p in service.problems()))
        await wait_for(lambda: any("writer queue full" in p for p in service.problems()))
        assert not intake.done()  # intake waits; nothing accepted is dropped
        assert any("intake is waiting" in p for p in service.problems())
        with sqlite3.connect(db) as conn:
            for statement in schema.create_sql(schema.TRADES, "sqlite"):
                conn.execute(statement)
        await asyncio.wait_for(intake, 60)
        await wait_for(lambda: service.status()["healthy"], within=60)
        # Healthy means storing again, not done: the spool's last batches are still landing.
        await service.writer.drain()
        await wait_for(lambda: stored(db) == total, within=60)
    finally:
        await asyncio.wait_for(service.stop(), 60)


def stored(db: Path) -> int:
    return int(open_reader(db).execute("SELECT count(*) FROM trades").fetchone()[0])


async def _put(service: Service, numbers: range) -> None:
    for n in numbers:
        await service.writer.put(trade(n))


async def test_stop_while_storage_is_stuck_ends_and_says_what_was_lost(tmp_path: Path) -> None:
    """Storage down, its spool full, the writer's queue full: stop must still end, and log."""
    from venuefeed.venues.polymarket import Simulator as PolymarketSim

    from ..service.helpers import settings_for
    from ..sinks.helpers import FlakySink

    venue = PolymarketSim(seed=5, markets=2, events_per_second=200)
    await venue.start()
    down = FlakySink()
    stuck = SpoolingSink(down, tmp_path / "spool", max_bytes=2048)
    cfg = settings_for({"polymarket": venue}, tmp_path / "v.db", {
        "discovery.max_resolution_days": 0,
        "ingestion.queue_size": 50,
    })  # fmt: skip
    service = Service(cfg, sink=stuck)
    service.writer.close_patience_seconds = 1.0
    try:
        await service.start()
        runner = service.runners["polymarket"]
        await wait_for(lambda: runner.events > 50, within=30)
        down.down = True
        await wait_for(lambda: any("spool full" in p for p in service.problems()), within=30)
        await wait_for(lambda: service.writer.pending == 50, within=30)
        await asyncio.wait_for(service.stop(), 30)
    finally:
        await venue.stop()
    assert service.writer.abandoned > 0  # counted and logged, not silent
    assert stuck.status()["spooled_batches"] > 0  # what the spool took stays for the next start
