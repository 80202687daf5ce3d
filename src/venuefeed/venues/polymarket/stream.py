"""The live Polymarket stream: CLOB market WebSocket -> checked books and canonical events.

What this module decides (the transport keeps the connections alive):

* **Subscribing.** :class:`MarketChannel` says what to send: ``assets_ids``
  with ``initial_dump`` so every book starts from a snapshot, and
  ``custom_feature_enabled`` for ``best_bid_ask``/``new_market``/
  ``market_resolved``. At most ``max_assets`` ids per connection (default
  200, what NautilusTrader runs in production; a third-party guide's 500 is
  unconfirmed, and a connection over the venue's real cap silently loses
  assets); the transport shards beyond that. ``PING`` is the app heartbeat
  and the transport sends it only after the subscribe -- a ``PING`` first
  makes the venue close with 1008, in a loop.
* **Books.** A book per token from ``book`` snapshots and ``price_change``
  levels (absolute sizes). Polymarket has no sequence numbers, so consistency
  comes from elsewhere: a crossed book, the removal of a level we do not hold,
  or the venue's own ``best_bid``/``best_ask`` disagreeing with ours marks that
  token ``resyncing`` and queues a REST snapshot for *that token only*. A
  ``tick_size_change`` drops the book and ignores its changes until a fresh
  snapshot. Snapshots and changes older than the newest snapshot are stale
  (a reordered frame) and skipped.
* **Audits.** REST snapshots are checked against the venue's ``hash`` with the
  official client's algorithm; since the server's algorithm has changed
  before, a mismatch is only counted and re-fetched at most once per interval
  -- data is never dropped and nothing loops. Separately, live books are
  compared with REST snapshots round-robin; a real divergence (same venue
  timestamp, different levels -- or a REST book that moved while ours could
  not) is reported as a ``DataGap`` and healed by loading the REST book.
* **Unknown markets.** Tokens that arrive without known market metadata are
  looked up on Gamma, debounced and batched; ``on_market`` receives them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import msgspec

from venuefeed import metrics
from venuefeed.book import Books, Inconsistency, OrderBook, SyncState, price_key
from venuefeed.log import get_logger
from venuefeed.models import (
    BookDelta,
    BookSnapshot,
    BookState,
    DataGap,
    Event,
    Market,
    MarketStatusChange,
    PriceUpdate,
    TopOfBook,
    Trade,
)
from venuefeed.transport import Frame, HttpError, Reconnected, WsPolicy, WsProtocolBase, WsSession
from venuefeed.venues.base import ALL_CHANNELS, Channel, VenueStream, disconnect_gap
from venuefeed.venues.polymarket import parse
from venuefeed.venues.polymarket.protocol import BookSummary
from venuefeed.venues.polymarket.rest import PolymarketRest
from venuefeed.venues.rejects import Rejects

__all__ = ["HashAudit", "MarketChannel", "PolymarketStream", "StreamOptions", "audit_verdict"]

_VENUE: Final = parse.VENUE
_log = get_logger(__name__)
_encode = msgspec.json.encode


class MarketChannel(WsProtocolBase):
    """The market channel's wire protocol, for :class:`~venuefeed.transport.WsSession`."""

    app_ping: str | None = "PING"

    def __init__(self, url: str, max_assets: int = 200, ping_interval: float = 10.0) -> None:
        self._url = url
        self.max_subscriptions: int | None = max_assets
        self.app_ping_interval = ping_interval

    def url(self) -> str:
        return self._url

    def subscribe(self, subs: Sequence[str], initial: bool) -> Sequence[str | bytes]:
        body: dict[str, object] = {"assets_ids": list(subs)}
        if initial:
            body["type"] = "market"
        else:
            body["operation"] = "subscribe"
        body["initial_dump"] = True
        body["custom_feature_enabled"] = True
        return (_encode(body).decode(),)

    def unsubscribe(self, subs: Sequence[str]) -> Sequence[str | bytes]:
        return (_encode({"assets_ids": list(subs), "operation": "unsubscribe"}).decode(),)

    def is_heartbeat_reply(self, data: bytes | str) -> bool:
        return data == "PONG" or data == b"PONG"


@dataclass(frozen=True, slots=True)
class StreamOptions:
    """Tunables, read from ``venues.polymarket.options`` (see :meth:`from_options`)."""

    max_assets_per_connection: int = 200
    ping_interval: float = 10.0
    audit_interval: float = 60.0
    """Seconds between audit rounds of live books against REST snapshots."""
    audit_batch: int = 20
    hash_recheck_interval: float = 60.0
    """At most one re-fetch per token per this many seconds after a hash mismatch."""
    resync_retry_interval: float = 2.0
    discovery_debounce: float = 0.5
    queue_size: int = 10_000

    @classmethod
    def from_options(cls, options: Mapping[str, object]) -> StreamOptions:
        def num(key: str, default: float) -> float:
            value = options.get(key, default)
            if not isinstance(value, int | float | str):
                raise ValueError(f"venues.polymarket.options.{key}: not a number: {value!r}")
            return float(value)

        return cls(
            max_assets_per_connection=int(num("max_assets_per_connection", 200)),
            ping_interval=num("ping_interval_seconds", 10.0),
            audit_interval=num("audit_interval_seconds", 60.0),
            audit_batch=int(num("audit_batch", 20)),
            hash_recheck_interval=num("hash_recheck_interval_seconds", 60.0),
            resync_retry_interval=num("resync_retry_interval_seconds", 2.0),
            discovery_debounce=num("discovery_debounce_seconds", 0.5),
        )


class HashAudit:
    """Checks REST book hashes; a mismatch is counted and re-fetched at most once per interval."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.mismatches = 0
        self._clock = clock
        self._last_refetch: dict[str, float] = {}

    def check(self, summary: BookSummary) -> bool:
        """True when ``summary`` should be fetched again to confirm a mismatch."""
        if not summary.hash or parse.book_hash(summary) == summary.hash:
            return False
        self.mismatches += 1
        metrics.BOOK_INCONSISTENCIES.labels(_VENUE, "rest_hash_mismatch").inc()
        now = self._clock()
        last = self._last_refetch.get(summary.asset_id)
        if last is not None and now - last < self.interval:
            return False
        self._last_refetch[summary.asset_id] = now
        return True


def audit_verdict(book: OrderBook, rest: BookSnapshot, suspect_ts: int | None) -> str:
    """Compare a live book with a REST snapshot of the same token.

    ``"match"``/``"mismatch"`` when both describe the same venue moment;
    ``"wait"`` when they do not (a change in flight either way). A REST book
    newer than ours *twice at the same timestamp* (``suspect_ts``) means we
    missed its last change: ``"mismatch"``.
    """
    if rest.ts_venue == book.ts_venue:
        same = book.bids() == rest.bids and book.asks() == rest.asks
        return "match" if same else "mismatch"
    if rest.ts_venue > book.ts_venue and suspect_ts == rest.ts_venue:
        return "mismatch"
    return "wait"


class PolymarketStream(VenueStream):
    """Market-channel stream; owns the books of the tokens it is subscribed to."""

    def __init__(
        self,
        rest: PolymarketRest,
        url: str,
        *,
        options: StreamOptions = StreamOptions(),  # frozen: a shared default is safe
        ws_policy: WsPolicy | None = None,
        channels: frozenset[Channel] = ALL_CHANNELS,
        on_market: Callable[[Market], None] | None = None,
        rejects: Rejects | None = None,
    ) -> None:
        self.rest = rest
        self.options = options
        self.channels = channels
        self.on_market = on_market
        self.protocol = MarketChannel(url, options.max_assets_per_connection, options.ping_interval)
        self.session: WsSession = WsSession(_VENUE, self.protocol, ws_policy or WsPolicy())
        self.books = Books(_VENUE)
        self.markets: dict[str, Market] = {}
        """Known market metadata by token id."""
        self.rejects = rejects or Rejects(_VENUE)
        self.hash_audit = HashAudit(options.hash_recheck_interval)
        self.audit_mismatches = 0
        self.resyncs = 0
        self._books_on = "books" in channels
        self._trades_on = "trades" in channels
        self._quotes_on = "quotes" in channels
        self._status_on = "status" in channels
        self._snap_ts: dict[str, int] = {}
        self._tick_hold: set[str] = set()
        self._subscribed: dict[str, None] = {}
        self._resync: dict[str, None] = {}
        self._resync_wake = asyncio.Event()
        self._recheck: dict[str, None] = {}
        self._suspect: dict[str, int] = {}
        self._audit_cursor = 0
        self._unknown: dict[str, None] = {}
        self._not_found: set[str] = set()
        self._unknown_wake = asyncio.Event()
        self._queue: asyncio.Queue[list[Event] | None] = asyncio.Queue(options.queue_size)
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False
        self._closed = False
        self._m_resync = metrics.BOOK_RESYNCS.labels(_VENUE)

    # -- VenueStream -------------------------------------------------------------------

    @property
    def state(self) -> str:
        return str(self.session.state)

    def register(self, markets: Iterable[Market]) -> None:
        """Make market metadata known (discovery results), so no Gamma look-up is needed."""
        for market in markets:
            for token in market.instruments:
                self.markets[token] = market

    async def subscribe(self, instruments: Iterable[str]) -> None:
        new = [t for t in dict.fromkeys(instruments) if t not in self._subscribed]
        for token in new:
            self._subscribed[token] = None
        await self.session.subscribe(new)
        await self._start()

    async def unsubscribe(self, instruments: Iterable[str]) -> None:
        gone = [t for t in instruments if self._subscribed.pop(t, 0) is None]
        await self.session.unsubscribe(gone)
        for token in gone:
            self.books.drop(token)
            self._snap_ts.pop(token, None)
            self._tick_hold.discard(token)
            self._resync.pop(token, None)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._events()

    async def _events(self) -> AsyncIterator[Event]:
        await self._start()
        queue = self._queue
        while True:
            batch = await queue.get()
            if batch is None:
                return
            for event in batch:
                yield event

    def backlog(self) -> int:
        return super().backlog() + self._queue.qsize()

    def tap_raw(self, tap: Callable[[bytes | str, int], None]) -> None:
        self.session.raw_tap = tap

    def book(self, instrument: str) -> OrderBook | None:
        return self.books.find(instrument)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self.session.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)

    async def _start(self) -> None:
        if self._started or self._closed:
            return
        self._started = True
        await self.session.start()
        for job in (self._pump(), self._resync_worker(), self._audit_worker(), self._discover()):
            self._tasks.append(asyncio.create_task(job))

    async def _emit(self, events: list[Event]) -> None:
        if events:
            await self._queue.put(events)

    # -- frames (hot path) ---------------------------------------------------------------

    async def _pump(self) -> None:
        on_frame = self.on_frame
        async for item in self.session:
            if isinstance(item, Frame):
                out = on_frame(item.data, item.ts_recv)
            else:
                out = self._on_reconnected(item)
            if out:
                await self._queue.put(out)

    def on_frame(self, data: bytes | str, ts_recv: int) -> list[Event]:
        """Parse one frame, update the books, and return the events to publish."""
        out: list[Event] = []
        markets = self.markets
        for item in parse.parse_frame(data, ts_recv, self.rejects):
            kind = type(item)
            if kind is parse.Change:
                assert isinstance(item, parse.Change)
                self._on_delta(item.delta, item.best_bid, item.best_ask, out)
                if item.delta.instrument not in markets:
                    self._note_unknown(item.delta.instrument)
            elif kind is BookSnapshot:
                assert isinstance(item, BookSnapshot)
                self._on_snapshot(item, out)
                if item.instrument not in markets:
                    self._note_unknown(item.instrument)
            elif kind is Trade or kind is PriceUpdate:
                assert isinstance(item, Trade | PriceUpdate)
                if self._trades_on:
                    out.append(item)
                if item.instrument not in markets:
                    self._note_unknown(item.instrument)
            elif kind is TopOfBook:
                assert isinstance(item, TopOfBook)
                if self._quotes_on:
                    out.append(item)
            elif kind is parse.TickSize:
                assert isinstance(item, parse.TickSize)
                self._on_tick_size(item.status, out)
            elif kind is MarketStatusChange:
                assert isinstance(item, MarketStatusChange)
                if self._status_on:
                    out.append(item)
            elif kind is Market:
                assert isinstance(item, Market)
                self._learn([item])
            elif kind is parse.Lost:
                assert isinstance(item, parse.Lost)
                self._on_lost(item, ts_recv, out)
        return out

    def _on_lost(self, lost: parse.Lost, ts_recv: int, out: list[Event]) -> None:
        """An update of this token was refused: its book missed it, so reload it."""
        if lost.instrument not in self._subscribed or lost.instrument in self._tick_hold:
            return  # not ours, or void until its fresh snapshot anyway
        book = self.books.find(lost.instrument)
        if book is not None and book.state is SyncState.LIVE:
            book.invalidate(lost.reason)
        self._fail(lost.instrument, lost.reason, ts_recv, out)

    def _on_delta(
        self, delta: BookDelta, best_bid: str | None, best_ask: str | None, out: list[Event]
    ) -> None:
        token = delta.instrument
        if token in self._tick_hold or token not in self._subscribed:
            return
        book = self.books.find(token)
        if book is None or book.state is not SyncState.LIVE:
            return  # no snapshot yet, or a resync is already on its way
        if delta.ts_venue < self._snap_ts.get(token, 0):
            return  # older than the snapshot we hold: already in it
        problem = book.apply_delta(delta)
        if problem is None and (best_bid is not None or best_ask is not None):
            problem = _top_problem(book, best_bid, best_ask)
            if problem is not None:
                book.invalidate(problem)
        if problem is not None:
            self._fail(token, problem, delta.ts_recv, out)
        elif self._books_on:
            out.append(delta)

    def _on_snapshot(self, snap: BookSnapshot, out: list[Event], *, force: bool = False) -> None:
        token = snap.instrument
        if token not in self._subscribed:
            return
        book = self.books.get(token)
        if not force and book.state is SyncState.LIVE and snap.ts_venue < book.ts_venue:
            return  # a reordered, older snapshot must not roll the book back
        previous = book.state
        problem = book.load_snapshot(snap)
        self._snap_ts[token] = snap.ts_venue
        self._tick_hold.discard(token)
        self._resync.pop(token, None)
        self._suspect.pop(token, None)
        if problem is not None:
            self._fail(token, problem, snap.ts_recv, out)
            return
        if self._books_on:
            out.append(snap)
            if previous is not SyncState.LIVE:
                out.append(_state(token, snap.ts_recv, SyncState.LIVE, "snapshot"))

    def _on_tick_size(self, status: MarketStatusChange, out: list[Event]) -> None:
        token, ts_recv = status.instrument, status.ts_recv
        if self._status_on:
            out.append(status)
        if token not in self._subscribed:
            return
        # Every resting level may be re-priced: the book is void until a fresh snapshot.
        self.books.drop(token)
        self._tick_hold.add(token)
        if self._books_on:
            out.append(_state(token, ts_recv, SyncState.RESYNCING, "tick_size_change"))
        self._request_resync(token)

    def _fail(self, token: str, problem: Inconsistency, ts_recv: int, out: list[Event]) -> None:
        metrics.BOOK_INCONSISTENCIES.labels(_VENUE, problem.value).inc()
        if self._books_on:
            out.append(_state(token, ts_recv, SyncState.RESYNCING, problem.value))
        self._request_resync(token)

    def _request_resync(self, token: str) -> None:
        if token not in self._resync:
            self._resync[token] = None
            self._resync_wake.set()

    def _on_reconnected(self, item: Reconnected) -> list[Event]:
        """Data on that connection may be missing between ``down_since`` and now.

        The resubscribe asked for the initial dump, so books heal from fresh
        snapshots; trades in the window are the gap healer's job.
        """
        tokens = self.session.shard_subscriptions(item.conn)
        return [
            self.open_gap(disconnect_gap(_VENUE, item.conn, tokens, item.down_since, item.ts_recv))
        ]

    # -- REST-backed jobs ------------------------------------------------------------------

    async def _resync_worker(self) -> None:
        """Fetch snapshots for tokens whose book failed, batched, one request per batch."""
        while True:
            await self._resync_wake.wait()
            self._resync_wake.clear()
            while self._resync:
                batch = list(self._resync)[:50]
                try:
                    summaries = await self.rest.summaries(batch)
                except HttpError as exc:
                    _log.warning(
                        "book resync failed; will retry", error=str(exc), tokens=len(batch)
                    )
                    await asyncio.sleep(self.options.resync_retry_interval)
                    continue
                out: list[Event] = []
                now = time.time_ns()
                for summary in summaries:
                    if summary.asset_id in self._resync:
                        self.resyncs += 1
                        self._m_resync.inc()
                        self._load_rest(summary, now, out, force=True)
                for token in batch:
                    # Tokens the venue did not answer for stay pending only until the next wake.
                    self._resync.pop(token, None)
                await self._emit(out)

    def _load_rest(self, summary: BookSummary, now: int, out: list[Event], *, force: bool) -> None:
        if self.hash_audit.check(summary):
            self._recheck[summary.asset_id] = None
        snap = parse.book_snapshot(summary, now, self.rejects)
        if snap is not None:
            self._on_snapshot(snap, out, force=force)

    async def _audit_worker(self) -> None:
        """Round-robin comparison of live books with REST snapshots (plus hash re-checks)."""
        interval = self.options.audit_interval
        while True:
            await asyncio.sleep(interval)
            live = [
                b.instrument
                for b in self.books
                if b.state is SyncState.LIVE and b.instrument not in self._tick_hold
            ]
            stuck = [
                b.instrument
                for b in self.books
                if b.state is SyncState.RESYNCING and b.instrument not in self._resync
            ]
            for token in [*stuck, *self._tick_hold]:
                self._request_resync(token)
            batch = self._next_audit_batch(live)
            rechecks = [t for t in self._recheck if t in self._subscribed]
            self._recheck.clear()
            if not batch and not rechecks:
                continue
            try:
                summaries = await self.rest.summaries(list(dict.fromkeys(batch + rechecks)))
            except HttpError as exc:
                _log.warning("book audit failed", error=str(exc))
                continue
            out: list[Event] = []
            now = time.time_ns()
            for summary in summaries:
                self._audit_one(summary, now, out)
            await self._emit(out)

    def _next_audit_batch(self, live: list[str]) -> list[str]:
        if not live:
            return []
        size = min(self.options.audit_batch, len(live))
        start = self._audit_cursor % len(live)
        self._audit_cursor = start + size
        return [live[(start + i) % len(live)] for i in range(size)]

    def _audit_one(self, summary: BookSummary, now: int, out: list[Event]) -> None:
        token = summary.asset_id
        if self.hash_audit.check(summary):
            self._recheck[token] = None
        book = self.books.find(token)
        if book is None or book.state is not SyncState.LIVE:
            return
        rest = parse.book_snapshot(summary, now, self.rejects)
        if rest is None:
            return
        verdict = audit_verdict(book, rest, self._suspect.get(token))
        if verdict == "match":
            self._suspect.pop(token, None)
        elif verdict == "wait":
            if rest.ts_venue > book.ts_venue:
                self._suspect[token] = rest.ts_venue
        else:
            self.audit_mismatches += 1
            metrics.BOOK_INCONSISTENCIES.labels(_VENUE, Inconsistency.CHECKSUM.value).inc()
            if self._books_on:
                out.append(
                    DataGap(
                        venue=_VENUE,
                        instrument=token,
                        ts_venue=rest.ts_venue,
                        ts_recv=now,
                        cause="checksum_mismatch",
                        start=book.ts_venue,
                        end=rest.ts_venue,
                        detail="live book differs from REST snapshot; reloaded",
                        healed=True,
                    )
                )
            self._on_snapshot(rest, out, force=True)

    # -- unknown markets --------------------------------------------------------------------

    def _note_unknown(self, token: str) -> None:
        if token not in self._unknown and token not in self._not_found:
            self._unknown[token] = None
            self._unknown_wake.set()

    def _learn(self, markets: list[Market]) -> None:
        self.register(markets)
        if self.on_market is not None:
            for market in markets:
                self.on_market(market)

    async def _discover(self) -> None:
        """Load metadata for unknown tokens from Gamma: debounced, then one batched look-up."""
        while True:
            await self._unknown_wake.wait()
            await asyncio.sleep(self.options.discovery_debounce)
            self._unknown_wake.clear()
            tokens = [t for t in self._unknown if t not in self.markets]
            self._unknown.clear()
            if not tokens:
                continue
            try:
                found = await self.rest.markets_by_tokens(tokens)
            except HttpError as exc:
                _log.warning("market look-up failed", error=str(exc), tokens=len(tokens))
                continue
            self._learn(found)
            missing = [t for t in tokens if t not in self.markets]
            if missing and len(self._not_found) < 100_000:
                self._not_found.update(missing)
                _log.info("tokens without a Gamma market", count=len(missing))


def _top_problem(
    book: OrderBook, best_bid: str | None, best_ask: str | None
) -> Inconsistency | None:
    """Our top of book against the venue's (``"0"``/empty means an empty side).

    Compared as float keys (exact for these prices): no canonical text is built
    on this per-change path.
    """
    ours_bid, ours_ask = book.best_prices()
    if best_bid is not None:
        want = price_key(best_bid) if best_bid not in ("", "0") else None
        if want != ours_bid:
            return Inconsistency.TOP_MISMATCH
    if best_ask is not None:
        want = price_key(best_ask) if best_ask not in ("", "0", "1") else None
        if want != ours_ask:
            return Inconsistency.TOP_MISMATCH
    return None


def _state(token: str, ts_recv: int, state: SyncState, reason: str) -> BookState:
    return BookState(
        venue=_VENUE,
        instrument=token,
        ts_venue=0,
        ts_recv=ts_recv,
        state=state.value,
        reason=reason,
    )
