"""End to end: simulator -> WebSocket -> parse -> book -> pipeline -> durable SQLite row.

The Polymarket simulator runs in its own process (as a venue would), the
service in this one (and, where storage runs in a process of its own, that
process is counted with it). Two phases, each with a fresh simulator and
database:

* **fixed rate** (default 5,000 *events*/s offered): the simulator is paced in
  steps, and one step yields :data:`EVENTS_PER_STEP` canonical events on
  average, so it is asked for ``rate / EVENTS_PER_STEP`` steps/s;
* **maximum rate**: the simulator sends as fast as it can.

Per phase: events/s through the pipeline, latency from the simulator's print
timestamp to the trade row's commit (p50/p99/max), whether a backlog grew
(the queues between the socket and the store, sampled every 0.25 s: their
median over the last quarter of the run above that of the first quarter by
more than a few batches), peak memory (PSS summed over processes) and CPU %
of the ingesting side (this process and its children, not the simulator),
and CPU µs per event (all of them, and the event loop's process alone) -- the
figure that stays comparable on a shared machine, where a starved process
backlogs at any rate (the load average is printed with each phase).

Every trade the simulator printed in the window is accounted for. At the end of
the window the simulator's market is paused and the run waits (``--drain-seconds``)
until what was printed has been delivered and stored: the simulator's outboxes
empty, the service's queues empty. Then ``trades_generated`` (printed in the
window) = ``trades_committed`` (stored, at any time) + ``trades_undelivered`` (the
simulator never wrote them to a socket: ``trade_undelivered`` in its ground truth,
e.g. outboxes discarded at a slow-consumer cut or at a drain that timed out) +
``trades_missing`` (delivered and not stored: the service's loss, or frames it
refused -- ``frames_rejected`` by reason). ``trades_committed_in_window`` is what
was stored before the window ended, the rest waited in a backlog (``drain_s``).

Prints figures only (no pass/fail). With ``--json`` the last line is one JSON
object ``{"fixed_rate": {...}, "max_rate": {...}}`` (the phases run: ``--phases``).
``--help`` for options.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import cProfile
import json
import os
import pstats
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from venuefeed import loop as event_loop
from venuefeed.config import load_config
from venuefeed.log import configure
from venuefeed.models import Trade
from venuefeed.service import Service
from venuefeed.venues.polymarket import parse as pm_parse

EVENTS_PER_STEP = 1.75
"""Canonical events per simulator step, measured with this bench at a rate the service
keeps up with (events/s ingested ÷ steps/s): price changes of one or two tokens, trades
with their price update, best bid/ask, an occasional full book."""

BACKLOG_SLACK = 2_000
"""Queued items the last quarter of a run may exceed the first quarter by without
calling it a growing backlog (a few batches in flight are not a backlog)."""

_TICK = os.sysconf("SC_CLK_TCK")


async def start_simulator(steps: float, markets: int, truth: Path) -> tuple[Any, dict[str, str]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "venuefeed.cli", "--log-level", "WARNING", "sim", "polymarket",
        "--port", "0", "--seed", "1", "--events-per-second", str(steps), "--truth", str(truth),
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


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return out


def _ingest_pids(exclude: int) -> list[int]:
    """This process and its descendants, without the simulator."""
    pids, todo = [], [os.getpid()]
    while todo:
        pid = todo.pop()
        if pid == exclude:
            continue
        pids.append(pid)
        todo.extend(_children(pid))
    return pids


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime


def _rss_mb(pid: int) -> float:
    """Proportional set size: pages a forked writer shares with its parent count once."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class Probe:
    """Samples queue depth, RSS and CPU of the ingesting processes while a phase runs."""

    def __init__(self, service: Service, sim_pid: int) -> None:
        self.service = service
        self.sim_pid = sim_pid
        self.queued: list[int] = []
        self.rss_peak = 0.0
        self.cpu: dict[int, float] = {}

    def queue_depth(self) -> int:
        held = self.service.writer.held
        for runner in self.service.runners.values():
            if runner.stream is not None:
                held += runner.stream.backlog()
        return held

    def cpu_total(self) -> tuple[float, float]:
        """CPU seconds of all ingesting processes, and of the event loop's process alone."""
        for pid in _ingest_pids(self.sim_pid):
            self.cpu[pid] = _cpu_seconds(pid)  # keep the last value of a child that exited
        return sum(self.cpu.values()), self.cpu.get(os.getpid(), 0.0)

    async def run(self) -> None:
        while True:
            self.queued.append(self.queue_depth())
            rss = sum(_rss_mb(pid) for pid in _ingest_pids(self.sim_pid))
            self.rss_peak = max(self.rss_peak, rss)
            await asyncio.sleep(0.25)

    def backlog(self) -> bool:
        quarter = max(1, len(self.queued) // 4)
        first = statistics.median(self.queued[:quarter])
        last = statistics.median(self.queued[-quarter:])
        return last > first + BACKLOG_SLACK


async def sim_state(http: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    async with http.get(f"{base}/__sim/state") as response:
        state: dict[str, Any] = await response.json()
        return state


async def drain(probe: Probe, runner: Any, base: str, limit: float) -> tuple[bool, float, int]:
    """Pause the simulator's market and wait until what it printed is delivered and stored:
    its outboxes empty, the service's queues empty and no event arriving for 0.5 s.
    Returns (drained, seconds waited, frames still in the simulator's outboxes)."""
    started = time.monotonic()
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/__sim/pause") as response:
            response.raise_for_status()
        quiet_since, events = time.monotonic(), runner.events
        while True:
            outbox = int((await sim_state(http, base))["outbox"])
            now = time.monotonic()
            if runner.events != events or outbox or probe.queue_depth():
                quiet_since, events = now, runner.events
            elif now - quiet_since >= 0.5:
                return True, round(now - started, 1), 0
            if now - started > limit:
                return False, round(now - started, 1), outbox
            await asyncio.sleep(0.1)


def _rejects(runner: Any) -> collections.Counter[str]:
    stream = runner.stream
    return collections.Counter(stream.stats().get("rejects", {}) if stream is not None else {})


async def run_phase(events_rate: float | None, seconds: float, tokens: int, warmup: float,
                    profile: Path | None, drain_limit: float) -> dict[str, Any]:  # fmt: skip
    workdir = Path(tempfile.mkdtemp(prefix="venuefeed-bench-"))
    truth = workdir / "truth.jsonl"
    markets = max(1, tokens // 2)
    steps = events_rate / EVENTS_PER_STEP if events_rate else 0
    sim, urls = await start_simulator(steps, markets, truth)
    settings = load_config(
        overrides={
            "storage.sqlite_path": workdir / "bench.db",
            "storage.spool_dir": workdir / "spool",
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
    probe = Probe(service, sim.pid)
    sampler = asyncio.create_task(probe.run())
    rejects0 = _rejects(runner)
    events0, cpu0, t0 = runner.events, probe.cpu_total(), time.monotonic()
    start_ns = time.time_ns()
    profiler = cProfile.Profile() if profile else None
    if profiler is not None:
        profiler.enable()
    await asyncio.sleep(seconds)
    events1, cpu1, t1 = runner.events, probe.cpu_total(), time.monotonic()
    if profiler is not None and profile is not None:
        profiler.disable()
        profiler.dump_stats(profile)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    end_ns = time.time_ns()
    sampler.cancel()
    backlog = probe.backlog()
    queued_end = probe.queue_depth()
    async with aiohttp.ClientSession() as http:
        sim_outbox_end = int((await sim_state(http, urls["gamma"]))["outbox"])
    drained, drain_s, sim_outbox_left = await drain(probe, runner, urls["gamma"], drain_limit)
    rejected = _rejects(runner) - rejects0
    await service.stop_continuous()  # intake first: the simulator going away is no gap to heal
    sim.terminate()
    await sim.wait()
    await service.stop()
    latencies = []
    generated: dict[str, str] = {}  # transaction hash -> trade id, printed in the window
    unsent: set[str] = set()
    cuts: collections.Counter[str] = collections.Counter()
    in_window = 0
    with truth.open("rb") as fh:
        for line in fh:
            entry = json.loads(line)
            kind = entry.get("kind")
            if kind == "trade_undelivered":
                unsent.add(entry["transaction_hash"])
            elif kind == "ws_cut":
                cuts[entry["reason"]] += 1
            if kind != "trade" or not start_ns <= entry["sent_ns"] < end_ns:
                continue
            tid = pm_parse.trade_id(entry["token_id"], entry["side"].lower(), entry["size"],
                                    entry["price"], entry["transaction_hash"])  # fmt: skip
            generated[entry["transaction_hash"]] = tid
            if tid in committed:
                latencies.append(committed[tid] - entry["sent_ns"])
                in_window += committed[tid] < end_ns
    latencies.sort()
    undelivered = sum(1 for tx, tid in generated.items() if tx in unsent and tid not in committed)

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] / 1e6 if latencies else 0

    wall = t1 - t0
    return {
        "offered_events_per_s": events_rate,
        "simulator_steps_per_s": round(steps, 1) if steps else None,
        "tokens": len(runner.instruments),
        "events_per_s": round((events1 - events0) / wall),
        "trades_generated": len(generated),
        "trades_committed": len(latencies),
        "trades_committed_in_window": in_window,
        "trades_undelivered": undelivered,
        "trades_missing": len(generated) - len(latencies) - undelivered,
        "frames_rejected": dict(rejected),
        "cuts": dict(cuts),
        "latency_ms": {
            "p50": round(pct(0.5), 3),
            "p99": round(pct(0.99), 3),
            "max": round(latencies[-1] / 1e6, 3) if latencies else 0,
        },
        "backlog": backlog,
        "queued_end": queued_end,
        "sim_outbox_end": sim_outbox_end,
        "drained": drained,
        "drain_s": drain_s,
        "sim_outbox_after_drain": sim_outbox_left,
        "rss_mb": round(probe.rss_peak, 1),
        "cpu_pct": round(100 * (cpu1[0] - cpu0[0]) / wall, 1),
        "cpu_us_per_event": round(1e6 * (cpu1[0] - cpu0[0]) / max(1, events1 - events0), 1),
        "loop_cpu_us_per_event": round(1e6 * (cpu1[1] - cpu0[1]) / max(1, events1 - events0), 1),
        "load_avg": round(os.getloadavg()[0], 1),
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=5000, help="fixed-rate phase: events/s")
    parser.add_argument("--seconds", type=float, default=60, help="fixed-rate phase length")
    parser.add_argument("--max-seconds", type=float, default=20, help="max-rate phase length")
    parser.add_argument("--tokens", type=int, default=5000, help="subscribed tokens (2 a market)")
    parser.add_argument("--warmup", type=float, default=8.0)
    parser.add_argument("--drain-seconds", type=float, default=60.0,
                        help="after a phase: the longest wait for its backlog")  # fmt: skip
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop",
                        help="event loop (uvloop: as `venuefeed run` picks it)")  # fmt: skip
    parser.add_argument("--phases", choices=("both", "fixed", "max"), default="both",
                        help="run both phases (the default) or one")  # fmt: skip
    parser.add_argument("--profile", type=Path, help="cProfile the fixed-rate window to a file")
    parser.add_argument("--json", action="store_true", help="last line: one JSON object")
    return parser.parse_args()


async def main(args: argparse.Namespace) -> None:
    configure("ERROR", "console")
    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} cores, load {load:.1f}, Python {sys.version.split()[0]}, "
          f"{sys.platform}, loop {type(asyncio.get_running_loop()).__module__}")  # fmt: skip
    out: dict[str, Any] = {}
    if args.phases in ("both", "fixed"):
        out["fixed_rate"] = await run_phase(args.rate, args.seconds, args.tokens, args.warmup,
                                            args.profile, args.drain_seconds)  # fmt: skip
        print("fixed rate:", json.dumps(out["fixed_rate"]))
    if args.phases in ("both", "max"):
        out["max_rate"] = await run_phase(None, args.max_seconds, args.tokens, args.warmup, None,
                                          args.drain_seconds)  # fmt: skip
        print("max rate:  ", json.dumps(out["max_rate"]))
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    arguments = parse_args()
    event_loop.run(main(arguments), uvloop_wanted=arguments.loop == "uvloop")
