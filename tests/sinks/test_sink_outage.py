"""A sink's server goes away in the middle of a run; after it returns, everything is stored once.

The server is not stopped (other tests on this machine use it): the sink talks
to it through a loopback TCP proxy that the test closes -- cutting every open
connection and refusing new ones -- and reopens. The outage lasts
``VENUEFEED_OUTAGE_SECONDS`` (3 s by default; the issue's 30 s scenario is
``VENUEFEED_OUTAGE_SECONDS=30``).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import asyncpg
import nats
import pytest

from venuefeed.chaos.proxy import StallingProxy
from venuefeed.sinks.base import Sink
from venuefeed.sinks.nats import NatsSink
from venuefeed.sinks.postgres import PostgresStore
from venuefeed.sinks.spool import SpoolingSink

from .helpers import require_nats, require_postgres, trade

OUTAGE = float(os.environ.get("VENUEFEED_OUTAGE_SECONDS", "3"))
BATCHES, PER_BATCH = 60, 20


async def run_through_outage(sink: Sink, proxy: StallingProxy, spool_dir: Path) -> SpoolingSink:
    """Write BATCHES batches at a steady pace with the proxy down for OUTAGE in the middle.

    Every batch is also written a second time later (at-least-once delivery),
    and the batch before the outage is replayed after it.
    """
    spool = SpoolingSink(sink, spool_dir, max_bytes=50_000_000, retry_max_seconds=0.25)
    await spool.start()
    pace = (OUTAGE * 2) / BATCHES
    batches = [
        [trade(k * PER_BATCH + i, instrument=f"i{i % 3}") for i in range(PER_BATCH)]
        for k in range(BATCHES)
    ]

    async def outage() -> None:
        await asyncio.sleep(OUTAGE / 2)
        proxy.refuse()
        await asyncio.sleep(OUTAGE)
        proxy.pass_through()

    chaos = asyncio.create_task(outage())
    for k, batch in enumerate(batches):
        await spool.write(batch)
        if k % 10 == 9:
            await spool.write(batches[k - 5])  # delivered again
        await asyncio.sleep(pace)
    await chaos
    for _ in range(int(OUTAGE * 20) + 200):
        if spool.status()["spooled_batches"] == 0:
            break
        await asyncio.sleep(0.05)
    assert spool.status()["spooled_batches"] == 0, spool.status()
    assert spool.spooled_total > 0, "the outage never reached the sink"
    await spool.close()
    return spool


@pytest.mark.slow
async def test_postgres_outage_every_event_stored_once(tmp_path: Path) -> None:
    url = require_postgres()
    proxy = StallingProxy("127.0.0.1", 5432)
    await proxy.start()
    pg_schema = f"vf_outage_{uuid.uuid4().hex[:10]}"
    proxied = url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    store = PostgresStore(proxied, pg_schema=pg_schema, write_timeout=2, connect_timeout=1)
    try:
        await run_through_outage(store, proxy, tmp_path)
        conn = await asyncpg.connect(url)
        try:
            ids = await conn.fetch(f'SELECT trade_id FROM "{pg_schema}".trades')
        finally:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{pg_schema}" CASCADE')
            await conn.close()
    finally:
        await proxy.stop()
    assert sorted(r["trade_id"] for r in ids) == sorted(f"t{n}" for n in range(BATCHES * PER_BATCH))


@pytest.mark.slow
async def test_nats_outage_every_event_stored_once(tmp_path: Path) -> None:
    url = require_nats()
    proxy = StallingProxy("127.0.0.1", 4222)
    await proxy.start()
    token = uuid.uuid4().hex[:10]
    stream, prefix = f"VFOUTAGE_{token}", f"vfoutage{token}"
    sink = NatsSink(
        f"nats://127.0.0.1:{proxy.port}", subject_prefix=prefix, stream=stream, ack_timeout=1
    )
    try:
        await run_through_outage(sink, proxy, tmp_path)
    finally:
        await proxy.stop()
    nc = await nats.connect(url)
    js = nc.jetstream()
    try:
        info = await js.stream_info(stream)
        seqs = range(info.state.first_seq, info.state.last_seq + 1)
        ids = [(await js.get_msg(stream, s)).headers["Nats-Msg-Id"] for s in seqs]  # type: ignore[index]
        await js.delete_stream(stream)
    finally:
        await nc.close()
    assert info.state.messages == BATCHES * PER_BATCH
    assert len(set(ids)) == len(ids) == BATCHES * PER_BATCH
