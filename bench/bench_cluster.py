"""Cluster figures: events/s with 1, 2 and 3 workers; failover time over repeated kill -9.

One real cluster on this machine (:mod:`venuefeed.cluster.lab`): a 3-node
NATS cluster with 3 replicas, the Polymarket and Kalshi simulators, 2 writers
into PostgreSQL, and workers added one at a time.

* **Scaling**: with 1, then 2, then 3 workers (each time after the shards
  settled on their rendezvous owners), the messages the workers put on the
  JetStream stream per second over ``--seconds``, and the trades the writers
  stored per second in the same window. The simulators send at ``--rate``
  events/s each; on a machine where they are not the limit, the workers are.
* **Failover**: ``--kills`` times, one worker (round robin) gets SIGKILL; the
  time from the kill until every shard is held by the owner rendezvous
  hashing picks among the survivors; then a fresh worker replaces it.

At the end the simulators pause and the ground truth is compared with
PostgreSQL (missing / duplicated trades). Figures only, no pass/fail.
``python bench/bench_cluster.py --help``.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import asyncpg

from venuefeed.cluster.jetstream import connect
from venuefeed.cluster.lab import ClusterRun, Sizes
from venuefeed.config import load_config

PG = "postgresql://postgres@127.0.0.1:5432/test"


async def _counts(run: ClusterRun) -> tuple[int, int]:
    """(messages on the stream, trades in PostgreSQL) right now."""
    settings = load_config(run.config)
    bus = await connect(settings, client_name="bench", within=10)
    try:
        messages = int((await bus.js.stream_info(bus.stream)).state.messages)
    finally:
        await bus.close()
    conn = await asyncpg.connect(run.pg_dsn, server_settings={"search_path": run.schema})
    try:
        trades = int(await conn.fetchval("SELECT count(*) FROM trades"))
    finally:
        await conn.close()
    return messages, trades


async def main(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    sizes = Sizes(polymarket_markets=args.markets, kalshi_markets=args.markets * 3,
                  kalshi_trading=args.markets // 4, events_per_second=args.rate)  # fmt: skip
    run = ClusterRun(folder, args.dsn, sizes=sizes, ttl=args.ttl)
    try:
        await run.start(workers=0, writers=2)
        members: set[str] = set()
        print(
            f"simulators: {args.rate:g} events/s each; lease TTL {args.ttl:g} s; logs in {folder}"
        )
        for n in (1, 2, 3):
            await run.add_worker(f"w{n}")
            members.add(f"w{n}")
            await run.wait_owned(members, within=120)
            await asyncio.sleep(3)  # past the take-over back-fills
            m0, t0 = await _counts(run)
            started = time.monotonic()
            await asyncio.sleep(args.seconds)
            m1, t1 = await _counts(run)
            took = time.monotonic() - started
            print(f"{n} worker(s): {(m1 - m0) / took:8.0f} messages/s published, "
                  f"{(t1 - t0) / took:7.0f} trades/s stored")  # fmt: skip
        times: list[float] = []
        alive = ["w1", "w2", "w3"]
        for kill in range(args.kills):
            victim = alive.pop(0)
            await run.workers[victim].kill()
            times.append(await run.wait_owned(set(alive), within=60))
            fresh = f"w{4 + kill}"
            await run.add_worker(fresh)
            alive.append(fresh)
            await run.wait_owned(set(alive), within=300)
            print(f"kill {kill + 1:>2}: {victim} -> shards re-owned in {times[-1]:.2f} s")
        if times:
            print(f"failover over {len(times)} kills: median {statistics.median(times):.2f} s, "
                  f"worst {max(times):.2f} s (lease TTL {args.ttl:g} s)")  # fmt: skip
        outcome = await run.finish()
        if not outcome.settled:
            print("NOT SETTLED within 90 s of the pause (the cluster was still catching up): "
                  "'missing' below includes trades not yet stored")  # fmt: skip
        for r in outcome.results["all"]:
            print(f"{r.venue}: {r.emitted} trades printed, {r.missing} missing, "
                  f"{r.duplicated} duplicated")  # fmt: skip
    finally:
        await run.close()
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=15.0, help="scaling window per step")
    parser.add_argument("--rate", type=float, default=400.0, help="events/s per simulator")
    parser.add_argument("--markets", type=int, default=200, help="Polymarket markets (Kalshi: x3)")
    parser.add_argument("--ttl", type=float, default=3.0)
    parser.add_argument("--dsn", default=PG)
    parser.add_argument("--keep", action="store_true", help="keep the logs folder")
    asyncio.run(main(parser.parse_args()))
