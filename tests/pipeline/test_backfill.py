"""Chunked backfill: killed mid-run and rerun equals an uninterrupted run, no duplicates."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from venuefeed.sim.base import Faults
from venuefeed.sinks.sqlite import open_reader
from venuefeed.venues.binance import Simulator

DAY_S = 86_400
START_S = 1_790_000_000 - 1_790_000_000 % DAY_S  # a fixed UTC midnight in the past


def env_for(sim: Simulator, db: Path) -> dict[str, str]:
    return {
        **os.environ,
        "VENUEFEED_STORAGE__SQLITE_PATH": str(db),
        "VENUEFEED_VENUES__BINANCE__URLS": json.dumps(sim.urls()),
        "VENUEFEED_VENUES__BINANCE__RATE_LIMIT": '{"requests_per_second": 1000, "burst": 1000}',
        "VENUEFEED_LOGGING__LEVEL": "WARNING",
    }


def backfill_cmd(kind: str, hours: int) -> list[str]:
    return [
        sys.executable, "-m", "venuefeed.cli", "backfill", "--venue", "binance",
        "--symbol", "BTCUSDT", "--kind", kind, "--interval", "1m",
        "--from", str(START_S), "--to", str(START_S + hours * 3600), "--concurrency", "2",
    ]  # fmt: skip


def rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    return [tuple(r) for r in open_reader(db).execute(sql).fetchall()]


async def run(cmd: list[str], env: dict[str, str], kill_after_chunks: int | None = None) -> int:
    proc = await asyncio.create_subprocess_exec(
        *cmd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    db = Path(env["VENUEFEED_STORAGE__SQLITE_PATH"])
    if kill_after_chunks is not None:
        for _ in range(600):
            await asyncio.sleep(0.05)
            if await asyncio.to_thread(db.exists):
                try:
                    done = rows(db, "SELECT count(*) FROM watermarks")[0][0]
                except Exception:  # the schema may not exist yet
                    continue
                if done >= kill_after_chunks:
                    proc.send_signal(signal.SIGKILL)
                    break
    _, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode in (0, -signal.SIGKILL), err.decode()[-2000:]
    return proc.returncode


async def test_candles_killed_and_resumed_equal_uninterrupted(tmp_path: Path) -> None:
    # A little latency per request so the kill lands mid-run, between chunks.
    async with Simulator(seed=3, faults=Faults(http_delay_seconds=0.05)) as sim:
        assert isinstance(sim, Simulator)
        whole, resumed = tmp_path / "whole.db", tmp_path / "resumed.db"
        hours = 48  # 2,880 one-minute candles: 3 chunks of 1,000
        assert await run(backfill_cmd("candles", hours), env_for(sim, whole)) == 0
        code = await run(backfill_cmd("candles", hours), env_for(sim, resumed), kill_after_chunks=1)
        assert code == -signal.SIGKILL
        partial = rows(resumed, "SELECT count(*) FROM candles")[0][0]
        marks_before = rows(resumed, "SELECT key FROM watermarks")
        assert 0 < partial < hours * 60  # it really stopped in the middle
        assert await run(backfill_cmd("candles", hours), env_for(sim, resumed)) == 0
    query = (
        "SELECT instrument, interval, open_time, open, high, low, close, volume "
        "FROM candles ORDER BY open_time"
    )
    assert rows(resumed, query) == rows(whole, query)
    assert len(rows(whole, query)) == hours * 60
    # chunks finished before the kill were not fetched again
    assert set(marks_before) <= set(rows(resumed, "SELECT key FROM watermarks"))


async def test_trades_rerun_skips_done_chunks_and_stores_nothing_twice(tmp_path: Path) -> None:
    async with Simulator(seed=4) as sim:
        assert isinstance(sim, Simulator)
        db = tmp_path / "t.db"
        env = env_for(sim, db)
        assert await run(backfill_cmd("trades", 3), env) == 0
        first = rows(db, "SELECT trade_id, price, size FROM trades ORDER BY trade_id")
        assert first and len({r[0] for r in first}) == len(first)
        proc = await asyncio.create_subprocess_exec(
            *backfill_cmd("trades", 3), env=env, stdout=asyncio.subprocess.PIPE
        )
        out, _ = await proc.communicate()
        assert b"0 chunk(s) fetched, 3 already done" in out
        assert rows(db, "SELECT trade_id, price, size FROM trades ORDER BY trade_id") == first
