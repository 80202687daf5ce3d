"""The longer cluster scenarios (``make cluster-test``): a NATS node, a writer, membership.

One cluster run, three phases back to back, each judged on its own window of
ground truth and all together: a NATS node killed and restarted (ingestion
and writing go on), a writer killed with a batch in hand (redelivery, no
loss, no duplicate row), a worker added and then removed (only the shards
the newcomer wins move, about 1/N, and they move back to where they were).
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest

from tests.sinks.helpers import require_postgres
from venuefeed.cluster.lab import SHARDS, ClusterRun, Sizes, stale_messages

TTL = 10.0
"""Longer than the fast test's: thousands of instruments keep a loaded machine's workers busy."""

pytestmark = pytest.mark.cluster_long


@pytest.mark.timeout(600)
async def test_nats_node_writer_kill_and_membership_changes(tmp_path: Path) -> None:
    sizes = Sizes(polymarket_markets=600, kalshi_markets=2000, kalshi_trading=60)
    run = ClusterRun(tmp_path, require_postgres(), ttl=TTL, sizes=sizes)
    try:
        await run.start(workers=3, writers=2)
        await run.wait_owned({"w1", "w2", "w3"}, within=90)
        universe, deadline = 0, time.monotonic() + 60
        while universe < 1500 and time.monotonic() < deadline:  # discovery pages on
            await asyncio.sleep(1)
            universe = sum(w["instruments"] for w in (await run.status())["workers"])
        print(f"universe: {universe} instruments")
        assert universe >= 1500

        # A NATS node killed, then restarted: the stream and buckets (R3) keep quorum.
        start = time.time_ns()
        await run.nats.nodes[0].kill()
        await asyncio.sleep(6)
        await run.nats.restart(0)
        await asyncio.sleep(4)
        await run.wait_owned({"w1", "w2", "w3"}, within=60)
        run.phase("NATS node", start)

        # A writer frozen with a batch in hand, then killed: its batch comes back.
        start = time.time_ns()
        run.writers["r1"].signal(signal.SIGSTOP)
        await asyncio.sleep(2)  # the server hands it messages it will never acknowledge
        await run.writers["r1"].kill()
        await asyncio.sleep(8)  # past writer_ack_wait_seconds: redelivered to r2
        await run.add_writer("r3")
        run.phase("writer kill", start)

        # A worker added: only the shards it wins move; removed: they move back.
        start = time.time_ns()
        before = await run.owners()
        await run.add_worker("w4")
        await run.wait_owned({"w1", "w2", "w3", "w4"}, within=60)
        with_w4 = await run.owners()
        moved = {k for k in with_w4 if with_w4[k] != before[k]}
        assert moved and all(with_w4[k] == "w4" for k in moved)
        print(
            f"worker added: {len(moved)} of {2 * SHARDS} shards moved (1/N = {2 * SHARDS / 4:.0f})"
        )
        assert len(moved) <= SHARDS  # about 1/4 of 16; never half
        await run.workers["w4"].terminate()
        await run.wait_owned({"w1", "w2", "w3"}, within=60)
        assert await run.owners() == before  # back exactly where they were
        run.phase("worker +/-", start)

        outcome = await run.finish()
        print(outcome.table())
        stale, stamped = await stale_messages(run.nats.urls, "VENUEFEED", "vft-state")
        redelivered = sum(int(w.get("redelivered") or 0) for w in outcome.writer_stats)
        print("stale", stale, "of", stamped, "redelivered", redelivered)
        assert outcome.settled and outcome.complete(), outcome.table()
        assert all(r.emitted > 0 for rs in outcome.results.values() for r in rs)
        assert stale == sum(int(w.get("refused") or 0) for w in outcome.writer_stats)
        assert redelivered > 0  # the killed writer's batch really came back
    finally:
        await run.close()
