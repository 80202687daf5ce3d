"""The running system: venues, pipeline, sinks, supervised jobs and their status.

One :class:`Service` coordinates every enabled venue concurrently. Each venue
has a :class:`VenueRunner` whose jobs -- discovery, stream, snapshot polling,
liveness checks -- run as supervised components, so a venue that is down,
misconfigured or rate-limited shows up in status while the others go on.

Shutdown order matters for "nothing accepted is lost": stop intake (cancel
the venue jobs), store the last state of every changed book, drain the
writer until every queued record is durable, then close sinks and clients.

Trade completeness does not depend on which loops a venue runs: every
venue with a stream and a trade history keeps a durable completeness
watermark (``complete:<venue>``: trades are all stored up to that time); at
start, and whenever its stream is (re)started, a ``restart`` gap from that
watermark is opened and the venue's :class:`GapHealer` back-fills it from
REST once the stream is live -- as it does for every disconnect window.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import msgspec

from venuefeed import __version__
from venuefeed.book import OrderBook, SyncState
from venuefeed.config import Settings
from venuefeed.lake.recorder import Recorder
from venuefeed.log import get_logger
from venuefeed.metrics import INGESTION_ERRORS
from venuefeed.metrics_port import MetricsPort
from venuefeed.models import BookSnapshot, BookState, DataGap, Market, MarketStatus, Trade
from venuefeed.pipeline.healer import ALL_INSTRUMENTS, TRADE_CAUSES, GapHealer
from venuefeed.pipeline.history import InstrumentHistory
from venuefeed.pipeline.live import LiveHub
from venuefeed.pipeline.router import Pipeline
from venuefeed.pipeline.whales import WhaleWatch, whale_store
from venuefeed.pipeline.writer import SinkWriter
from venuefeed.sinks.base import RawMessage, Sink, SinkUnavailable, Watermark
from venuefeed.stats import ErrorLog, RollingCounters
from venuefeed.supervisor import Supervisor
from venuefeed.transport.backoff import Backoff
from venuefeed.transport.http import tapping_http
from venuefeed.venues.base import (
    CheckResult,
    MarketQuery,
    Unsupported,
    VenueAdapter,
    VenueStream,
    adapter_class,
    known_venues,
)

__all__ = ["AlreadyRunning", "Service", "VenueRunner", "build_sink"]

log = get_logger("venuefeed.service")
NS = 1_000_000_000


class AlreadyRunning(Exception):
    """Continuous ingestion was asked to start while it runs."""


def build_sink(settings: Settings) -> Sink:
    """The configured sinks (SQLite by default) behind one :class:`Sink`."""
    from venuefeed.sinks.fanout import build_sinks

    return build_sinks(settings)


class VenueRunner:
    """One venue's client and jobs."""

    def __init__(
        self,
        adapter: VenueAdapter,
        settings: Settings,
        pipeline: Pipeline,
        supervisor: Supervisor,
    ) -> None:
        self.adapter = adapter
        self.name = adapter.name
        self.settings = settings
        self.pipeline = pipeline
        self.supervisor = supervisor
        self.recorder: Recorder | None = None
        """Records the stream's frames when set (``recording.enabled``)."""
        self.stream: VenueStream | None = None
        self._last_stream: VenueStream | None = None
        self._past_reconnects = 0
        """Reconnects of the streams that ended (a restarted stream counts from 0)."""
        self.instruments: set[str] = set(adapter.settings.instruments)
        self.markets: dict[str, Market] = {}
        self.market_of: dict[str, Market] = {}
        """Known markets by instrument (titles for the console, the API)."""
        self.last_seen: dict[str, int] = {}
        self.last_discovery: float | None = None
        self.events = 0
        self._background: set[asyncio.Task[Any]] = set()
        self.healer = GapHealer(
            adapter, pipeline, settings.ingestion, supervisor.errors,
            instruments=lambda: self.instruments, live=self._stream_live,
        )  # fmt: skip
        self.resume_from: int | None = None
        """Trades are known complete up to here when the next stream starts (set from the
        durable watermark at service start, then from the stream that ended)."""
        self._watermark = 0
        self.stream_down_since: int | None = None
        self._loaded = False
        self._restart_pending = False
        self._busy = False
        self._done_recv = 0
        """Receive time of the last stream event fully handed to the pipeline."""

    @property
    def keeps_trades_complete(self) -> bool:
        return {"stream", "trades"} <= self.capabilities

    @property
    def capabilities(self) -> frozenset[str]:
        return frozenset(self.adapter.capabilities)

    def book(self, instrument: str) -> OrderBook | None:
        # After the stream stopped, its books still hold the last state: the
        # shutdown flush stores it from there.
        stream = self.stream or self._last_stream
        return stream.book(instrument) if stream is not None else None

    # -- discovery ---------------------------------------------------------

    async def discover(self) -> int:
        """Fetch markets in the resolution window; subscribe new, drop closed ones."""
        if "markets" not in self.capabilities:
            return 0
        discovery = self.settings.discovery
        query = MarketQuery(
            max_resolution_days=discovery.max_resolution_days,
            categories=tuple(discovery.categories),
            limit=discovery.max_markets,
        )
        markets: dict[str, Market] = {}
        async for market in self.adapter.fetch_markets(query):
            markets[market.market_id] = market
            await self.pipeline.process(market)
            if len(markets) >= discovery.max_markets:
                break
        self.markets = markets
        self.market_of = {i: m for m in markets.values() for i in m.instruments}
        self.last_discovery = time.time()
        active = {MarketStatus.OPEN, MarketStatus.UNKNOWN, MarketStatus.UPCOMING}
        desired = {i for m in markets.values() if m.status in active for i in m.instruments}
        desired |= set(self.adapter.settings.instruments)
        await self.set_instruments(desired)
        return len(markets)

    async def set_instruments(self, desired: Iterable[str]) -> None:
        desired = set(desired)
        added, removed = desired - self.instruments, self.instruments - desired
        self.instruments = desired
        stream = self.stream
        if stream is not None:
            if removed:
                await stream.unsubscribe(sorted(removed))
            if added:
                await stream.subscribe(sorted(added))

    async def discovery_loop(self) -> None:
        while True:
            await self.discover()
            await asyncio.sleep(self.settings.discovery.interval_seconds)

    # -- streaming ---------------------------------------------------------

    async def stream_loop(self) -> None:
        stream = self.adapter.open_stream()
        process = self.pipeline.process
        last_seen = self.last_seen
        note_gap = self.healer.note
        stream.on_market = self._market_learned
        stream.on_gap = note_gap
        if self.settings.storage.raw_messages:
            stream.tap_raw(self._capture_raw)
        if self.recorder is not None and stream.session is not None:
            stream.session.tap = self.recorder.venue(self.name)
        if self.keeps_trades_complete:
            if self._loaded:
                await self._open_restart_gap()
            else:  # the completeness job opens it once it knows where the store stands
                self._restart_pending = True
        async with stream:
            self.stream = self._last_stream = stream
            try:
                if self.instruments:
                    await stream.subscribe(sorted(self.instruments))
                async for event in stream:
                    self._busy = True
                    last_seen[event.instrument] = event.ts_recv
                    self.events += 1
                    if type(event) is DataGap:
                        note_gap(event)
                    await process(event)
                    self._done_recv = event.ts_recv
                    self._busy = False
            finally:
                # Whatever ended this stream, the next one back-fills from here.
                self.resume_from = self.complete_until(time.time_ns())
                self._past_reconnects += int(stream.stats().get("reconnects", 0))
                self.stream = None
                self._busy = False

    async def _open_restart_gap(self) -> None:
        """The window since trades were last known complete: healed once the stream is live."""
        now = time.time_ns()
        start = self.resume_from
        detail = "stream started"
        if start is None:
            lookback = self.settings.ingestion.backfill_lookback_seconds
            start = now - int(lookback * NS)
            detail = f"first start: no completeness watermark, back-filling {lookback:g} s"
        gap = DataGap(venue=self.name, instrument=ALL_INSTRUMENTS, ts_venue=0, ts_recv=now,
                      cause="restart", start=start, detail=detail)  # fmt: skip
        self.healer.note(gap)
        await self.pipeline.process(gap)

    def _track_stream(self, now: int) -> None:
        if self._stream_live():
            self.stream_down_since = None
        elif self.stream_down_since is None:
            self.stream_down_since = now

    def problems(self, now: int) -> list[str]:
        """This venue's reasons to call the service unhealthy (see :meth:`Service.problems`)."""
        out: list[str] = []
        limit = self.settings.quality.stale_feed_seconds
        down = self.stream_down_since
        if down is not None and now - down > limit * NS:
            state = self.stream.state if self.stream is not None else "not running"
            out.append(f"{self.name}: stream {state} for {(now - down) / NS:.0f} s "
                       f"(limit {limit:g} s)")  # fmt: skip
        gaps = self.healer.view()
        if gaps["failing"]:
            out.append(f"{self.name}: {gaps['failing']} gap(s) failing to heal: "
                       f"{gaps['last_error']}")  # fmt: skip
        return out

    def _stream_live(self) -> bool:
        stream = self.stream
        return stream is not None and stream.state == "connected"

    def complete_until(self, now: int) -> int | None:
        """Up to when every trade of this venue is stored or on its way to the store.

        The minimum of: what the stream's connections vouch for (a shard down, a
        reconnect window not yet handed over), the oldest trade gap still open,
        and -- while events wait in the stream's queues or in the pipeline --
        the receive time of the last event fully handed to the pipeline. None
        while no stream runs (nothing can be vouched for).
        """
        stream = self.stream
        if stream is None:
            return None
        until = stream.complete_until(now)
        if self._busy or stream.backlog():
            until = min(until, self._done_recv)
        oldest = self.healer.oldest_open()
        if oldest is not None:
            until = min(until, oldest)
        return until

    async def completeness_loop(self) -> None:
        """Load where the store stands, then keep its completeness watermark advancing.

        Until the store answers (it may be down at start: ingestion goes on into
        the spool meanwhile) no watermark is written and the first restart gap
        waits, so nothing is ever vouched for that was not checked.
        """
        interval = self.settings.ingestion.completeness_interval_seconds
        key = f"complete:{self.name}"
        backoff = Backoff(0.5, self.settings.ingestion.heal_retry_max_seconds)
        while not self._loaded:
            try:
                await self.load_completeness()
            except (SinkUnavailable, OSError) as exc:
                self.supervisor.errors.add(self.name, "completeness_load", str(exc))
                await asyncio.sleep(backoff.next_delay())
                continue
            self._loaded = True
            if self._restart_pending:
                self._restart_pending = False
                await self._open_restart_gap()
        while True:
            await asyncio.sleep(interval)
            now = time.time_ns()
            self._track_stream(now)
            until = self.complete_until(now)
            if until is None or until <= self._watermark:
                continue
            self._watermark = until
            await self.pipeline.writer.put(Watermark(key, str(until)))

    async def load_completeness(self) -> None:
        """Read the durable watermark and the gaps a previous run left open.

        Open trade gaps are healed again (their windows are fetched anew: the
        stores absorb duplicates); open book gaps are closed, because every
        book starts from a fresh snapshot now.
        """
        sink = self.pipeline.writer.sink
        stored = await sink.read_watermarks(f"complete:{self.name}")
        value = stored.get(f"complete:{self.name}")
        if value is not None:
            self.resume_from = self._watermark = int(value)
        now = time.time_ns()
        for gap in await sink.read_open_gaps(self.name):
            if gap.cause in TRADE_CAUSES:
                if not gap.end:
                    gap = msgspec.structs.replace(gap, end=now)
                self.healer.note(gap)
            else:
                closed = msgspec.structs.replace(
                    gap, end=gap.end or now, healed=True, ts_recv=now,
                    detail=f"{gap.detail}; books re-snapshotted at restart",
                )  # fmt: skip
                await self.pipeline.process(closed)

    def _capture_raw(self, data: bytes | str, ts_recv: int) -> None:
        """Queue a raw frame for ``raw_messages``; dropped (and counted) when the writer is full.

        Raw capture is a debugging aid: it must never slow down or block the data.
        """
        payload = data.encode() if isinstance(data, str) else data
        if not self.pipeline.writer.offer(RawMessage(self.name, "ws", ts_recv, payload)):
            INGESTION_ERRORS.labels(self.name, "raw_capture_dropped").inc()

    def _market_learned(self, market: Market) -> None:
        """A market the stream discovered by itself: keep and store it."""
        self.markets[market.market_id] = market
        for instrument in market.instruments:
            self.market_of[instrument] = market
        task = asyncio.get_running_loop().create_task(self.pipeline.process(market))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def wallets_loop(self) -> None:
        """Poll watched wallets (and market-wide large trades); marks survive restarts."""
        sink = self.pipeline.writer.sink
        prefix = f"wallets:{self.name}:"
        watcher = self.adapter.wallet_watcher(self._watched())
        stored = await sink.read_watermarks(prefix)
        marks = {
            key[len(prefix) :]: msgspec.json.decode(value, type=watcher.mark_type)
            for key, value in stored.items()
        }
        while True:
            wanted = self._watched()
            if set(wanted) != set(getattr(watcher, "wallets", wanted)):
                watcher = self.adapter.wallet_watcher(wanted)
            trades, new_marks = await watcher.poll(marks)
            for trade in trades:
                await self.pipeline.process(trade)
            for source, mark in new_marks.items():
                if marks.get(source) != mark:
                    value = msgspec.json.encode(mark).decode()
                    await self.pipeline.writer.put(Watermark(prefix + source, value))
            marks = new_marks
            await asyncio.sleep(self.settings.whales.poll_interval_seconds)

    def _watched(self) -> list[str]:
        configured = self.adapter.settings.options.get("whale_wallets", ())
        return sorted({*self.pipeline.whales.addresses, *(w.lower() for w in configured)})

    # -- polling -----------------------------------------------------------

    async def snapshot_pass(self, *, trades: bool = True) -> dict[str, int]:
        """Top-N books (and, with ``trades``, recent trades) of every tracked instrument, once."""
        depth = self.settings.ingestion.book_depth
        limit = asyncio.Semaphore(self.settings.ingestion.max_concurrency)
        counts: Counter[str] = Counter()
        since = time.time_ns() - int(self.settings.quality.max_trade_age_seconds * NS)

        async def one(instrument: str) -> None:
            async with limit:
                if "books" in self.capabilities:
                    try:
                        book = await self.adapter.fetch_book(instrument, depth)
                    except Unsupported:
                        pass
                    else:
                        await self.pipeline.process(book, live=False)
                        counts["books"] += 1
                if trades and "trades" in self.capabilities:
                    async for trade in self.adapter.fetch_trades(instrument, since, time.time_ns()):
                        await self.pipeline.process(trade, live=False)
                        counts["trades"] += 1

        results = await asyncio.gather(*(one(i) for i in sorted(self.instruments)),
                                       return_exceptions=True)  # fmt: skip
        for result in results:
            if isinstance(result, Exception):
                counts["errors"] += 1
                self.supervisor.errors.add(self.name, type(result).__name__, str(result))
        return dict(counts)

    async def snapshot_loop(self, interval: float) -> None:
        # Where the stream and the gap healer keep trades complete, polling them is waste.
        trades = not self.keeps_trades_complete
        while True:
            await self.snapshot_pass(trades=trades)
            await asyncio.sleep(interval)

    # -- gaps and liveness ---------------------------------------------------

    async def liveness_loop(self) -> None:
        """A quiet market is not a dead feed: ask REST before declaring a book stale."""
        limit = self.settings.quality.stale_feed_seconds
        while True:
            await asyncio.sleep(max(1.0, limit / 4))
            stream = self.stream
            if stream is None or "books" not in self.capabilities:
                continue
            now = time.time_ns()
            for instrument in sorted(self.instruments):
                if now - self.last_seen.get(instrument, now) < limit * NS:
                    continue
                local = stream.book(instrument)
                try:
                    remote = await self.adapter.fetch_book(instrument, 1)
                except Exception as exc:  # one instrument's REST failure is not the loop's
                    self.supervisor.errors.add(self.name, "liveness_check", f"{instrument}: {exc}")
                    continue
                if local is not None and _same_top(local, remote):
                    self.last_seen[instrument] = now  # quiet, and our book is right
                    continue
                await self.pipeline.process(
                    BookState(venue=self.name, instrument=instrument, ts_venue=0, ts_recv=now,
                              state=SyncState.STALE.value, reason="silent and differs from REST")
                )  # fmt: skip
                await stream.resync(instrument)
                self.last_seen[instrument] = now

    def view(self) -> dict[str, Any]:
        now = time.time_ns()
        last = self.pipeline.last_event_ns.get(self.name)
        states = Counter(
            state for (venue, _), state in self.pipeline.book_states.items() if venue == self.name
        )
        components = {
            n.split(":", 1)[1]: c
            for n, c in self.supervisor.view().items()
            if n.startswith(self.name + ":")
        }
        stream = self.stream
        counters = stream.stats() if stream is not None else {}
        return {
            "venue": self.name,
            "state": stream.state if stream is not None else _idle_state(components),
            "last_event_age_s": round((now - last) / NS, 3) if last else None,
            "events": self.events,
            "reconnects": self._past_reconnects + int(counters.get("reconnects", 0)),
            "stream": counters,
            "gaps": self.healer.view(),
            "subscribed": len(self.instruments),
            "markets": len(self.markets),
            "last_discovery_age_s": round(time.time() - self.last_discovery, 1)
            if self.last_discovery is not None
            else None,
            "book_states": dict(states),
            "components": components,
            "capabilities": sorted(self.capabilities),
        }


def _same_top(local: OrderBook, remote: BookSnapshot) -> bool:
    bid, ask = local.best_bid(), local.best_ask()
    rbid = remote.bids[0] if remote.bids else None
    rask = remote.asks[0] if remote.asks else None
    return bid == rbid and ask == rask


def _idle_state(components: Mapping[str, Mapping[str, Any]]) -> str:
    states = {c["state"] for c in components.values()}
    if "failed" in states:
        return "failed"
    if "backoff" in states:
        return "reconnecting"
    return "disconnected"


class Service:
    """Venues + pipeline + sinks, with control operations and status views."""

    def __init__(
        self,
        settings: Settings,
        *,
        sink: Sink | None = None,
        echo: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.sink = sink if sink is not None else build_sink(settings)
        self.stats = RollingCounters()
        self.errors = ErrorLog()
        self.supervisor = Supervisor(errors=self.errors)
        self.hub = LiveHub()
        self.history = InstrumentHistory()
        self.hub.observer = self.history.observe
        self.writer = SinkWriter(
            self.sink,
            max_pending=settings.ingestion.queue_size,
            batch_size=settings.storage.batch_size,
            on_stored=self._on_stored,
        )
        self.pipeline = Pipeline(
            settings, self.writer, hub=self.hub, stats=self.stats,
            whales=WhaleWatch(settings.whales.notional_threshold, settings.whales.thresholds),
            echo=echo,
        )  # fmt: skip
        self.pipeline.set_book_lookup(self._book_of)
        self.pipeline.set_title_lookup(self._title_of)
        self._echo = echo
        self.recorder: Recorder | None = None
        if settings.recording.enabled:
            rec = settings.recording
            self.recorder = Recorder(
                rec.path, flush_interval=rec.flush_interval_seconds,
                max_file_bytes=rec.max_file_bytes, max_buffer_bytes=rec.max_buffer_bytes,
                compression_level=rec.compression_level,
            )  # fmt: skip
        self.runners: dict[str, VenueRunner] = {}
        self.venue_errors: dict[str, str] = {}
        self.started_at = time.time()
        self.continuous = False
        self.latencies: deque[int] = deque(maxlen=5000)
        self._started = False
        self.sink_ok = False
        self.metrics_port: MetricsPort | None = None

    # -- lifecycle ---------------------------------------------------------

    async def start(self, *, continuous: bool = True) -> None:
        port = self.settings.metrics.port
        if port is not None and self.metrics_port is None:
            self.metrics_port = MetricsPort(self.settings.metrics.host, port)
            log.info("prometheus metrics", url=self.metrics_port.url)
        await self.sink.start()
        self.sink_ok = True
        self.writer.start()
        recorder = self.recorder
        if recorder is not None:
            await asyncio.to_thread(recorder.start)
        for name in known_venues():
            venue = self.settings.venues.get(name)
            if venue is None or not venue.enabled:
                continue
            try:
                if recorder is not None:  # the adapter's HTTP clients record their exchanges
                    with tapping_http(recorder.venue):
                        adapter = adapter_class(name)(venue, self.settings)
                else:
                    adapter = adapter_class(name)(venue, self.settings)
            except Exception as exc:  # misconfigured: report it, run the others
                self.venue_errors[name] = f"{type(exc).__name__}: {exc}"
                self.errors.add(name, "config", str(exc))
                log.error("venue not started", venue=name, error=self.venue_errors[name])
                continue
            runner = VenueRunner(adapter, self.settings, self.pipeline, self.supervisor)
            runner.recorder = recorder
            self.runners[name] = runner
        sup = self.supervisor
        sup.start("service:book-flush", self._flush_books_loop)
        sup.start("service:whales", self._whales_loop)
        storage = self.settings.storage
        if "parquet" in storage.sinks and storage.parquet_compact_interval_seconds > 0:
            sup.start("service:lake-compaction", self._compaction_loop)
        self._started = True
        if continuous:
            await self.start_continuous()

    async def stop(self) -> None:
        """Stop intake, flush books and pending batches, close everything. Loses nothing."""
        await self.stop_continuous()
        await self.supervisor.stop_all()
        try:
            # Stuck storage must not hold the shutdown here: the writer's close
            # below decides, with the same patience, what cannot be stored.
            async with asyncio.timeout(self.writer.close_patience_seconds):
                await self.pipeline.flush_books(force=True)
        except TimeoutError:
            log.error("last book states not stored at shutdown: storage is stuck",
                      problems=self.writer.problems())  # fmt: skip
        await self.writer.close()
        await self.sink.close()
        self.sink_ok = False
        for runner in self.runners.values():
            await runner.adapter.close()
        if self.metrics_port is not None:
            self.metrics_port.close()
            self.metrics_port = None
        if self.recorder is not None:
            await asyncio.to_thread(self.recorder.close)

    async def __aenter__(self) -> Service:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- control -------------------------------------------------------------

    def _runners(self, venues: Iterable[str] | None) -> list[VenueRunner]:
        if venues is None:
            return list(self.runners.values())
        out = []
        for name in venues:
            if name not in self.runners:
                raise KeyError(name)
            out.append(self.runners[name])
        return out

    async def discover_markets(self, venues: Iterable[str] | None = None) -> dict[str, Any]:
        results: dict[str, Any] = {}
        for runner in self._runners(venues):
            try:
                results[runner.name] = {"markets": await runner.discover()}
            except Exception as exc:
                self.errors.add(runner.name, type(exc).__name__, str(exc))
                results[runner.name] = {"error": f"{type(exc).__name__}: {exc}"}
        return results

    async def ingest_once(self, venues: Iterable[str] | None = None) -> dict[str, Any]:
        """One snapshot pass (books + recent trades) over every tracked instrument."""
        results: dict[str, Any] = {}
        for runner in self._runners(venues):
            try:
                if not runner.instruments:
                    await runner.discover()
                results[runner.name] = await runner.snapshot_pass()
            except Exception as exc:
                self.errors.add(runner.name, type(exc).__name__, str(exc))
                results[runner.name] = {"error": f"{type(exc).__name__}: {exc}"}
        await self.writer.drain()
        return results

    async def start_continuous(self, interval: float | None = None) -> None:
        if self.continuous:
            raise AlreadyRunning("continuous ingestion is already running")
        self.continuous = True
        snapshot_interval = interval or self.settings.ingestion.snapshot_interval_seconds
        for runner in self.runners.values():
            name, caps = runner.name, runner.capabilities
            if "markets" in caps:
                self.supervisor.start(f"{name}:discovery", runner.discovery_loop)
            if "stream" in caps:
                self.supervisor.start(f"{name}:stream", runner.stream_loop)
                self.supervisor.start(f"{name}:liveness", runner.liveness_loop)
            if runner.keeps_trades_complete:
                self.supervisor.start(f"{name}:completeness", runner.completeness_loop)
                self.supervisor.start(f"{name}:healer", runner.healer.run)
            if "wallets" in caps:
                self.supervisor.start(f"{name}:wallets", runner.wallets_loop)
            else:
                self.supervisor.start(
                    f"{name}:snapshot", functools.partial(runner.snapshot_loop, snapshot_interval)
                )

    async def stop_continuous(self) -> None:
        if not self.continuous:
            return
        self.continuous = False
        for name in self.runners:
            await self.supervisor.stop_all(prefix=f"{name}:")

    async def test_connection(self, venue: str) -> CheckResult:
        runner = self.runners.get(venue)
        if runner is not None:
            return await runner.adapter.check()
        if venue not in known_venues():
            raise KeyError(venue)
        settings = self.settings.venues.get(venue)
        if settings is None:
            raise KeyError(venue)
        async with adapter_class(venue)(settings, self.settings) as adapter:
            return await adapter.check()

    # -- internals -------------------------------------------------------------

    def _book_of(self, venue: str, instrument: str) -> OrderBook | None:
        runner = self.runners.get(venue)
        return runner.book(instrument) if runner is not None else None

    def _on_stored(self, batch: Any) -> None:
        now = time.time_ns()
        trades = 0
        for record in batch:
            if type(record) is Trade:
                trades += 1
                self.latencies.append(now - record.ts_recv)
        if trades:
            self.stats.add("trades_stored", trades)
        self.stats.add("records_stored", len(batch))

    def latency_ms(self) -> dict[str, float | None]:
        """p50/p99/max of frame-received -> trade-durable, over the recent trades."""
        values = sorted(self.latencies)
        if not values:
            return {"p50": None, "p99": None, "max": None}

        def pick(q: float) -> float:
            return round(values[min(len(values) - 1, int(q * len(values)))] / 1e6, 3)

        return {"p50": pick(0.5), "p99": pick(0.99), "max": round(values[-1] / 1e6, 3)}

    async def _flush_books_loop(self) -> None:
        interval = max(0.05, self.settings.ingestion.book_persist_interval_seconds)
        while True:
            await asyncio.sleep(interval)
            await self.pipeline.flush_books()

    async def _compaction_loop(self) -> None:
        """Merge the Parquet sink's small parts now and then (:mod:`venuefeed.lake.compact`)."""
        from venuefeed.lake.compact import compact_lake

        storage = self.settings.storage
        while True:
            await asyncio.sleep(storage.parquet_compact_interval_seconds)
            result = await asyncio.to_thread(
                compact_lake, storage.parquet_root,
                min_age_seconds=storage.parquet_compact_min_age_seconds,
                target_bytes=storage.parquet_compact_target_bytes,
            )  # fmt: skip
            if result.partitions:
                log.info("parquet lake compacted", partitions=result.partitions,
                         files_before=result.files_before, files_after=result.files_after,
                         duplicates=result.duplicates)  # fmt: skip

    async def _whales_loop(self) -> None:
        path = self.settings.storage.sqlite_path
        watched: int | None = None
        while True:
            if "sqlite" in self.settings.storage.sinks or path.exists():
                store = await asyncio.to_thread(whale_store, path)
                addresses = await asyncio.to_thread(store.enabled_addresses)
                self.pipeline.whales.update(addresses)
                if len(addresses) != watched and self._echo is not None:
                    # The banner lines of seed 001, and again whenever the list changes.
                    if watched is None:
                        self._echo(f"Loaded {len(addresses)} whales from the database")
                    self._echo(f"Monitoring {len(addresses)} whales in real time")
                watched = len(addresses)
            await asyncio.sleep(5)

    def _title_of(self, venue: str, market_id: str | None, instrument: str) -> str | None:
        runner = self.runners.get(venue)
        if runner is None:
            return None
        market = runner.markets.get(market_id) if market_id else None
        market = market or runner.market_of.get(instrument)
        return market.title if market is not None else None

    # -- views -----------------------------------------------------------------

    def venues_view(self) -> list[dict[str, Any]]:
        out = []
        for name in known_venues():
            venue = self.settings.venues.get(name)
            runner = self.runners.get(name)
            entry: dict[str, Any] = {
                "venue": name,
                "enabled": bool(venue and venue.enabled),
                "configured": bool(venue and (venue.credentials or venue.urls)),
            }
            if name in self.venue_errors:
                entry["state"] = "misconfigured"
                entry["error"] = self.venue_errors[name]
            elif runner is not None:
                entry.update(runner.view())
            else:
                entry["state"] = "disabled"
            out.append(entry)
        return out

    def problems(self) -> list[str]:
        """Why the service is not healthy right now, one line each; empty when it is.

        ``/api/status`` answers 503 with these when the list is not empty, so a
        container healthcheck sees a failed venue or a failing sink.
        """
        out: list[str] = []
        if self._started and not self.sink_ok:
            out.append("storage: not connected")
        out.extend(self.writer.problems())
        if self.recorder is not None:
            out.extend(self.recorder.problems())
        for name, error in self.venue_errors.items():
            out.append(f"{name}: misconfigured: {error}")
        now = time.time_ns()
        for runner in self.runners.values():
            out.extend(runner.problems(now))
        for name, component in self.supervisor.components.items():
            if component.state == "failed":
                out.append(f"{name}: failed ({component.restarts} restarts): "
                           f"{component.last_error}")  # fmt: skip
        return out

    def status(self) -> dict[str, Any]:
        venues = self.venues_view()
        errors = self.errors.recent(3600)
        problems = self.problems()
        return {
            "healthy": not problems,
            "problems": problems,
            "version": __version__,
            "uptime_s": round(time.time() - self.started_at, 1),
            "continuous": self.continuous,
            "database_connected": self.sink_ok,
            "venues": venues,
            "errors_last_hour": len(errors),
            "details": {
                "writer": {
                    "pending": self.writer.pending,
                    "stored": self.writer.stored,
                    "rejected": self.writer.rejected,
                    "backpressure_waits": self.writer.backpressure_waits,
                    "last_error": self.writer.last_error,
                },
                "pipeline": dict(self.pipeline.outcomes),
                "components": self.supervisor.view(),
                "live_subscribers": self.hub.subscribers,
                "whales_watched": len(self.pipeline.whales.addresses),
                "recording": self.recorder.view() if self.recorder is not None else None,
            },
        }

    def metrics_window(self) -> dict[str, Any]:
        totals = self.stats.totals()
        window = self.stats.window
        age_count = totals.get("trade_age.count", 0)
        return {
            "window_s": window,
            "events_received": totals.get("events", 0),
            "events_per_s": round(self.stats.rate("events"), 2),
            "trades_stored": totals.get("trades_stored", 0),
            "trades": totals.get("trades", 0),
            "price_updates": totals.get("price_updates", 0),
            "book_updates": totals.get("book_updates", 0),
            "whale_trades": totals.get("whale_trades", 0),
            "g1_stale_blocked": totals.get("g1_stale", 0),
            "g3_size_backfilled": totals.get("g3_backfilled", 0),
            "g3_size_missing": totals.get("g3_missing", 0),
            "g5_divergence_flagged": totals.get("g5_flagged", 0),
            "gaps": totals.get("gaps", 0),
            "avg_trade_age_s": round(totals["trade_age.sum_ms"] / age_count / 1000, 3)
            if age_count
            else None,
            "errors": len(self.errors.recent(window)),
        }

    def ready(self) -> bool:
        return self.sink_ok and any(
            r.stream is not None and r.stream.state == "connected" for r in self.runners.values()
        )
