"""``venuefeed replay``: a recording run again through today's code into the configured sinks.

The use: rebuild derived tables after a parser fix, or fill a new sink, from
the only durable source there is -- one's own recording. Each recorded venue
gets its own stream exactly as ``venuefeed run`` builds it (``open_stream``:
parser, feed, books), with a :class:`~venuefeed.lake.replay_session.
RecordedSession` where the socket was, and its events go through the one
:class:`~venuefeed.pipeline.router.Pipeline` into the configured sinks.

Deterministic: the same recording gives byte-identical canonical rows on
every run. Receive times, connections and ids come from the recording; frames
are released one at a time in receive-time order across venues (see
:class:`~venuefeed.lake.replay_session.ReplayClock`); book persistence runs on
the recording's clock. REST requests a stream makes on its own (a resync
snapshot, a market look-up) are answered from the recorded exchanges by a
loopback server (:class:`~venuefeed.lake.recorded_rest.RecordedRest`), as the
venue answered them then.

Not replayed: the service's jobs around the streams -- discovery passes,
periodic REST snapshot passes, gap back-fills. Their answers are in the
recording, but when they ran was the service's timing, not the venue's.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from aiohttp import web

from venuefeed.config import Settings, VenueSettings
from venuefeed.lake.format import ConnEvent, HttpExchange
from venuefeed.lake.reader import ReadReport, iter_frames, venues
from venuefeed.lake.recorded_rest import RecordedRest
from venuefeed.lake.replay_session import RecordedSession, ReplayClock
from venuefeed.log import get_logger
from venuefeed.models import Event, Market
from venuefeed.pipeline.router import Pipeline
from venuefeed.pipeline.whales import WhaleWatch
from venuefeed.pipeline.writer import SinkWriter
from venuefeed.sinks.base import Sink
from venuefeed.venues.base import VenueStream, adapter_class, known_venues, simulator_class
from venuefeed.venues.feed import VenueFeed

__all__ = ["RecordedVenue", "ReplayResult", "Replaying", "VenueReplay", "replay", "scan_recording"]

log = get_logger("venuefeed.lake.replay")

TimeHook = Callable[[int], Awaitable[None] | None]


@dataclass
class Replaying:
    """What a hook of :func:`replay` may look at: the streams and what they replay."""

    clock: ReplayClock
    streams: dict[str, VenueStream] = field(default_factory=dict)
    instruments: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class RecordedVenue:
    """What a replay needs to know of a venue before its frames: REST answers, subscriptions."""

    venue: str
    exchanges: list[HttpExchange] = field(default_factory=list)
    subscriptions: dict[str, None] = field(default_factory=dict)
    first_ts: int | None = None
    last_ts: int | None = None


def scan_recording(
    root: str | Path, venue: str, start: int | None = None, end: int | None = None
) -> RecordedVenue:
    """One pass over a venue's records: its REST exchanges and every subscription it had."""
    found = RecordedVenue(venue)
    for record in iter_frames(root, venue, start, end):
        if found.first_ts is None:
            found.first_ts = record.ts_recv
        found.last_ts = record.ts_recv
        if type(record) is HttpExchange:
            found.exchanges.append(record)
        elif type(record) is ConnEvent and record.kind in ("connected", "subscribed"):
            found.subscriptions.update(dict.fromkeys(record.subscriptions))
    return found


@dataclass
class VenueReplay:
    """What replaying one venue did."""

    venue: str
    frames: int = 0
    events: int = 0
    reconnects: int = 0
    lost: int = 0
    """Frames the recorder marked as not recorded."""
    commands_not_sent: int = 0
    rest_served: int = 0
    rest_unknown: int = 0
    rejects: dict[str, int] = field(default_factory=dict)


@dataclass
class ReplayResult:
    venues: dict[str, VenueReplay]
    first_ts: int | None
    last_ts: int | None
    seconds: float
    damaged_blocks: int

    def view(self) -> dict[str, Any]:
        return {
            "venues": {name: vars(v) for name, v in self.venues.items()},
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "seconds": round(self.seconds, 3),
            "damaged_blocks": self.damaged_blocks,
        }


async def replay(
    root: str | Path,
    settings: Settings,
    *,
    only: Iterable[str] | None = None,
    start: int | None = None,
    end: int | None = None,
    speed: float = 0.0,
    sink: Sink | None = None,
    hooks: Iterable[Callable[[Replaying], TimeHook]] = (),
) -> ReplayResult:
    """Replay the recording at ``root`` into ``sink`` (default: the configured sinks).

    ``only`` limits the venues; ``start``/``end`` (ns) the receive-time window;
    ``speed`` paces it (0: as fast as the pipeline goes). Each of ``hooks`` is
    given a :class:`Replaying` and returns a function called with the
    recording's clock before each frame is released, and once after the last
    (tests and the proof sample books with it).
    """
    from venuefeed.service import build_sink

    wanted = set(only) if only is not None else None
    names = [v for v in venues(root) if v in known_venues() and (wanted is None or v in wanted)]
    if wanted is not None and (missing := wanted - set(names)):
        raise ValueError(f"{root}: no recording of venue(s) {sorted(missing)}")
    clock = ReplayClock(speed)
    report = ReadReport()
    scans = [scan_recording(root, name, start, end) for name in names]
    sink = sink if sink is not None else build_sink(settings)
    writer = SinkWriter(sink, max_pending=settings.ingestion.queue_size,
                        batch_size=settings.storage.batch_size)  # fmt: skip
    pipeline = Pipeline(settings, writer,
                        whales=WhaleWatch(settings.whales.notional_threshold,
                                          settings.whales.thresholds))  # fmt: skip
    view = Replaying(clock)
    streams = view.streams
    pipeline.set_book_lookup(lambda v, i: streams[v].book(i) if v in streams else None)
    began = time.monotonic()
    async with contextlib.AsyncExitStack() as stack:
        await sink.start()
        writer.start()
        stack.push_async_callback(sink.close)
        stack.push_async_callback(writer.close)
        drivers = []
        for scan in scans:
            rest = RecordedRest(scan.exchanges, lambda: clock.now)
            base = await stack.enter_async_context(_serve_rest(rest))
            driver = _VenueDriver(scan, rest, pipeline, clock)
            records = iter_frames(root, scan.venue, start, end, report=report)
            streams[scan.venue] = driver.open(settings, base, records)
            stack.push_async_callback(driver.close)
            drivers.append(driver)
        clock.on_time.append(_book_flusher(pipeline, settings))
        for driver in drivers:
            view.instruments[driver.scan.venue] = await driver.subscribe()
        clock.on_time.extend(hook(view) for hook in hooks)
        await asyncio.gather(*(driver.run() for driver in drivers))
        await clock.finish()
        await pipeline.flush_books(force=True, now=clock.now)
    firsts = [s.first_ts for s in scans if s.first_ts is not None]
    lasts = [s.last_ts for s in scans if s.last_ts is not None]
    return ReplayResult(
        venues={d.result.venue: d.result for d in drivers},
        first_ts=min(firsts) if firsts else None,
        last_ts=max(lasts) if lasts else None,
        seconds=time.monotonic() - began,
        damaged_blocks=len(report.damaged),
    )


def _book_flusher(pipeline: Pipeline, settings: Settings) -> TimeHook:
    """The service's book-flush job (every persist interval), on the recording's clock."""
    interval = int(max(0.05, settings.ingestion.book_persist_interval_seconds) * 1e9)
    due: list[int] = []

    async def on_time(ts: int) -> None:
        if not due:
            due.append(ts + interval)
        elif ts >= due[0]:
            await pipeline.flush_books(now=ts)
            due[0] = ts + interval

    return on_time


class _VenueDriver:
    """One venue's stream over its recording, feeding the shared pipeline."""

    def __init__(
        self, scan: RecordedVenue, rest: RecordedRest, pipeline: Pipeline, clock: ReplayClock
    ) -> None:
        self.scan = scan
        self.rest = rest
        self.pipeline = pipeline
        self.clock = clock
        self.result = VenueReplay(scan.venue)
        self.busy = False
        self.markets: list[Market] = []
        self.stream: VenueStream | None = None
        self.session: RecordedSession | None = None
        self._adapter: Any = None

    def open(self, settings: Settings, base: str, records: Iterable[Any]) -> VenueStream:
        name = self.scan.venue
        venue = _replay_venue_settings(name, settings.venues.get(name), base)
        self._adapter = adapter_class(name)(venue, settings)
        stream: VenueStream = self._adapter.open_stream()
        session = RecordedSession(name, records, self.clock, idle=self._idle)
        stream.session = session
        stream.on_market = self.markets.append
        self.stream, self.session = stream, session
        return stream

    def _idle(self) -> bool:
        stream, session = self.stream, self.session
        assert stream is not None and session is not None
        return not self.busy and stream.backlog() <= session.backlog

    async def subscribe(self) -> list[str]:
        """Subscribe the stream to every instrument the recording had; returns them."""
        assert self.stream is not None
        subs = list(self.scan.subscriptions)
        feed = getattr(self.stream, "feed", None)
        instruments = feed.instruments(subs) if isinstance(feed, VenueFeed) else subs
        await self.stream.subscribe(instruments)
        return instruments

    async def run(self) -> None:
        stream, session, result = self.stream, self.session, self.result
        assert stream is not None and session is not None
        events = aiter(stream)
        process = self.pipeline.process
        ended = asyncio.ensure_future(session.ended.wait())
        try:
            while True:
                event = await self._next_event(events, ended)
                if event is None:
                    break
                self.busy = True
                await process(event)
                result.events += 1
                while self.markets:
                    await process(self.markets.pop(0))
        finally:
            ended.cancel()
            self.busy = False
            await session.stop()
        result.frames, result.reconnects = session.frames, session.reconnects
        result.lost, result.commands_not_sent = session.lost, session.sent
        result.rest_served, result.rest_unknown = self.rest.served, self.rest.unknown
        rejects = getattr(self._adapter, "rejects", None)
        result.rejects = dict(rejects.counts) if rejects is not None else {}

    async def _next_event(
        self, events: AsyncIterator[Event], ended: asyncio.Future[Any]
    ) -> Event | None:
        """The stream's next event; None once the recording is over and the stream empty.

        A stream's iteration ends only when it is closed (a live one never runs
        out), so the end of the recording is noticed here: the session is done
        and the stream holds nothing more.
        """
        stream = self.stream
        assert stream is not None
        self.busy = True
        get = asyncio.ensure_future(anext(events))
        # One step for the stream: an event it already holds (the rest of a frame's
        # events) comes at once. Only a stream that has to wait for its next frame is
        # idle -- releasing a frame earlier would change its books under events not yet
        # through the pipeline.
        await asyncio.sleep(0)
        if not get.done():
            self.busy = False
            self.clock.poke()
        while True:
            await asyncio.wait({get, ended}, return_when=asyncio.FIRST_COMPLETED)
            if get.done():
                try:
                    return get.result()
                except StopAsyncIteration:
                    return None
            if stream.backlog() == 0:
                await asyncio.sleep(0)  # a stream's own task may still hand over its last events
                if not get.done() and stream.backlog() == 0:
                    get.cancel()
                    with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                        await get
                    return None

    async def close(self) -> None:
        if self.stream is not None:
            with contextlib.suppress(Exception):
                await self.stream.close()
        if self._adapter is not None:
            await self._adapter.close()


def _replay_venue_settings(name: str, venue: VenueSettings | None, base: str) -> VenueSettings:
    """The venue's settings with every endpoint pointed at the recorded REST server.

    Credentials the venue's client cannot be built without (Kalshi signs) are
    taken from its simulator's test keys when the config has none: nothing the
    replay sends leaves the machine.
    """
    venue = venue if venue is not None else VenueSettings()
    cls = adapter_class(name)
    urls = {}
    for key, default in cls.default_urls.items():
        parts = urlsplit(venue.urls.get(key) or default)
        local = urlsplit(base)
        scheme = "ws" if parts.scheme in ("ws", "wss") else "http"
        urls[key] = urlunsplit((scheme, local.netloc, parts.path, parts.query, ""))
    credentials = dict(venue.credentials)
    if not credentials:
        from pydantic import SecretStr

        sim = simulator_class(name).for_demo(seed=0, events_per_second=0)
        credentials = {k: SecretStr(v) for k, v in sim.client_credentials().items()}
    return venue.model_copy(update={"enabled": True, "urls": urls, "credentials": credentials})


@contextlib.asynccontextmanager
async def _serve_rest(rest: RecordedRest) -> AsyncIterator[str]:
    """``rest`` on a loopback port for the duration; yields its base URL."""

    async def handle(request: web.Request) -> web.StreamResponse:
        return await rest.handle(request, request.path)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    port = sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
