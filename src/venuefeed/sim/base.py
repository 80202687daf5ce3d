"""What every venue simulator shares: lifecycle, REST faults, pacing, control.

A simulator is the venue's twin (ARCHITECTURE rule 9): it speaks the venue's
real wire format on 127.0.0.1 so the real client code runs against it. Venue
modules describe *what* the venue says (routes, frames, market model); the
``sim`` package gives them the rest once:

* :mod:`~venuefeed.sim.faults` -- the fault switches, one meaning each;
* :mod:`~venuefeed.sim.truth` -- the ground-truth log and its vocabulary;
* :mod:`~venuefeed.sim.sockets` -- the WebSocket server side and its faults;
* :mod:`~venuefeed.sim.control` -- ``/__sim/`` routes a harness steers it by;
* this module -- the HTTP server, REST fault injection, the market pacing
  loop, pause/resume and the final books.

A venue keeps trading while nobody is connected, as a real one does: the
market model runs from :meth:`SimulatorBase.start` to :meth:`~SimulatorBase.stop`
(unless a test pauses it), records every trade in the ground truth, and REST
trade history serves those trades -- which is how a client back-fills what it
missed while it was away.
"""

from __future__ import annotations

import abc
import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from venuefeed.sim.control import PREFIX, add_control_routes
from venuefeed.sim.faults import Faults
from venuefeed.sim.sockets import Sockets
from venuefeed.sim.truth import GroundTruth

__all__ = ["Book", "Faults", "GroundTruth", "SimulatorBase"]

Book = tuple[list[tuple[str, str]], list[tuple[str, str]]]
"""A book as canonical ``(price, size)`` text, bids best first, asks best first."""


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
        self.sockets: Sockets[Any] = Sockets(self)
        """The open WebSockets; a venue replaces it to set its heartbeat or frame size."""
        self._runner: web.AppRunner | None = None
        self.host = "127.0.0.1"
        self.port = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._running = asyncio.Event()
        self._running.set()
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

    @classmethod
    def standalone(cls, **settings: Any) -> SimulatorBase:
        """The simulator ``venuefeed sim`` runs from ``settings``; a venue whose clients must
        sign overrides it to hold test keys, which :meth:`client_credentials` then gives out."""
        return cls(**settings)

    def client_credentials(self) -> dict[str, str]:
        """Credentials a client needs to talk to this simulator (test keys), by name."""
        return {}

    async def on_start(self) -> None:
        """Start the market model (it runs whether or not anyone is connected)."""

    async def on_stop(self) -> None:
        """Stop venue-specific activity before the sockets close."""

    def final_books(self) -> dict[str, Book]:
        """Each instrument's book now, canonical text best first (none: no books)."""
        return {}

    def undelivered(self, conn: int, frames: list[str]) -> None:
        """``frames`` meant for socket ``conn`` never left the venue (it closed first).

        A venue records in the ground truth what of them a test counts (Polymarket:
        each trade print, ``trade_undelivered``); the count is in ``ws_close`` anyway.
        """

    def malformed(self, frame: str) -> str:
        """A garbled version of ``frame`` for the malformed switch (a venue may vary it)."""
        return frame[: len(frame) // 2]

    # -- lifecycle ---------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_base_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        app = web.Application(middlewares=[self._fault_middleware])
        add_control_routes(app, self)
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
        self.spawn(self.sockets.disconnect_loop())
        await self.on_start()

    async def stop(self) -> None:
        """Close every socket, stop the market, record each final book, release the port."""
        await self.on_stop()
        await self.sockets.close_all()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for instrument, (bids, asks) in sorted(self.final_books().items()):
            self.truth.record("final_book", instrument=instrument, bids=bids, asks=asks)
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

    # -- the market ------------------------------------------------------------

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def pause(self) -> None:
        """Stop the market model (servers keep answering); frames held back are sent."""
        self._running.clear()
        self.sockets.flush_held()

    def resume(self) -> None:
        self._running.set()

    async def pace(self, step: Callable[[], Awaitable[None] | None], per_second: float) -> None:
        """Call ``step`` ``per_second`` times a second (0: as fast as the loop allows).

        The schedule is absolute (a slow step is caught up, not lost) and
        restarts after a pause, so a paused market does not burst on resume.
        """
        started = time.monotonic()
        count = 0
        while True:
            if not self._running.is_set():
                await self._running.wait()
                started, count = time.monotonic(), 0
            result = step()
            if result is not None:
                await result
            count += 1
            if per_second > 0:
                delay = started + count / per_second - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif count % 64 == 0:
                    await asyncio.sleep(0)
            elif count % 64 == 0:
                await asyncio.sleep(0)

    # -- faults ------------------------------------------------------------

    def chance(self, rate: float) -> bool:
        return rate > 0 and self.rng.random() < rate

    def control_state(self) -> dict[str, Any]:
        return {
            "venue": self.venue,
            "paused": self.paused,
            "faults": self.faults.as_dict(),
            "sockets": len(self.sockets),
            "outbox": sum(s.outbox.qsize() for s in self.sockets),
            "queued": sum(s.queued for s in self.sockets),
            "sent": sum(s.sent for s in self.sockets),
            "trades": self.truth.trade_count,
        }

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
        if request.path.startswith(PREFIX):
            return await handler(request)
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
