"""The five scenarios: what each does to the service while the venues keep trading.

=============== ==============================================================
restarts        N SIGKILLs of the service, each followed by some seconds down
                and a restart (the issue: 10 kills, about 30 s down in all)
venue-faults    per-frame faults all along (sequence skips, duplicate, out of
                order, malformed frames) and, every ``fault_interval``, one of:
                cut every socket, silence every socket (half-open), a 429
                storm or a 5xx storm of a few seconds (3 min: > 100
                disconnects and silences)
postgres-stall  PostgreSQL behind a proxy that stops forwarding for 30 s, and
                a SIGKILL + restart of the service in the middle of the stall
nats-stall      the same for NATS JetStream (SQLite alongside)
disk-full       SQLite and the spool on a small tmpfs that fills up for a
                while; then the space is freed (root only)
=============== ==============================================================
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from venuefeed.chaos import tmpfs
from venuefeed.chaos.proxy import StallingProxy
from venuefeed.chaos.run import Durations, Run, ScenarioResult, Stores

__all__ = ["SCENARIOS", "Environment", "run_scenario"]


@dataclass(frozen=True)
class Environment:
    """The local services a scenario may need (loopback only)."""

    postgres_dsn: str = "postgresql://postgres@127.0.0.1:5432/test"
    nats_url: str = "nats://127.0.0.1:4222"


async def _reachable(url: str) -> bool:
    host_port = url.split("@")[-1].split("//")[-1].split("/")[0]
    host, _, port = host_port.partition(":")
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 2)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


def _port(url: str) -> int:
    return int(url.split("@")[-1].split("//")[-1].split("/")[0].partition(":")[2])


# -- the scenarios ----------------------------------------------------------------------


async def restarts(run: Run) -> None:
    d = run.d
    await asyncio.sleep(d.warmup)
    for _ in range(d.kills):
        await run.restart_service(d.down)
        await asyncio.sleep(d.up)
    run.result.notes.append(f"{d.kills} SIGKILLs, {d.kills * d.down:.0f} s down in all")


async def venue_faults(run: Run) -> None:
    d = run.d
    await asyncio.sleep(d.warmup)
    await run.per_frame_faults()
    rng = random.Random(7)
    actions = {"cut": 0, "silence": 0, "429 storm": 0, "5xx storm": 0}
    storm_ends: dict[str, float] = {}
    deadline = time.monotonic() + d.faults
    while time.monotonic() < deadline:
        for venue, ends in list(storm_ends.items()):
            if time.monotonic() >= ends:
                await run.set_faults({"http_429_rate": 0, "http_5xx_rate": 0}, (venue,))
                del storm_ends[venue]
        for venue, sim in run.sims.items():
            roll = rng.random()
            if roll < 0.6:
                actions["cut"] += 1
                await sim.control("cut")
            elif roll < 0.9:
                actions["silence"] += 1
                await sim.control("silence")
            elif venue not in storm_ends:
                kind = "429" if roll < 0.95 else "5xx"
                actions[f"{kind} storm"] += 1
                await sim.control("faults", {f"http_{kind}_rate": 0.7})
                storm_ends[venue] = time.monotonic() + 3 * d.fault_interval
        await asyncio.sleep(d.fault_interval)
    run.result.notes.append(
        "scripted (all venues together): " + ", ".join(f"{n} {k}" for k, n in actions.items())
    )


def _stall(proxy: StallingProxy, what: str) -> Callable[[Run], Awaitable[None]]:
    async def scenario(run: Run) -> None:
        d = run.d
        await asyncio.sleep(d.warmup)
        proxy.stall()
        await asyncio.sleep(d.kill_into_stall)
        await run.service.kill()
        await asyncio.sleep(1.0)
        await run.start_service()  # starts while its store is still stalled
        await asyncio.sleep(max(0.0, d.stall - d.kill_into_stall - 1.0))
        proxy.pass_through()
        run.result.notes.append(
            f"{what} stalled {d.stall:.0f} s; SIGKILL {d.kill_into_stall:.0f} s into the "
            f"stall, restarted 1 s later while still stalled"
        )

    return scenario


def _disk_full(disk: tmpfs.SmallDisk) -> Callable[[Run], Awaitable[None]]:
    async def scenario(run: Run) -> None:
        d = run.d
        await asyncio.sleep(d.warmup)
        taken = await asyncio.to_thread(disk.fill)
        await asyncio.sleep(d.disk_full)
        disk.free()
        run.result.notes.append(
            f"tmpfs filled ({taken // 1024} KiB taken) for {d.disk_full:.0f} s, then freed"
        )

    return scenario


# -- running one ---------------------------------------------------------------------------

SCENARIOS = ("restarts", "venue-faults", "postgres-stall", "nats-stall", "disk-full")


async def run_scenario(
    name: str, folder: Path, venues: tuple[str, ...], d: Durations, env: Environment
) -> ScenarioResult:
    started = time.monotonic()
    token = uuid.uuid4().hex[:10]
    if name in ("restarts", "venue-faults"):
        plan = restarts if name == "restarts" else venue_faults
        result = await _execute(name, folder, venues, d, Stores(), plan, ("sqlite",))
    elif name == "postgres-stall":
        if not await _reachable(env.postgres_dsn):
            return ScenarioResult(name, skipped=f"PostgreSQL not reachable at {env.postgres_dsn}")
        proxy = StallingProxy("127.0.0.1", _port(env.postgres_dsn))
        await proxy.start()
        schema = f"chaos_{token}"
        via_proxy = env.postgres_dsn.replace(f":{_port(env.postgres_dsn)}/", f":{proxy.port}/")
        stores = Stores(sinks=("postgres",), postgres_dsn=via_proxy,
                        postgres_direct=env.postgres_dsn, postgres_schema=schema)  # fmt: skip
        try:
            result = await _execute(name, folder, venues, d, stores,
                                    _stall(proxy, "PostgreSQL"), ("postgres",))  # fmt: skip
        finally:
            await proxy.stop()
            await _drop_schema(env.postgres_dsn, schema)
    elif name == "nats-stall":
        if not await _reachable(env.nats_url):
            return ScenarioResult(name, skipped=f"NATS not reachable at {env.nats_url}")
        proxy = StallingProxy("127.0.0.1", _port(env.nats_url))
        await proxy.start()
        stream, prefix = f"CHAOS_{token}", f"chaos{token}"
        stores = Stores(sinks=("sqlite", "nats"), nats_url=f"nats://127.0.0.1:{proxy.port}",
                        nats_direct=env.nats_url, nats_stream=stream,
                        nats_prefix=prefix)  # fmt: skip
        try:
            result = await _execute(name, folder, venues, d, stores,
                                    _stall(proxy, "NATS"), ("nats", "sqlite"))  # fmt: skip
        finally:
            await proxy.stop()
            await _delete_stream(env.nats_url, stream)
    elif name == "disk-full":
        why = tmpfs.can_mount()
        if why is not None:
            return ScenarioResult(name, skipped=why)
        with tmpfs.small_disk(48) as disk:
            stores = Stores(sqlite_path=disk.root / "venuefeed.db", spool_dir=disk.root / "spool")
            result = await _execute(name, folder, venues, d, stores, _disk_full(disk), ("sqlite",))
    else:
        raise ValueError(f"unknown scenario {name!r}")
    result.seconds = round(time.monotonic() - started, 1)
    return result


async def _execute(
    name: str,
    folder: Path,
    venues: tuple[str, ...],
    d: Durations,
    stores: Stores,
    plan: Callable[[Run], Awaitable[None]],
    compare_in: tuple[str, ...],
) -> ScenarioResult:
    run = Run(name, folder / name, venues, d, stores)
    try:
        await run.start_sims()
        run.write_config()
        await run.start_service()
        if not await run.wait_connected():
            run.result.notes.append("not every venue was connected 30 s after start")
        run.watch_status()
        await plan(run)
        await run.finish()
        await run.collect(compare_in)
    except Exception as exc:  # the report says what broke; the processes are cleaned up
        run.result.error = f"{type(exc).__name__}: {exc}"
    finally:
        await run.close()
    return run.result


async def _drop_schema(dsn: str, schema: str) -> None:
    import asyncpg

    try:
        conn = await asyncpg.connect(dsn)
    except (OSError, asyncpg.PostgresError):
        return
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


async def _delete_stream(url: str, stream: str) -> None:
    import nats
    import nats.errors
    import nats.js.errors

    try:
        nc = await nats.connect(url)
    except (OSError, nats.errors.Error):
        return
    try:
        await nc.jetstream().delete_stream(stream)
    except nats.js.errors.NotFoundError:
        pass
    finally:
        await nc.close()
