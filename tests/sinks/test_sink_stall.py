"""A network sink whose server stalls -- the socket stays open, nothing moves, no RST.

The nastiest outage: nothing fails, it just never answers. Each test puts a
:class:`StallingProxy` between the sink and the machine's real server, turns
it into a black hole mid-run, and checks that every write still returns
within the sink's deadline (the batch goes to the spool, not into memory),
that status names the stall, that close during the stall is bounded and
keeps the spool, and that after the stall everything is stored exactly once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import nats
import pytest

from venuefeed.chaos.proxy import StallingProxy
from venuefeed.pipeline.writer import SinkWriter
from venuefeed.sinks.base import Sink
from venuefeed.sinks.nats import NatsSink
from venuefeed.sinks.postgres import PostgresStore
from venuefeed.sinks.spool import SpoolingSink
from venuefeed.sinks.sqlite import open_reader

from .helpers import require_nats, require_postgres, trade

DEADLINE = 1.0
BATCH = 20


async def wait_for(predicate: Callable[[], bool], within: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


@pytest.fixture
async def pg() -> AsyncIterator[tuple[str, str]]:
    url = require_postgres()
    pg_schema = f"vf_stall_{uuid.uuid4().hex[:10]}"
    yield url, pg_schema
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{pg_schema}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture
async def jetstream() -> AsyncIterator[tuple[str, str, str]]:
    url = require_nats()
    token = uuid.uuid4().hex[:10]
    stream, prefix = f"VFSTALL_{token}", f"vfstall{token}"
    yield url, stream, prefix
    nc = await nats.connect(url)
    try:
        await nc.jetstream().delete_stream(stream)
    except Exception:  # never created
        pass
    finally:
        await nc.close()


async def pg_trade_ids(url: str, pg_schema: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        return [r[0] for r in await conn.fetch(f'SELECT trade_id FROM "{pg_schema}".trades')]
    finally:
        await conn.close()


async def nats_msg_ids(url: str, stream: str, subjects: str = ">") -> list[str]:
    nc = await nats.connect(url)
    js = nc.jetstream()
    try:
        info = await js.stream_info(stream)
        ids = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await js.get_msg(stream, seq)
            if subjects == ">" or ".market_trades." in msg.subject:
                ids.append((msg.headers or {})["Nats-Msg-Id"])
        return ids
    finally:
        await nc.close()


async def run_through_stall(sink: Sink, proxy: StallingProxy, spool_dir: Path) -> SpoolingSink:
    """Write 30 batches, the middle 15 with the proxy stalled; return once all are replayed."""
    spool = SpoolingSink(sink, spool_dir, 50_000_000, retry_max_seconds=0.2)
    writer = SinkWriter(spool, batch_size=BATCH)
    await spool.start()
    writer.start()

    async def batch(k: int) -> None:
        for i in range(BATCH):
            await writer.put(trade(k * BATCH + i, instrument=f"i{i % 3}"))
        # Bounded by the deadline, not by the stall: the spool takes what the sink does not.
        await asyncio.wait_for(writer.drain(), 10 * DEADLINE + 10)

    for k in range(5):
        await batch(k)
    proxy.stall()
    for k in range(5, 20):
        await batch(k)
    assert spool.status()["spooled_batches"] > 0
    assert writer.held == 0 and writer.failing_since is None  # on disk, not in memory
    (problem,) = writer.problems()
    assert problem.startswith(f"storage: {sink.name}: ") and "records in the spool" in problem
    proxy.pass_through()
    for k in range(20, 30):
        await batch(k)
    await wait_for(lambda: spool.status()["spooled_batches"] == 0, within=60)
    await writer.close()
    await asyncio.wait_for(spool.close(), 30)
    assert writer.problems() == []
    return spool


async def test_postgres_stall_spools_within_the_deadline_and_lands_once(
    tmp_path: Path, pg: tuple[str, str]
) -> None:
    url, pg_schema = pg
    proxy = StallingProxy("127.0.0.1", 5432)
    await proxy.start()
    store = PostgresStore(proxy.url(url, 5432), pg_schema=pg_schema, write_timeout=DEADLINE,
                          connect_timeout=DEADLINE)  # fmt: skip
    try:
        await run_through_stall(store, proxy, tmp_path)
    finally:
        await proxy.stop()
    ids = await pg_trade_ids(url, pg_schema)
    assert sorted(ids) == sorted(f"t{n}" for n in range(30 * BATCH))


async def test_nats_stall_spools_within_the_deadline_and_lands_once(
    tmp_path: Path, jetstream: tuple[str, str, str]
) -> None:
    url, stream, prefix = jetstream
    proxy = StallingProxy("127.0.0.1", 4222)
    await proxy.start()
    sink = NatsSink(proxy.url(url, 4222), subject_prefix=prefix, stream=stream,
                    ack_timeout=DEADLINE)  # fmt: skip
    try:
        await run_through_stall(sink, proxy, tmp_path)
    finally:
        await proxy.stop()
    ids = await nats_msg_ids(url, stream)
    assert len(ids) == len(set(ids)) == 30 * BATCH


async def close_during_stall(
    make: Callable[[], Sink], proxy: StallingProxy, spool_dir: Path
) -> None:
    """Spool during a stall, close while it lasts (bounded), replay after it in a new sink."""
    first = SpoolingSink(make(), spool_dir, 50_000_000, close_timeout_seconds=DEADLINE)
    await first.start()
    await first.write([trade(n) for n in range(10)])
    proxy.stall()
    for k in range(1, 5):
        await asyncio.wait_for(first.write([trade(k * 10 + n) for n in range(10)]), 30)
    assert first.status()["spooled_records"] >= 30
    await asyncio.wait_for(first.close(), 30)  # bounded although nothing answers
    assert spooled(spool_dir)  # kept for the next start
    proxy.pass_through()
    second = SpoolingSink(make(), spool_dir, 50_000_000)
    await second.start()
    await wait_for(lambda: second.status()["spooled_batches"] == 0)
    await second.close()


async def test_postgres_close_during_a_stall_is_bounded_and_keeps_the_spool(
    tmp_path: Path, pg: tuple[str, str]
) -> None:
    url, pg_schema = pg
    proxy = StallingProxy("127.0.0.1", 5432)
    await proxy.start()

    def make() -> Sink:
        return PostgresStore(proxy.url(url, 5432), pg_schema=pg_schema, write_timeout=DEADLINE,
                             connect_timeout=DEADLINE, close_timeout=DEADLINE)  # fmt: skip

    try:
        await close_during_stall(make, proxy, tmp_path)
    finally:
        await proxy.stop()
    ids = await pg_trade_ids(url, pg_schema)
    assert sorted(ids) == sorted(f"t{n}" for n in range(50))


async def test_nats_close_during_a_stall_is_bounded_and_keeps_the_spool(
    tmp_path: Path, jetstream: tuple[str, str, str]
) -> None:
    url, stream, prefix = jetstream
    proxy = StallingProxy("127.0.0.1", 4222)
    await proxy.start()

    def make() -> Sink:
        return NatsSink(proxy.url(url, 4222), subject_prefix=prefix, stream=stream,
                        ack_timeout=DEADLINE, close_timeout=DEADLINE)  # fmt: skip

    try:
        await close_during_stall(make, proxy, tmp_path)
    finally:
        await proxy.stop()
    ids = await nats_msg_ids(url, stream)
    assert len(ids) == len(set(ids)) == 50


@pytest.mark.slow
async def test_sigterm_during_a_stall_exits_cleanly_and_nothing_is_lost(
    tmp_path: Path, pg: tuple[str, str], jetstream: tuple[str, str, str]
) -> None:
    """``venuefeed run`` with SQLite, PostgreSQL and NATS; both servers stall; SIGTERM."""
    from venuefeed.venues.polymarket import Simulator as PolymarketSim

    pg_url, pg_schema = pg
    nats_url, stream, prefix = jetstream
    pg_proxy, nats_proxy = StallingProxy("127.0.0.1", 5432), StallingProxy("127.0.0.1", 4222)
    await pg_proxy.start()
    await nats_proxy.start()
    venue = PolymarketSim(seed=4, markets=3, events_per_second=100)
    await venue.start()
    db, spool_dir = tmp_path / "v.db", tmp_path / "spool"
    env: dict[str, Any] = {
        **os.environ,
        "VENUEFEED_STORAGE__SINKS": '["sqlite", "postgres", "nats"]',
        "VENUEFEED_STORAGE__SQLITE_PATH": str(db),
        "VENUEFEED_STORAGE__SPOOL_DIR": str(spool_dir),
        "VENUEFEED_STORAGE__DEAD_LETTER_PATH": str(tmp_path / "dead.jsonl"),
        "VENUEFEED_STORAGE__DATABASE_URL": pg_proxy.url(pg_url, 5432),
        "VENUEFEED_STORAGE__POSTGRES_SCHEMA": pg_schema,
        "VENUEFEED_STORAGE__POSTGRES_WRITE_TIMEOUT_SECONDS": "1",
        "VENUEFEED_STORAGE__CLOSE_TIMEOUT_SECONDS": "2",
        "VENUEFEED_BUS__NATS_URL": nats_proxy.url(nats_url, 4222),
        "VENUEFEED_BUS__NATS_STREAM": stream,
        "VENUEFEED_BUS__NATS_SUBJECT_PREFIX": prefix,
        "VENUEFEED_BUS__NATS_ACK_TIMEOUT_SECONDS": "1",
        "VENUEFEED_API__ENABLED": "false",
        "VENUEFEED_VENUES__KALSHI__ENABLED": "false",
        "VENUEFEED_DISCOVERY__MAX_RESOLUTION_DAYS": "0",
        "VENUEFEED_VENUES__POLYMARKET__URLS": __import__("json").dumps(venue.urls()),
        "VENUEFEED_VENUES__POLYMARKET__RATE_LIMIT": '{"requests_per_second": 500, "burst": 500}',
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "venuefeed.cli", "run", env=env, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await wait_for(lambda: len(sqlite_trades(db)) > 30, within=60)
        pg_proxy.stall()
        nats_proxy.stall()
        await wait_for(
            lambda: spooled(spool_dir / "postgres") and spooled(spool_dir / "nats"), within=60
        )
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
        await venue.stop()
    assert proc.returncode == 0, err.decode()[-3000:]
    assert b"Traceback" not in out + err, (out + err).decode()[-3000:]
    assert spooled(spool_dir / "postgres") and spooled(spool_dir / "nats")  # kept
    pg_proxy.pass_through()
    nats_proxy.pass_through()
    await pg_proxy.stop()
    await nats_proxy.stop()
    # The next start replays the spools: both servers get everything SQLite got, once.
    replay_pg = SpoolingSink(PostgresStore(pg_url, pg_schema=pg_schema), spool_dir / "postgres",
                             50_000_000)  # fmt: skip
    replay_nats = SpoolingSink(NatsSink(nats_url, subject_prefix=prefix, stream=stream),
                               spool_dir / "nats", 50_000_000)  # fmt: skip
    for replay in (replay_pg, replay_nats):
        await replay.start()
        await wait_for(lambda r=replay: r.status()["spooled_batches"] == 0)  # type: ignore[misc]
        await replay.close()
    stored = sqlite_trades(db)
    assert len(stored) > 30
    pg_ids = await pg_trade_ids(pg_url, pg_schema)
    assert sorted(pg_ids) == sorted(stored)
    assert len(await nats_msg_ids(nats_url, stream, "market_trades")) == len(stored)


def sqlite_trades(db: Path) -> list[str]:
    if not db.exists():
        return []
    try:
        conn = open_reader(db)
        try:
            return [r[0] for r in conn.execute("SELECT trade_id FROM trades")]
        finally:
            conn.close()
    except Exception:  # not created or not migrated yet
        return []


def spooled(directory: Path) -> bool:
    return any(p.stat().st_size > 0 for p in directory.glob("seg-*.spool"))
