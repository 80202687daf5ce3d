"""End to end: simulator -> WebSocket -> parse -> book -> pipeline -> SQLite commit.

The Polymarket simulator runs in its own process (as a venue would), the
service in this one. Two phases:

* fixed rate (default 5,000 msgs/s for 60 s): messages/s sustained, latency
  from the simulator's send timestamp to the trade row's commit (p50, p99,
  max), peak RSS and CPU % of the ingesting process;
* maximum rate: the simulator sends as fast as it can; messages/s ingested.

Prints figures only (no pass/fail). ``python bench/bench_e2e.py --help``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from venuefeed.config import load_config
from venuefeed.log import configure
from venuefeed.models import Trade
from venuefeed.service import Service
from venuefeed.venues.polymarket import parse as pm_parse

NS = 1_000_000_000


async def start_simulator(rate: float, markets: int, truth: Path) -> tuple[Any, dict[str, str]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "venuefeed.cli", "--log-level", "WARNING", "sim", "polymarket",
        "--port", "0", "--seed", "1", "--events-per-second", str(rate), "--truth", str(truth),
        "--set", f"markets={markets}",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    urls: dict[str, str] = {}
    while len(urls) < 4:
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        if not line:
            raise RuntimeError("simulator exited")
        match = re.match(r"\s+(gamma|clob|data|ws): (\S+)", line)
        if match:
            urls[match[1]] = match[2]
    return proc, urls


async def run_phase(rate: float, seconds: float, markets: int, warmup: float) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="venuefeed-bench-"))
    truth = workdir / "truth.jsonl"
    sim, urls = await start_simulator(rate, markets, truth)
    settings = load_config(
        overrides={
            "storage.sqlite_path": workdir / "bench.db",
            "venues.kalshi.enabled": False,
            "venues.polymarket.urls": urls,
            "venues.polymarket.rate_limit": {"requests_per_second": 1000, "burst": 1000},
            "discovery.max_resolution_days": 0,
            "discovery.max_markets": markets,
            "discovery.interval_seconds": 3600,
            "api.enabled": False,
        },
        environ={},
    )
    committed: dict[str, int] = {}

    def on_stored(batch: Any) -> None:
        now = time.time_ns()
        for record in batch:
            if type(record) is Trade:
                committed[record.trade_id] = now

    service = Service(settings)
    service.writer.on_stored(on_stored)
    await service.start()
    runner = service.runners["polymarket"]
    await asyncio.sleep(warmup)  # discovery, subscriptions, initial snapshots
    events0, cpu0, t0 = runner.events, time.process_time(), time.monotonic()
    start_ns = time.time_ns()
    await asyncio.sleep(seconds)
    events1, cpu1, t1 = runner.events, time.process_time(), time.monotonic()
    end_ns = time.time_ns()
    sim.terminate()
    await sim.wait()
    await service.stop()
    latencies = []
    sent = 0
    with truth.open("rb") as fh:
        for line in fh:
            entry = json.loads(line)
            if entry.get("kind") != "trade" or not start_ns <= entry["sent_ns"] < end_ns:
                continue
            sent += 1
            tid = pm_parse.trade_id(entry["token_id"], entry["side"].lower(), entry["size"],
                                    entry["price"], entry["transaction_hash"])  # fmt: skip
            if tid in committed:
                latencies.append(committed[tid] - entry["sent_ns"])
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] / 1e6 if latencies else 0

    wall = t1 - t0
    return {
        "target_rate": rate or "max",
        "subscribed_tokens": len(runner.instruments),
        "events_per_s": round((events1 - events0) / wall),
        "trades_sent": sent,
        "trades_committed": len(latencies),
        "latency_ms": {
            "p50": round(pct(0.5), 3),
            "p99": round(pct(0.99), 3),
            "max": round(latencies[-1] / 1e6, 3) if latencies else 0,
        },
        "cpu_percent": round(100 * (cpu1 - cpu0) / wall, 1),
        "rss_peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rate", type=float, default=5000, help="fixed-rate phase: simulator steps/s"
    )
    parser.add_argument("--seconds", type=float, default=60, help="fixed-rate phase length")
    parser.add_argument("--max-seconds", type=float, default=20, help="max-rate phase length")
    parser.add_argument("--markets", type=int, default=2500, help="markets (2 tokens each)")
    parser.add_argument("--warmup", type=float, default=8.0)
    args = parser.parse_args()
    configure("WARNING", "console")
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, {sys.platform}")
    fixed = await run_phase(args.rate, args.seconds, args.markets, args.warmup)
    print("fixed rate:", json.dumps(fixed))
    peak = await run_phase(0, args.max_seconds, args.markets, args.warmup)
    print("max rate:  ", json.dumps(peak))


if __name__ == "__main__":
    asyncio.run(main())
