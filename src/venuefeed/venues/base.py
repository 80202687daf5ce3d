"""The contract every venue implements, and the registry that finds them.

A venue is a folder, the same modules in each: ``venues/<name>/`` holds
``protocol.py`` (wire structs), ``parse.py`` (pure and total: ``parse_frame``
and the REST page parsers), ``feed.py`` (the sans-IO venue state: books,
sequences, checks; frames in, events and commands out), ``rest.py`` (REST
through :mod:`venuefeed.transport`), ``options.py`` (typed, strict
``Options``), ``adapter.py`` (whose live stream is the generic
:class:`~venuefeed.venues.pump.FeedStream` around the feed), ``sim.py`` (the
venue's routes and market model on the shared simulator) and an
``__init__.py`` exposing ``Adapter``, ``Options`` and ``Simulator`` -- plus
only the extras a venue truly needs (Kalshi's ``auth``/``archive``,
Polymarket's ``wallets``). Registering it is one line in :data:`VENUES`.

Capabilities differ -- Binance has no markets to discover, Polymarket no
candles below a minute -- so each adapter declares what it supports in
:attr:`VenueAdapter.capabilities` and the rest raise :class:`Unsupported`.
"""

from __future__ import annotations

import abc
import asyncio
import importlib
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from venuefeed.book import OrderBook
from venuefeed.models import BookSnapshot, Candle, DataGap, Event, Market, Trade
from venuefeed.venues.checks import TimeWindow
from venuefeed.venues.rejects import Rejects

if TYPE_CHECKING:
    from venuefeed.config import Settings, VenueSettings
    from venuefeed.sim.base import SimulatorBase
    from venuefeed.transport import WsSession
    from venuefeed.venues.options import VenueOptions

__all__ = [
    "VENUES",
    "Capability",
    "Channel",
    "CheckResult",
    "HistoryLimit",
    "MarketQuery",
    "Unsupported",
    "VenueAdapter",
    "VenueStream",
    "WalletSource",
    "adapter_class",
    "disconnect_gap",
    "known_venues",
    "simulator_class",
]

Capability = Literal["markets", "books", "trades", "candles", "stream", "wallets"]
Channel = Literal["books", "trades", "quotes", "candles", "status"]
ALL_CHANNELS: frozenset[Channel] = frozenset({"books", "trades", "quotes", "candles", "status"})

VENUES: dict[str, str] = {
    "polymarket": "venuefeed.venues.polymarket",
    "kalshi": "venuefeed.venues.kalshi",
    "binance": "venuefeed.venues.binance",
    "polygon": "venuefeed.venues.polygon",
}
"""Registered venues: name -> package exposing ``Adapter`` and ``Simulator``."""


class Unsupported(Exception):
    """The venue does not offer this (e.g. market discovery on Binance)."""


class HistoryLimit(Exception):
    """The venue's history does not reach back to the start of the asked window.

    Raised by trade-history fetches after yielding what the venue still has, so
    a gap whose trades are partly gone stays open with this reason instead of
    being called healed.
    """


@dataclass(frozen=True, slots=True)
class MarketQuery:
    """What discovery should return."""

    max_resolution_days: float = 7.0
    """Keep markets resolving within this many days from now; 0 disables the filter."""
    categories: tuple[str, ...] = ()
    active_only: bool = True
    limit: int | None = None


@dataclass(slots=True)
class CheckResult:
    """Outcome of ``venuefeed test --venue NAME``: reachability and auth, with a verdict."""

    venue: str
    reachable: bool
    authenticated: bool | None = None
    """None when the venue needs no credentials for what we use."""
    latency_ms: float | None = None
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.reachable and self.authenticated is not False


class VenueStream(abc.ABC):
    """A live feed of canonical events for a changing set of instruments.

    Book events come out already checked against the local book (the stream
    owns its books and resyncs an instrument on its own); ``BookState`` and
    ``DataGap`` events report what happened. Iterating ends only after
    :meth:`close`. Markets a stream learns by itself (an asset id seen before
    discovery found its market) go to :attr:`on_market`, so the service can
    store them.
    """

    on_market: Callable[[Market], None] | None = None
    on_gap: Callable[[DataGap], None] | None = None
    """Told of every gap the moment the stream opens it, before the gap event is queued:
    the service's completeness watermark must never pass a window it has not heard of."""
    session: WsSession | None = None
    """The transport session, for the counters and completeness below."""

    @abc.abstractmethod
    async def subscribe(self, instruments: Iterable[str]) -> None: ...

    @abc.abstractmethod
    async def unsubscribe(self, instruments: Iterable[str]) -> None: ...

    @abc.abstractmethod
    def __aiter__(self) -> AsyncIterator[Event]: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @property
    @abc.abstractmethod
    def state(self) -> str:
        """The transport state (``connected``, ``reconnecting`` ...) for status views."""

    @property
    def reconnects(self) -> int:
        session = self.session
        return session.reconnects if session is not None else 0

    def stats(self) -> dict[str, Any]:
        """The counters status shows; the generic pump (:class:`~venuefeed.venues.pump.FeedStream`)
        adds frames, events, rejects by reason and the last frame per connection."""
        return {"reconnects": self.reconnects}

    def complete_until(self, now: int) -> int:
        """Up to when this stream's data is complete (see :meth:`WsSession.complete_until`)."""
        session = self.session
        return session.complete_until(now) if session is not None else now

    def backlog(self) -> int:
        """Frames or events received and not yet yielded (streams with a queue of their
        own add it): while non-zero, the consumer has not seen all that arrived."""
        session = self.session
        return session.backlog if session is not None else 0

    def open_gap(self, gap: DataGap) -> DataGap:
        """Tell :attr:`on_gap` of a gap at once; returns it for the event queue."""
        if self.on_gap is not None:
            self.on_gap(gap)
        return gap

    def book(self, instrument: str) -> OrderBook | None:
        """The stream's local book of ``instrument`` (the pipeline reads mids and top-N).

        Streams that keep books return them; the pipeline never modifies them.
        """
        return None

    def tap_raw(self, tap: Callable[[bytes | str, int], None]) -> None:
        """Have every raw frame (and its receive time) passed to ``tap``: raw capture."""
        raise Unsupported(f"{type(self).__name__} cannot capture raw frames")

    async def resync(self, instrument: str) -> None:
        """Rebuild one instrument's book from a fresh snapshot (liveness checks call it).

        The default resubscribes that instrument; venues with a cheaper snapshot
        request override it.
        """
        await self.unsubscribe([instrument])
        await self.subscribe([instrument])

    async def __aenter__(self) -> VenueStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class WalletSource(Protocol):
    """Polls trades of watched wallets (and market-wide large trades) since per-source marks.

    ``mark_type`` is the msgspec type of one mark, so the service can persist
    marks as JSON watermarks and decode them after a restart.
    """

    mark_type: type[Any]

    async def poll(self, marks: Mapping[str, Any]) -> tuple[list[Trade], dict[str, Any]]: ...


def disconnect_gap(
    venue: str,
    conn: int,
    instruments: Sequence[str],
    down_since: int,
    ts_recv: int,
    detail: str = "",
) -> DataGap:
    """One gap for one replaced connection, listing the instruments it carried."""
    return DataGap(
        venue=venue,
        instrument=f"conn:{conn}",
        ts_venue=0,
        ts_recv=ts_recv,
        cause="disconnect",
        start=down_since,
        end=ts_recv,
        detail=detail or f"connection {conn} replaced",
        instruments=tuple(sorted(instruments)),
    )


class VenueAdapter(abc.ABC):
    """One venue's client: REST look-ups and live streams as canonical events."""

    name: ClassVar[str]
    default_urls: ClassVar[Mapping[str, str]]
    """The venue's real production endpoints by name; config ``urls`` override them."""
    capabilities: ClassVar[frozenset[Capability]]
    trade_history_seconds: ClassVar[float | None] = None
    """How far back the venue's public trade history reaches (None: as far as asked)."""
    options_type: ClassVar[type[VenueOptions] | None] = None
    """The venue's typed ``options`` (:class:`~venuefeed.venues.options.VenueOptions`):
    start-up checks every configured venue's keys against it. None: not declared."""

    def __init__(self, settings: VenueSettings, config: Settings) -> None:
        unknown = set(settings.urls) - set(self.default_urls)
        if unknown:
            raise ValueError(
                f"venues.{self.name}.urls: unknown endpoint name(s) {sorted(unknown)}; "
                f"known: {sorted(self.default_urls)}"
            )
        self.settings = settings
        self.config = config
        ingestion = config.ingestion
        window = TimeWindow(ingestion.venue_time_past_seconds, ingestion.venue_time_future_seconds)
        self.rejects = Rejects(self.name, window)
        """Bad input from this venue, REST and stream alike, counted by reason."""

    @classmethod
    def why_no_data(cls, settings: VenueSettings) -> str:
        """Why this venue, as configured, cannot have data (``""`` when it can).

        Reports name it instead of showing an empty venue as fully covered.
        """
        if "markets" not in cls.capabilities and not settings.instruments:
            return f"no subscription: venues.{cls.name}.instruments is empty"
        return ""

    def url(self, name: str) -> str:
        """The configured (or default) base URL of one of the venue's endpoints."""
        return self.settings.urls.get(name) or self.default_urls[name]

    def credential(self, name: str) -> str | None:
        secret = self.settings.credentials.get(name)
        return secret.get_secret_value() if secret is not None else None

    async def close(self) -> None:
        """Release connections. Adapters holding HTTP clients override this."""

    async def __aenter__(self) -> VenueAdapter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- REST --------------------------------------------------------------

    def fetch_markets(self, query: MarketQuery) -> AsyncIterator[Market]:
        raise Unsupported(f"{self.name} has no market discovery")

    async def fetch_book(self, instrument: str, depth: int) -> BookSnapshot:
        raise Unsupported(f"{self.name} has no order book endpoint")

    def fetch_trades(self, instrument: str, start_ns: int, end_ns: int) -> AsyncIterator[Trade]:
        raise Unsupported(f"{self.name} has no trade history endpoint")

    async def trade_history_groups(self, instruments: Iterable[str]) -> list[list[str]]:
        """Instruments grouped by the history request that serves them (default: one each).

        Polymarket serves both outcome tokens of a market in one request, so it
        groups them; fetching a gap's window then costs one request per group.
        """
        return [[instrument] for instrument in dict.fromkeys(instruments)]

    async def fetch_trade_group(
        self, group: Sequence[str], start_ns: int, end_ns: int
    ) -> AsyncIterator[Trade]:
        """The trades of one group in the window (default: each instrument's history)."""
        for instrument in group:
            async for trade in self.fetch_trades(instrument, start_ns, end_ns):
                yield trade

    async def fetch_trade_window(
        self, instruments: Iterable[str], start_ns: int, end_ns: int, *, concurrency: int = 8
    ) -> AsyncIterator[Trade]:
        """Every trade of ``instruments`` in ``[start_ns, end_ns]``, a few groups at a time.

        Any failure ends the whole fetch (the caller retries the window; stores
        are idempotent). Groups whose history is cut short by the venue still
        yield what exists, and :class:`HistoryLimit` is raised at the end.
        """
        groups = await self.trade_history_groups(instruments)
        queue: asyncio.Queue[list[Trade] | None] = asyncio.Queue(max(1, concurrency))
        pending = asyncio.Queue[list[str]]()
        for group in groups:
            pending.put_nowait(group)
        limits: list[str] = []

        async def worker() -> None:
            while not pending.empty():
                group = pending.get_nowait()
                batch: list[Trade] = []
                try:
                    async for trade in self.fetch_trade_group(group, start_ns, end_ns):
                        batch.append(trade)
                        if len(batch) >= 500:
                            await queue.put(batch)
                            batch = []
                except HistoryLimit as exc:
                    limits.append(str(exc))
                if batch:
                    await queue.put(batch)

        async def run_workers() -> None:
            try:
                async with asyncio.TaskGroup() as group:  # one failure cancels the others
                    for _ in range(max(1, concurrency)):
                        group.create_task(worker())
            except BaseExceptionGroup as failed:
                raise failed.exceptions[0] from None
            finally:
                await queue.put(None)

        runner = asyncio.ensure_future(run_workers())
        try:
            while (batch := await queue.get()) is not None:
                for trade in batch:
                    yield trade
            await runner  # re-raises a worker's failure
        finally:
            if not runner.done():
                runner.cancel()
                await asyncio.gather(runner, return_exceptions=True)
        if limits:
            raise HistoryLimit("; ".join(sorted(set(limits))[:5]))

    def fetch_candles(
        self, instrument: str, interval: str, start_ns: int, end_ns: int
    ) -> AsyncIterator[Candle]:
        raise Unsupported(f"{self.name} has no candle endpoint")

    @abc.abstractmethod
    async def check(self) -> CheckResult:
        """Reachability (and auth, where configured) with a clear verdict."""

    # -- streaming ---------------------------------------------------------

    def open_stream(self, channels: frozenset[Channel] = ALL_CHANNELS) -> VenueStream:
        raise Unsupported(f"{self.name} has no live stream")

    def wallet_watcher(self, wallets: Iterable[str] | None = None) -> WalletSource:
        """Whale sources for ``wallets`` (capability ``wallets``)."""
        raise Unsupported(f"{self.name} has no per-wallet trade history")

    async def _stream_channel(
        self, channel: Channel, instruments: Iterable[str]
    ) -> AsyncIterator[Event]:
        stream = self.open_stream(frozenset({channel}))
        async with stream:
            await stream.subscribe(instruments)
            async for event in stream:
                yield event

    def stream_trades(self, instruments: Iterable[str]) -> AsyncIterator[Event]:
        return self._stream_channel("trades", instruments)

    def stream_quotes(self, instruments: Iterable[str]) -> AsyncIterator[Event]:
        return self._stream_channel("quotes", instruments)

    def stream_books(self, instruments: Iterable[str]) -> AsyncIterator[Event]:
        return self._stream_channel("books", instruments)


def known_venues() -> list[str]:
    return sorted(VENUES)


def _venue_module(name: str) -> Any:
    try:
        path = VENUES[name]
    except KeyError:
        raise KeyError(
            f"unknown venue {name!r}; known venues: {', '.join(known_venues())}"
        ) from None
    return importlib.import_module(path)


def adapter_class(name: str) -> type[VenueAdapter]:
    cls: type[VenueAdapter] = _venue_module(name).Adapter
    return cls


def simulator_class(name: str) -> type[SimulatorBase]:
    cls: type[SimulatorBase] = _venue_module(name).Simulator
    return cls
