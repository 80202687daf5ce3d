"""What every venue simulator shares: lifecycle, fault switches, ground truth.

A simulator is the venue's twin (ARCHITECTURE rule 7): it speaks the venue's
real wire format on 127.0.0.1 so the real client code runs against it. Venue
modules describe *what* the venue says (routes, frames, market state); this
module gives them the server, the HTTP fault injection and the ground-truth
log, so no venue repeats them.
"""

from __future__ import annotations

import abc
import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web

__all__ = ["Faults", "GroundTruth", "SimulatorBase"]


@dataclass(slots=True)
class Faults:
    """Fault switches, all off by default; a scenario turns on what it tests.

    Rates are probabilities per request or per emitted frame, drawn from the
    simulator's seeded RNG so a scenario replays identically.
    """

    http_429_rate: float = 0.0
    http_5xx_rate: float = 0.0
    retry_after_seconds: float | None = 1.0
    """Sent with 429s where the venue sends ``Retry-After``; None where it does not (Kalshi)."""
    http_delay_seconds: float = 0.0
    disconnect_every_seconds: float | None = None
    """Close every WebSocket this often (a venue restart, a load balancer cut)."""
    silence_after_seconds: float | None = None
    """Stop sending on WebSockets (TCP stays open) after this long: a half-open peer."""
    malformed_rate: float = 0.0
    duplicate_rate: float = 0.0
    out_of_order_rate: float = 0.0
    skip_update_rate: float = 0.0
    """Drop a book update while advancing the sequence: the client must see a gap."""
    stale_snapshot_rate: float = 0.0
    """Serve a book snapshot older than the updates already streamed (Binance: a
    ``lastUpdateId`` below the first buffered ``U``): the client must fetch again."""

    @classmethod
    def from_spec(cls, spec: str) -> Faults:
        """Parse ``"http_429_rate=0.1,disconnect_every_seconds=5"`` (CLI ``--faults``)."""
        faults = cls()
        for part in filter(None, (p.strip() for p in spec.split(","))):
            key, _, raw = part.partition("=")
            if not hasattr(faults, key):
                raise ValueError(f"unknown fault {key!r}")
            value: Any = None if raw in ("", "none", "None") else float(raw)
            setattr(faults, key, value)
        return faults


@dataclass
class GroundTruth:
    """Everything a simulator emitted that a test may compare with what landed.

    Kept in memory (bounded by the scenario's length) and optionally appended
    to a JSON-lines file as it happens, for long runs and post-mortems.
    """

    path: Path | None = None
    trades: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    _file: Any = None

    def record_trade(self, trade: dict[str, Any]) -> None:
        self.trades.append(trade)
        self._write({"kind": "trade", **trade})

    def record(self, kind: str, **data: Any) -> None:
        entry = {"kind": kind, **data}
        self.events.append(entry)
        self._write(entry)

    def _write(self, entry: dict[str, Any]) -> None:
        if self.path is None:
            return
        if self._file is None:
            self._file = self.path.open("ab")
        self._file.write(msgspec.json.encode(entry) + b"\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class SimulatorBase(abc.ABC):
    """A local venue on 127.0.0.1 with seeded behaviour and switchable faults."""

    venue: str

    def __init__(
        self,
        *,
        seed: int = 1,
        faults: Faults | None = None,
        ground_truth: GroundTruth | None = None,
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.faults = faults or Faults()
        self.truth = ground_truth or GroundTruth()
        self._runner: web.AppRunner | None = None
        self.host = "127.0.0.1"
        self.port = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.whale_wallets: tuple[str, ...] = ()
        """Wallets the simulator trades as whales (the demo registers them)."""

    # -- venue-specific ----------------------------------------------------

    @abc.abstractmethod
    def routes(self, app: web.Application) -> None:
        """Add the venue's REST and WebSocket routes."""

    @abc.abstractmethod
    def urls(self) -> dict[str, str]:
        """Endpoint overrides that point the venue's adapter at this simulator."""

    @classmethod
    def for_demo(cls, *, seed: int, events_per_second: float) -> SimulatorBase:
        """A simulator set up for ``venuefeed demo`` (venues needing test keys override it)."""
        return cls(seed=seed, events_per_second=events_per_second)  # type: ignore[call-arg]

    def client_credentials(self) -> dict[str, str]:
        """Credentials a client needs to talk to this simulator (test keys), by name."""
        return {}

    async def on_start(self) -> None:
        """Start background activity (market random walks, trade generation)."""

    async def on_stop(self) -> None:
        """Close WebSockets and stop background activity."""

    # -- lifecycle ---------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_base_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        app = web.Application(middlewares=[self._fault_middleware])
        self.routes(app)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=True)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        self.host = host
        self.port = sockets[0].getsockname()[1] if sockets else port
        await self.on_start()

    async def stop(self) -> None:
        await self.on_stop()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.truth.close()

    async def __aenter__(self) -> SimulatorBase:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def spawn(self, coro: Awaitable[None]) -> None:
        """Run background work owned by the simulator, cancelled on stop."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- faults ------------------------------------------------------------

    def chance(self, rate: float) -> bool:
        return rate > 0 and self.rng.random() < rate

    def rate_limited_response(self) -> web.Response:
        """The venue's 429. Override where the body or headers differ."""
        headers = {}
        if self.faults.retry_after_seconds is not None:
            headers["Retry-After"] = str(int(self.faults.retry_after_seconds))
        return web.json_response({"error": "too many requests"}, status=429, headers=headers)

    @web.middleware
    async def _fault_middleware(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() != "websocket":
            if self.faults.http_delay_seconds:
                await asyncio.sleep(self.faults.http_delay_seconds)
            if self.chance(self.faults.http_429_rate):
                self.truth.record("http_429", path=request.path)
                return self.rate_limited_response()
            if self.chance(self.faults.http_5xx_rate):
                self.truth.record("http_5xx", path=request.path)
                return web.json_response({"error": "internal error"}, status=503)
        return await handler(request)
