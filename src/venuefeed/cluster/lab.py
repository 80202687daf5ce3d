"""A cluster on one machine, as real processes: the tests' and the benchmark's laboratory.

A 3-node NATS cluster, workers, writers and the venue simulators, each a
child process on loopback ports with its own log (and NATS store) in one
folder, killed at the end whatever happened.

The simulators, their ground truth,
the configuration of the venues and the read-back of PostgreSQL are the chaos
suite's (:mod:`venuefeed.chaos`): one definition of "the same trade".
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import nats.js.errors
import yaml

from venuefeed.chaos.compare import VenueResult, compare
from venuefeed.chaos.landed import read_postgres
from venuefeed.chaos.procs import SimProcess, free_port
from venuefeed.chaos.run import Durations, Run, Stores
from venuefeed.chaos.truth import read_truth
from venuefeed.cluster.hashing import owner_of
from venuefeed.cluster.jetstream import connect
from venuefeed.cluster.publisher import shard_key
from venuefeed.cluster.status import cluster_status
from venuefeed.cluster.worker import Mark, mark_key
from venuefeed.config import load_config

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
SHARDS = 8
"""Shards per venue in the tests' clusters."""


class NatsNode:
    """One nats-server with JetStream, its own store folder and cluster route port."""

    def __init__(self, name: str, folder: Path) -> None:
        self.name = name
        self.port = free_port()
        self.route_port = free_port()
        self.store = folder / f"nats-{name}"
        self.log = folder / f"nats-{name}.log"
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    async def start(self, routes: list[int]) -> None:
        self.store.mkdir(parents=True, exist_ok=True)
        args = ["-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store),
                "--server_name", self.name, "--cluster_name", "vftest",
                "--cluster", f"nats://127.0.0.1:{self.route_port}",
                "--routes", ",".join(f"nats://127.0.0.1:{p}" for p in routes)]  # fmt: skip
        handle = self.log.open("ab")
        try:
            self.proc = await asyncio.create_subprocess_exec(
                NATS_SERVER, *args, stdin=asyncio.subprocess.DEVNULL, stdout=handle, stderr=handle
            )
        finally:
            handle.close()

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


class NatsCluster:
    def __init__(self, folder: Path, size: int = 3) -> None:
        self.nodes = [NatsNode(f"n{i + 1}", folder) for i in range(size)]

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    def routes(self, node: NatsNode) -> list[int]:
        return [n.route_port for n in self.nodes if n is not node]

    async def start(self) -> None:
        for node in self.nodes:
            await node.start(self.routes(node))

    async def restart(self, index: int) -> None:
        node = self.nodes[index]
        await node.kill()
        await node.start(self.routes(node))

    async def stop(self) -> None:
        for node in self.nodes:
            await node.kill()


class Child:
    """``venuefeed --config FILE <verb>`` as a process (worker or writer)."""

    def __init__(self, verb: str, ident: str, config: Path, folder: Path, env: dict[str, str]):
        self.verb = verb
        self.ident = ident
        self.config = config
        self.log = folder / f"{verb}-{ident}.log"
        self.env = {**os.environ, **env, "VENUEFEED_CLUSTER__WORKER_ID": ident}
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        handle = self.log.open("ab")
        try:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "venuefeed.cli", "--config", str(self.config), self.verb,
                stdin=asyncio.subprocess.DEVNULL, stdout=handle, stderr=handle, env=self.env,
            )  # fmt: skip
        finally:
            handle.close()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def signal(self, sig: int) -> None:
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(sig)

    async def kill(self) -> None:
        if self.running:
            assert self.proc is not None
            self.proc.kill()
            await self.proc.wait()

    async def terminate(self, within: float = 30.0) -> int:
        if not self.running:
            return -1 if self.proc is None else int(self.proc.returncode or 0)
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)  # a paused child cannot handle SIGTERM
        self.proc.terminate()
        try:
            return int(await asyncio.wait_for(self.proc.wait(), within))
        except TimeoutError:
            self.proc.kill()
            return int(await self.proc.wait())


@dataclass
class Sizes:
    """Simulated venues: markets and trade rate (thousands of instruments in the long run)."""

    polymarket_markets: int = 150
    kalshi_markets: int = 600
    kalshi_trading: int = 40
    events_per_second: float = 25.0


@dataclass
class Outcome:
    """Ground truth against PostgreSQL: per phase of the run (and ``all``), per venue."""

    results: dict[str, list[VenueResult]] = field(default_factory=dict)
    writer_stats: list[dict[str, Any]] = field(default_factory=list)
    settled: bool = False
    """Every shard vouched for the pause and the consumer drained before the comparison
    (False: the cluster was still catching up -- "missing" may only be "not yet")."""

    def complete(self) -> bool:
        return all(r.complete for rs in self.results.values() for r in rs)

    def table(self) -> str:
        return "\n".join(
            f"{phase:<14} {r.venue:<10} emitted {r.emitted:>6} stored {r.stored:>6} "
            f"missing {r.missing:>3} duplicated {r.duplicated:>3} "
            f"gaps {r.gaps_detected} healed {r.gaps_healed} {r.missing_examples[:2]}"
            for phase, rs in self.results.items()
            for r in rs
        )


class ClusterRun:
    """Simulators, a NATS cluster, workers and writers around one PostgreSQL schema."""

    def __init__(
        self, folder: Path, pg_dsn: str, *, sizes: Sizes | None = None, ttl: float = 3.0
    ) -> None:
        self.folder = folder
        self.pg_dsn = pg_dsn
        self.schema = f"cluster_{uuid.uuid4().hex[:10]}"
        self.sizes = sizes or Sizes()
        self.ttl = ttl
        self.nats = NatsCluster(folder)
        stores = Stores(sinks=("postgres",), postgres_dsn=pg_dsn, postgres_direct=pg_dsn,
                        postgres_schema=self.schema)  # fmt: skip
        self.run = Run("cluster", folder, ("polymarket", "kalshi"), Durations.quick(), stores)
        s = self.sizes
        rate = s.events_per_second
        self.run.sims = {
            "polymarket": SimProcess("polymarket", folder, seed=3, events_per_second=rate,
                                     settings={"markets": str(s.polymarket_markets)}),
            "kalshi": SimProcess("kalshi", folder, seed=3, events_per_second=rate,
                                 settings={"markets": str(s.kalshi_markets),
                                           "trading_markets": str(s.kalshi_trading)}),
        }  # fmt: skip
        self.workers: dict[str, Child] = {}
        self.writers: dict[str, Child] = {}
        self.start_ns = 0
        self.end_ns = 0
        self.phases: list[tuple[str, int, int]] = []
        self.config = folder / "venuefeed.yaml"

    # -- set-up ---------------------------------------------------------------------

    async def start(self, workers: int = 3, writers: int = 2) -> None:
        await self.nats.start()
        await self.run.start_sims()  # meanwhile the NATS nodes find each other
        self.run.write_config()
        config = yaml.safe_load(self.config.read_text())
        config["api"] = {"enabled": False}
        config["discovery"] = {"max_resolution_days": 0, "max_markets": 20000,
                               "interval_seconds": 3600}  # fmt: skip
        config["storage"]["postgres_schema"] = self.schema
        config["storage"]["dead_letter_path"] = str(self.folder / "dead.jsonl")
        config["cluster"] = {
            "nats_urls": self.nats.urls, "name": "vft", "lease_ttl_seconds": self.ttl,
            "shards": SHARDS, "replicas": 3, "writer_ack_wait_seconds": 5,
            "budgets": {"polymarket": {"connections": 8}, "kalshi": {"connections": 8}},
        }  # fmt: skip
        self.config.write_text(yaml.safe_dump(config, sort_keys=False))
        await self._wait_jetstream()
        self.start_ns = time.time_ns()
        for i in range(writers):
            await self.add_writer(f"r{i + 1}")
        for i in range(workers):
            await self.add_worker(f"w{i + 1}")

    @property
    def env(self) -> dict[str, str]:
        return dict(self.run._secrets)

    async def _wait_jetstream(self, within: float = 60.0) -> None:
        """Until the cluster elected a meta leader and holds the stream and buckets (R3)."""
        settings = load_config(self.config)
        deadline = time.monotonic() + within
        while True:
            try:
                bus = await connect(settings, client_name="test-setup", within=5)
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
                continue
            await bus.close()
            return

    async def add_worker(self, ident: str) -> Child:
        child = Child("worker", ident, self.config, self.folder, self.env)
        await child.start()
        self.workers[ident] = child
        return child

    async def add_writer(self, ident: str) -> Child:
        child = Child("writer", ident, self.config, self.folder, self.env)
        await child.start()
        self.writers[ident] = child
        return child

    # -- observing ------------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        settings = load_config(self.config)
        bus = await connect(settings, client_name="test-status", within=10)
        try:
            return await cluster_status(bus, settings)
        finally:
            await bus.close()

    async def owners(self) -> dict[str, str]:
        """Shard lease key -> holding worker."""
        status = await self.status()
        return {
            lease["key"]: lease["holder"]
            for lease in status["leases"]
            if lease["key"].startswith("shard.")
        }

    async def wait_owned(self, by: set[str], within: float = 60.0) -> float:
        """Until every shard is held by the member rendezvous hashing picks among ``by``.

        Returns the seconds it took. (A shard held by another member, or by
        nobody, is not converged yet.)
        """
        started = time.monotonic()
        expected = {
            shard_key(venue, n): owner_of(venue, n, by)
            for venue in self.run.sims
            for n in range(SHARDS)
        }
        owners: dict[str, str] = {}
        while time.monotonic() - started < within:
            with contextlib.suppress(Exception):
                owners = await self.owners()
                if owners == expected:
                    return time.monotonic() - started
            await asyncio.sleep(0.1)
        raise AssertionError(f"shards not owned by {sorted(by)} within {within} s: {owners}")

    # -- the end --------------------------------------------------------------------

    def phase(self, name: str, start_ns: int) -> None:
        """The trades printed from ``start_ns`` to now are judged as phase ``name`` too."""
        self.phases.append((name, start_ns, time.time_ns()))

    async def finish(self, live: float = 3.0) -> Outcome:
        """Market on a little longer, pause it, let the cluster store everything, compare."""
        await asyncio.sleep(live)
        await asyncio.gather(*(sim.control("pause") for sim in self.run.sims.values()))
        self.end_ns = time.time_ns()
        outcome = Outcome(settled=await self._until_settled())
        status = await self.status()
        outcome.writer_stats = status["writers"]
        for name, start, end in [("all", self.start_ns, self.end_ns), *self.phases]:
            results = outcome.results.setdefault(name, [])
            for venue, sim in self.run.sims.items():
                truth = read_truth(venue, sim.truth, start, end)
                landed = await read_postgres(self.pg_dsn, self.schema, venue, start, end)
                results.append(compare(truth, landed, "postgres"))
        return outcome

    async def terminate_all(self) -> dict[str, int]:
        """SIGTERM every worker and writer; their exit codes."""
        codes = {}
        for name, child in [*self.workers.items(), *self.writers.items()]:
            codes[name] = await child.terminate()
        return codes

    async def marks(self) -> dict[str, int]:
        """Each shard's completeness mark (shards never marked are absent)."""
        settings = load_config(self.config)
        bus = await connect(settings, client_name="test-marks", within=10)
        out: dict[str, int] = {}
        try:
            for venue in self.run.sims:
                for n in range(SHARDS):
                    with contextlib.suppress(nats.js.errors.KeyNotFoundError):
                        entry = await bus.state.get(mark_key(venue, n))
                        out[shard_key(venue, n)] = msgspec.json.decode(
                            entry.value or b"", type=Mark
                        ).until
        finally:
            await bus.close()
        return out

    async def _until_settled(self, within: float = 90.0) -> bool:
        """Until every shard's owner vouches for the trades up to the pause (its mark), the
        consumer is drained and the stored trade count stood still for a second."""
        deadline = time.monotonic() + within
        last, still = -1, 0.0
        while time.monotonic() < deadline and still < 1.0:
            with contextlib.suppress(Exception):
                marks = await self.marks()
                vouched = len(marks) == 2 * SHARDS and min(marks.values()) >= self.end_ns
                consumer = (await self.status())["consumer"]
                drained = consumer.get("pending") == 0 and consumer.get("ack_pending") == 0
                count = await self._pg_trades()
                still = still + 0.25 if count == last and drained and vouched else 0.0
                last = count
            await asyncio.sleep(0.25)
        return still >= 1.0

    async def _pg_trades(self) -> int:
        conn = await asyncpg.connect(self.pg_dsn, server_settings={"search_path": self.schema})
        try:
            if not await conn.fetchval("SELECT to_regclass('trades') IS NOT NULL"):
                return 0
            return int(await conn.fetchval("SELECT count(*) FROM trades"))
        finally:
            await conn.close()

    async def close(self) -> None:
        for child in [*self.workers.values(), *self.writers.values()]:
            with contextlib.suppress(Exception):
                await child.kill()
        for sim in self.run.sims.values():
            with contextlib.suppress(Exception):
                await sim.stop()
        await self.nats.stop()
        with contextlib.suppress(Exception):
            conn = await asyncpg.connect(self.pg_dsn)
            try:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
            finally:
                await conn.close()


async def stale_messages(urls: list[str], stream: str, bucket: str) -> tuple[int, int]:
    """(messages stamped with a superseded epoch after its fence, stamped messages) on the stream.

    Read straight from JetStream, so every stale publish is counted, whether
    or not a writer saw it: the tests hold it against the writers' ``refused``
    count. (A message stamped just before a freeze can leave the socket after
    it -- the check and the send are not one atomic step -- so the stream may
    hold a few; the stores never do.)
    """
    import nats
    from nats.js.api import ConsumerConfig

    from venuefeed.cluster.leases import decode_fences, superseded
    from venuefeed.cluster.publisher import EPOCH_HEADER, LEASE_HEADER

    nc = await nats.connect(servers=urls)
    try:
        js = nc.jetstream()
        state = await js.key_value(bucket)
        fences: dict[str, list[tuple[int, int]]] = {}
        last = int((await js.stream_info(stream)).state.last_seq)
        sub = await js.subscribe(
            ">", stream=stream, ordered_consumer=True, config=ConsumerConfig(headers_only=True)
        )
        stale = stamped = 0
        sequence = 0
        while sequence < last:
            try:
                msg = await sub.next_msg(timeout=10)
            except (TimeoutError, nats.errors.TimeoutError):
                break  # the stream's tail was purged: nothing more to read
            sequence = msg.metadata.sequence.stream
            headers = msg.headers or {}
            key, epoch = headers.get(LEASE_HEADER), headers.get(EPOCH_HEADER)
            if key is None or epoch is None:
                continue
            stamped += 1
            if key not in fences:
                try:
                    fences[key] = decode_fences((await state.get(f"fence.{key}")).value)
                except nats.js.errors.KeyNotFoundError:
                    fences[key] = []
            if superseded(fences[key], int(epoch), msg.metadata.sequence.stream):
                stale += 1
        return stale, stamped
    finally:
        await nc.close()
