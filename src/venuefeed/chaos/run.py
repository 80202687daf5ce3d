"""One scenario's run: simulators and service as processes, a settle phase, the comparison.

The window compared is ``[start_ns, end_ns]``: from the moment the service
process was first started to the moment the simulators were paused at the
end. Everything a simulator printed in it must be stored exactly once --
whether the service was connected, reconnecting, killed or stalled at the
time, because the simulators keep trading throughout and REST history serves
every trade (a real venue does both). What was printed before the service
first started is history, outside the window; trades the service back-fills
from before it are neither counted nor held against it. The start-up gap
(service started, first socket not yet open) is inside the window -- a
service that back-fills from its durable watermark covers it -- and its
misses are reported separately (``pre-sub``) so they are not confused with
misses under a fault.

The end is fair too: faults are switched off and the market keeps moving a
few seconds (books resync, gaps heal), then the simulators pause and the
service gets a quiet period to store what it holds, and only then a SIGTERM,
which must exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from venuefeed.chaos.compare import VenueResult, compare
from venuefeed.chaos.landed import Landed, read_nats, read_postgres, read_sqlite
from venuefeed.chaos.procs import ServiceProcess, SimProcess, free_port
from venuefeed.chaos.truth import read_truth
from venuefeed.venues.kalshi.auth import generate_test_keypair

__all__ = ["VENUES", "Durations", "Run", "ScenarioResult", "Stores"]

VENUES = ("polymarket", "kalshi", "binance", "polygon")

_SIMS: dict[str, tuple[float, dict[str, str]]] = {
    # venue: (events per second, simulator settings) -- small markets, every one followed.
    "polymarket": (20.0, {"markets": "8"}),
    "kalshi": (20.0, {"markets": "40", "trading_markets": "12"}),
    "binance": (8.0, {}),
    "polygon": (4.0, {}),
}
_PER_FRAME_FAULTS = {"skip_update_rate": 0.01, "duplicate_rate": 0.02,
                     "out_of_order_rate": 0.01, "malformed_rate": 0.01}  # fmt: skip
NO_FAULTS: dict[str, Any] = {
    "http_429_rate": 0, "http_5xx_rate": 0, "http_delay_seconds": 0,
    "disconnect_every_seconds": None, "silence_after_seconds": None, "malformed_rate": 0,
    "duplicate_rate": 0, "out_of_order_rate": 0, "skip_update_rate": 0,
    "stale_snapshot_rate": 0,
}  # fmt: skip


@dataclass(frozen=True)
class Durations:
    """How long each phase lasts (``--quick`` shrinks them all to seconds)."""

    warmup: float
    kills: int
    down: float
    up: float
    faults: float
    fault_interval: float
    stall: float
    kill_into_stall: float
    disk_full: float
    settle_live: float
    settle_quiet: float

    @classmethod
    def full(cls) -> Durations:
        return cls(warmup=8, kills=10, down=3, up=6, faults=180, fault_interval=1.5, stall=30,
                   kill_into_stall=15, disk_full=20, settle_live=6, settle_quiet=8)  # fmt: skip

    @classmethod
    def quick(cls) -> Durations:
        return cls(warmup=2, kills=2, down=1, up=2, faults=8, fault_interval=0.8, stall=4,
                   kill_into_stall=2, disk_full=3, settle_live=2, settle_quiet=3)  # fmt: skip


@dataclass(frozen=True)
class Stores:
    """Where the service writes in this run, and where the harness reads it back."""

    sinks: tuple[str, ...] = ("sqlite",)
    sqlite_path: Path | None = None
    spool_dir: Path | None = None
    postgres_dsn: str | None = None
    """How the service reaches PostgreSQL (possibly through the proxy)."""
    postgres_direct: str | None = None
    """How the harness reads it (never through the proxy)."""
    postgres_schema: str | None = None
    nats_url: str | None = None
    nats_direct: str | None = None
    nats_stream: str | None = None
    nats_prefix: str | None = None


@dataclass
class ScenarioResult:
    name: str
    skipped: str | None = None
    results: list[VenueResult] = field(default_factory=list)
    exit_codes: list[int] = field(default_factory=list)
    """Every service exit in order: -9 for each SIGKILL, the last one the final SIGTERM."""
    final_exit: int | None = None
    unhealthy_seen: list[str] = field(default_factory=list)
    """Problems the service's status reported during the scenario (empty: always healthy)."""
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None

    @property
    def complete(self) -> bool:
        return self.skipped is not None or (
            self.error is None and all(r.complete for r in self.results)
        )


class Run:
    """The processes and files of one scenario, in ``folder``."""

    def __init__(
        self,
        name: str,
        folder: Path,
        venues: tuple[str, ...],
        durations: Durations,
        stores: Stores,
        *,
        seed: int = 1,
    ) -> None:
        self.name = name
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.venues = venues
        self.d = durations
        self.stores = stores
        self._kalshi_key, _public = generate_test_keypair()
        """The Kalshi test key: the client signs with it, the simulator verifies it."""
        key_file = folder / "kalshi-test-key.pem"
        if "kalshi" in venues:
            key_file.write_bytes(self._kalshi_key)
            key_file.chmod(0o600)
        settings = {v: dict(_SIMS[v][1]) for v in venues}
        if "kalshi" in venues:
            settings["kalshi"]["key_file"] = str(key_file)
        self.sims = {
            v: SimProcess(v, folder, seed=seed, events_per_second=_SIMS[v][0], settings=settings[v])
            for v in venues
        }
        self.api_port = free_port()
        self.config = folder / "venuefeed.yaml"
        self.service = ServiceProcess(self.config, folder, self.api_port)
        self.start_ns = 0
        self.end_ns = 0
        self.result = ScenarioResult(name)
        self._status_task: asyncio.Task[None] | None = None
        self._secrets: dict[str, str] = {}

    # -- set-up -------------------------------------------------------------------------

    async def start_sims(self) -> None:
        await asyncio.gather(*(sim.start() for sim in self.sims.values()))

    def write_config(self) -> None:
        def urls(venue: str, http: str) -> dict[str, str]:
            ws = "ws" + http[len("http") :]
            return {
                "polymarket": {"gamma": http, "clob": http, "data": http, "ws": ws + "/ws/market"},
                "kalshi": {"rest": http + "/trade-api/v2", "ws": ws + "/trade-api/ws/v2"},
                "binance": {"rest": http, "ws": ws},
                "polygon": {"rest": http, "ws": ws + "/stocks"},
            }[venue]

        venues: dict[str, Any] = {}
        for name in VENUES:
            if name not in self.sims:
                venues[name] = {"enabled": False}
                continue
            venues[name] = {
                "enabled": True,
                "urls": urls(name, self.sims[name].base),
                "rate_limit": {"requests_per_second": 200, "burst": 200},
                "retry": {"attempts": 6, "backoff_base_seconds": 0.1, "backoff_max_seconds": 1.0,
                          "timeout_seconds": 5},
                "websocket": {"idle_timeout_seconds": 3, "backoff_base_seconds": 0.1,
                              "backoff_cap_seconds": 1.0, "stable_after_seconds": 5},
            }  # fmt: skip
        if "binance" in self.sims:
            venues["binance"]["instruments"] = ["BTCUSDT", "ETHUSDT"]
            # aggTrade: live and REST back-fill give a trade the same id ("a<id>").
            venues["binance"]["options"] = {"trade_stream": "aggTrade"}
        if "polygon" in self.sims:
            venues["polygon"]["instruments"] = ["AAPL", "MSFT"]
            self._secrets["VENUEFEED_VENUES__POLYGON__CREDENTIALS__API_KEY"] = "test-key"
        if "kalshi" in self.sims:
            kalshi = "VENUEFEED_VENUES__KALSHI__CREDENTIALS__"
            self._secrets[kalshi + "API_KEY_ID"] = str(uuid.uuid4())
            self._secrets[kalshi + "PRIVATE_KEY"] = self._kalshi_key.decode()
        s = self.stores
        storage: dict[str, Any] = {
            "sinks": list(s.sinks),
            "sqlite_path": str(s.sqlite_path or self.folder / "venuefeed.db"),
            "spool_dir": str(s.spool_dir or self.folder / "spool"),
        }
        bus: dict[str, Any] = {}
        if s.postgres_dsn is not None:
            self._secrets["VENUEFEED_STORAGE__DATABASE_URL"] = s.postgres_dsn
            storage["postgres_schema"] = s.postgres_schema
        if s.nats_url is not None:
            bus = {"nats_url": s.nats_url, "nats_stream": s.nats_stream,
                   "nats_subject_prefix": s.nats_prefix}  # fmt: skip
        config = {
            "venues": venues,
            "discovery": {"max_resolution_days": 0, "max_markets": 500, "interval_seconds": 3600},
            "ingestion": {"book_persist_interval_seconds": 0.5},
            "storage": storage,
            "api": {"enabled": True, "host": "127.0.0.1", "port": self.api_port},
            "logging": {"level": "INFO", "format": "json"},
        }
        if bus:
            config["bus"] = bus
        self.config.write_text(yaml.safe_dump(config, sort_keys=False))

    async def start_service(self) -> None:
        if self.start_ns == 0:
            self.start_ns = time.time_ns()
        await self.service.start(self._secrets)

    async def wait_connected(self, within: float = 30.0) -> bool:
        """Until every venue's stream is connected (True), or ``within`` passed (False)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if not self.service.running:
                code = self.service.proc.returncode
                raise RuntimeError(f"service exited ({code}) at start: see {self.service.log}")
            status = await self.service.status()
            if status is not None:
                states = {v["venue"]: v.get("state") for v in status.get("venues", [])}
                if all(states.get(v) == "connected" for v in self.venues):
                    return True
            await asyncio.sleep(0.25)
        return False

    # -- during the scenario -------------------------------------------------------------

    def watch_status(self) -> None:
        """Sample ``/api/status`` every second; remember every distinct problem reported."""

        async def loop() -> None:
            while True:
                status = await self.service.status()
                if status is not None and not status.get("healthy", True):
                    for problem in status.get("problems", []) or ["unhealthy"]:
                        if problem not in self.result.unhealthy_seen:
                            self.result.unhealthy_seen.append(problem)
                await asyncio.sleep(1.0)

        self._status_task = asyncio.ensure_future(loop())

    async def set_faults(
        self, faults: dict[str, Any], venues: tuple[str, ...] | None = None
    ) -> None:
        await asyncio.gather(
            *(self.sims[v].control("faults", faults) for v in venues or self.venues)
        )

    async def per_frame_faults(self) -> None:
        await self.set_faults(_PER_FRAME_FAULTS)

    async def restart_service(self, down: float) -> None:
        await self.service.kill()
        await asyncio.sleep(down)
        await self.start_service()

    # -- the end --------------------------------------------------------------------------

    async def finish(self) -> None:
        """Faults off, settle live, pause the market, settle quiet, SIGTERM, stop the sims."""
        await self.set_faults(NO_FAULTS)
        if not self.service.running:
            await self.start_service()
        # A service restarted into a stall may still be starting: judge it once it runs
        # (the venues trade on meanwhile, so this hides nothing).
        if not await self.wait_connected(within=60):
            self.result.notes.append("service not connected 60 s after the faults ended")
        await asyncio.sleep(self.d.settle_live)
        await asyncio.gather(*(sim.control("pause") for sim in self.sims.values()))
        self.end_ns = time.time_ns()
        await asyncio.sleep(self.d.settle_quiet)
        await self._until_stable(self.d.settle_quiet * 4)
        await self._until_healed(self.d.settle_quiet * 6)
        if self._status_task is not None:
            self._status_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._status_task
        self.result.final_exit = await self.service.terminate()
        self.result.exit_codes = list(self.service.exit_codes)
        await asyncio.gather(*(sim.stop() for sim in self.sims.values()))

    async def _until_stable(self, within: float) -> None:
        """Until the stored trade count stops moving for 2 s (the service caught up)."""
        deadline = time.monotonic() + within
        last, still = -1, 0.0
        while time.monotonic() < deadline and still < 2.0:
            count = sum(sum(landed.trades.values()) for landed in (await self.landed()).values())
            still = still + 0.5 if count == last else 0.0
            last = count
            await asyncio.sleep(0.5)

    async def _until_healed(self, within: float) -> None:
        """Until no trade gap that began before the pause is still open, per the service's
        status (``venues[].gaps``); a service without that view is not waited for."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            status = await self.service.status()
            views = [v.get("gaps") for v in (status or {}).get("venues", [])]
            now = time.time_ns()
            pending = [
                g for g in views
                if isinstance(g, dict) and g.get("open") and g.get("oldest_open_age_s") is not None
                and now - g["oldest_open_age_s"] * 1e9 <= self.end_ns
            ]  # fmt: skip
            if status is not None and not pending:
                return
            await asyncio.sleep(0.5)

    async def landed(self, store: str | None = None) -> dict[str, Landed]:
        s = self.stores
        store = store or self.primary_store
        if store == "postgres":
            assert s.postgres_direct is not None and s.postgres_schema is not None
            return {v: await read_postgres(s.postgres_direct, s.postgres_schema, v,
                                           self.start_ns, self.until_ns)
                    for v in self.venues}  # fmt: skip
        if store == "nats":
            assert s.nats_direct is not None and s.nats_stream and s.nats_prefix
            return await read_nats(s.nats_direct, s.nats_stream, s.nats_prefix, list(self.venues))
        path = s.sqlite_path or self.folder / "venuefeed.db"
        return {
            v: await asyncio.to_thread(read_sqlite, path, v, self.start_ns, self.until_ns)
            for v in self.venues
        }

    @property
    def until_ns(self) -> int:
        """Gaps are judged up to the pause (after it, a quiet market may look idle)."""
        return self.end_ns or time.time_ns()

    @property
    def primary_store(self) -> str:
        return "postgres" if "postgres" in self.stores.sinks else "sqlite"

    async def collect(self, stores: tuple[str, ...]) -> None:
        for store in stores:
            landed = await self.landed(store)
            for venue, sim in self.sims.items():
                truth = read_truth(venue, sim.truth, self.start_ns, self.end_ns)
                self.result.results.append(compare(truth, landed[venue], store))

    async def close(self) -> None:
        """Whatever still runs (after an error): killed, never left behind."""
        if self._status_task is not None:
            self._status_task.cancel()
        await self.service.kill()
        for sim in self.sims.values():
            with contextlib.suppress(Exception):
                await sim.stop()


Scenario = Callable[[Run], Awaitable[None]]
