"""A local Binance spot: REST market data and combined streams on 127.0.0.1.

It speaks the venue's wire format (``shared/docs/venue-protocols.md`` section 3,
checked against ``shared/captures/binance`` in the tests) so the real adapter
runs against it unchanged:

* ``GET /api/v3/{ping,time,exchangeInfo,depth,trades,aggTrades,klines}`` with
  the venue's request weights, an ``X-MBX-USED-WEIGHT-1M`` header on every
  answer, a 429 with ``Retry-After`` when the weight window is exhausted, and
  the 418 ban for a client that keeps sending while told to wait.
* ``/stream?streams=a/b`` (combined) and ``/ws/<stream>`` (raw) WebSockets
  with ``SUBSCRIBE`` / ``UNSUBSCRIBE`` / ``LIST_SUBSCRIPTIONS``, server ping
  frames, the 5 messages/s control limit and the 1024-stream limit.

Live market: each symbol's book is a seeded random walk in integer ticks with
contiguous update ids; every step is one diff-depth event, and trades are
printed at the touch, whether or not anyone is connected. History: before the
simulator started, aggregate trades and klines are pure functions of (seed,
symbol, time), so any range can be served -- and served identically on a
rerun, which is what backfill tests compare; from its start on,
``/api/v3/aggTrades`` serves the trades the live market printed (one
aggregate per trade, ids continuing the history's), which is what a client
back-fills a disconnect from.

Faults: the shared :class:`~venuefeed.sim.faults.Faults` switches;
``skip_update_rate`` drops a depth event while its update ids advance (the
client must see the gap); ``stale_snapshot_rate`` serves a depth snapshot
older than recent events (``stale_snapshot``). A client that ignores a 429
earns the venue's 418 ban (``http_418``). The ground truth records every
trade, every skipped update and each symbol's final book.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from random import Random
from typing import Any, Final

import msgspec
from aiohttp import web

from venuefeed import exact
from venuefeed.sim.base import Book, Faults, GroundTruth, SimulatorBase
from venuefeed.sim.sockets import Heartbeat, SimSocket, Sockets
from venuefeed.venues.binance.protocol import INTERVAL_MS, depth_weight

__all__ = ["Simulator"]

_QTY_SCALE: Final = 100_000_000
_AGG_SLOT_MS: Final = 100
_WINDOW_TICKS: Final = 150
_WEEK_OFFSET_MS: Final = 4 * 86_400_000  # the epoch was a Thursday; Binance weeks start Monday
_STREAM_RE: Final = re.compile(
    r"^[a-z0-9]+@(?:trade|aggTrade|bookTicker|depth(?:@100ms|@1000ms)?|kline_(?:"
    + "|".join(INTERVAL_MS)
    + r"))$"
)
_BASE_PRICE: Final = {"BTCUSDT": 6_000_000, "ETHUSDT": 300_000}
_MAX_CONTROL_PER_SECOND: Final = 5
_MAX_STREAMS: Final = 1024


def _px(ticks: int) -> str:
    """Ticks of 0.01 -> the venue's 8-decimal text."""
    return f"{ticks // 100}.{ticks % 100:02d}000000"


def _qty(units: int) -> str:
    """Units of 1e-8 -> the venue's 8-decimal text."""
    return f"{units // _QTY_SCALE}.{units % _QTY_SCALE:08d}"


def _mix(*parts: int) -> int:
    """A 64-bit hash of integers (splitmix64 finaliser): cheap, seedable, stable across runs."""
    x = 0x9E3779B97F4A7C15
    for part in parts:
        x = (x ^ (part & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        x = (x ^ (x >> 27)) * 0x94D049BB133111EB & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 31
    return x


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class _Book:
    """One symbol's live book in integer ticks/units, and its update id."""

    def __init__(self, symbol: str, rng: Random) -> None:
        self.symbol = symbol
        self.rng = rng
        self.mid = _BASE_PRICE.get(symbol, 10_000 + _mix(len(symbol)) % 90_000)
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.update_id = 1_000_000
        self.trade_id = 5_000_000
        self.agg_id = 2_000_000
        self.recent_trades: deque[dict[str, Any]] = deque(maxlen=1000)
        # Copies of the book every few steps, to serve "snapshot older than the stream".
        self.history: deque[tuple[int, dict[int, int], dict[int, int]]] = deque(maxlen=8)
        self.steps = 0
        for off in range(60):
            if rng.random() < 0.8:
                self.bids[self.mid - 1 - off] = rng.randint(1, 5 * _QTY_SCALE)
            if rng.random() < 0.8:
                self.asks[self.mid + off] = rng.randint(1, 5 * _QTY_SCALE)
        self.history.append((self.update_id, dict(self.bids), dict(self.asks)))

    def step(self) -> tuple[int, int, dict[int, int], dict[int, int]]:
        """Advance the book by one diff event: ``(U, u, bid changes, ask changes)``."""
        rng = self.rng
        bid_changes: dict[int, int] = {}
        ask_changes: dict[int, int] = {}
        move = rng.random()
        if move < 0.1:
            self.mid += 1
            for tick in [t for t in self.asks if t < self.mid]:
                ask_changes[tick] = 0
        elif move < 0.2:
            self.mid -= 1
            for tick in [t for t in self.bids if t >= self.mid]:
                bid_changes[tick] = 0
        for _ in range(rng.randint(1, 6)):
            off = min(int(rng.expovariate(0.12)), _WINDOW_TICKS - 1)
            qty = 0 if rng.random() < 0.25 else rng.randint(1, 5 * _QTY_SCALE)
            if rng.random() < 0.5:
                bid_changes[self.mid - 1 - off] = qty
            else:
                ask_changes[self.mid + off] = qty
        for tick in self.bids:
            if tick < self.mid - _WINDOW_TICKS:
                bid_changes[tick] = 0
        for tick in self.asks:
            if tick >= self.mid + _WINDOW_TICKS:
                ask_changes[tick] = 0
        _apply(self.bids, bid_changes)
        _apply(self.asks, ask_changes)
        first = self.update_id + 1
        self.update_id += len(bid_changes) + len(ask_changes)
        self.steps += 1
        if self.steps % 20 == 0:
            self.history.append((self.update_id, dict(self.bids), dict(self.asks)))
        return first, self.update_id, bid_changes, ask_changes

    def levels(
        self, limit: int | None = None, stale: bool = False
    ) -> tuple[int, list[list[str]], list[list[str]]]:
        """``(lastUpdateId, bids, asks)`` best-first as the venue formats them."""
        update_id, bids, asks = (
            self.history[0] if stale and self.history else (self.update_id, self.bids, self.asks)
        )
        bid_ticks = sorted(bids, reverse=True)[:limit]
        ask_ticks = sorted(asks)[:limit]
        return (
            update_id,
            [[_px(t), _qty(bids[t])] for t in bid_ticks],
            [[_px(t), _qty(asks[t])] for t in ask_ticks],
        )

    def best(self) -> tuple[int | None, int | None]:
        return (max(self.bids) if self.bids else None, min(self.asks) if self.asks else None)


def _apply(side: dict[int, int], changes: dict[int, int]) -> None:
    for tick, qty in changes.items():
        if qty:
            side[tick] = qty
        else:
            side.pop(tick, None)


class _History:
    """Aggregate trades and klines as pure functions of (seed, symbol, time)."""

    def __init__(self, seed: int, symbol: str) -> None:
        self.key = _mix(seed, *symbol.encode())
        self.base = _BASE_PRICE.get(symbol, 10_000 + _mix(len(symbol)) % 90_000)

    def price(self, t_ms: int) -> int:
        """A smooth path plus per-second noise, in ticks."""
        slow = math.sin(2 * math.pi * t_ms / 21_600_000) * self.base * 0.02
        fast = math.sin(2 * math.pi * t_ms / 2_220_000) * self.base * 0.004
        noise = _mix(self.key, t_ms // 1000) % 41 - 20
        return max(1, self.base + int(slow) + int(fast) + noise)

    def agg_trade(self, slot: int) -> dict[str, Any]:
        """The aggregate trade of one 100 ms slot; its id is the slot number."""
        h = _mix(self.key, slot, 7)
        t_ms = slot * _AGG_SLOT_MS + h % _AGG_SLOT_MS
        qty = 1 + (h >> 8) % (2 * _QTY_SCALE)
        return {
            "a": slot,
            "p": _px(self.price(t_ms) + (h >> 40) % 3 - 1),
            "q": _qty(qty),
            "f": slot,
            "l": slot,
            "T": t_ms,
            "m": bool(h >> 63),
            "M": True,
        }

    def slot_at_or_after(self, t_ms: int) -> int:
        slot = t_ms // _AGG_SLOT_MS
        return slot if self.agg_trade(slot)["T"] >= t_ms else slot + 1

    def kline(self, open_ms: int, interval_ms: int, now_ms: int) -> list[Any]:
        """One 12-element kline row; an unfinished bar ends at ``now_ms``."""
        close_ms = open_ms + interval_ms - 1
        h = _mix(self.key, open_ms, interval_ms)
        o = self.price(open_ms)
        c = self.price(min(close_ms, now_ms))
        hi = max(o, c) + h % 25
        lo = max(1, min(o, c) - (h >> 16) % 25)
        volume = 1 + (h >> 24) % (50 * _QTY_SCALE)
        taker = volume * ((h >> 56) % 100) // 100
        quote = volume * (o + c) // 2 // 100
        return [
            open_ms,
            _px(o),
            _px(hi),
            _px(lo),
            _px(c),
            _qty(volume),
            close_ms,
            _qty(quote),
            1 + (h >> 32) % 5000,
            _qty(taker),
            _qty(taker * (o + c) // 2 // 100),
            "0",
        ]


@dataclass(eq=False)
class _Client:
    """What the venue knows about one socket: its URL form and the streams it follows."""

    combined: bool
    streams: set[str] = field(default_factory=set)
    control_times: deque[float] = field(default_factory=lambda: deque(maxlen=16))


_Socket = SimSocket[_Client]


def _error(status: int, code: int, msg: str) -> web.Response:
    return web.json_response({"code": code, "msg": msg}, status=status)


def _int_param(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise web.HTTPBadRequest(
            text=msgspec.json.encode(
                {"code": -1100, "msg": f"Illegal characters found in parameter '{name}'."}
            ).decode(),
            content_type="application/json",
        ) from None


class Simulator(SimulatorBase):
    """Binance spot on 127.0.0.1 (see the module docstring)."""

    venue = "binance"

    def __init__(
        self,
        *,
        seed: int = 1,
        faults: Faults | None = None,
        ground_truth: GroundTruth | None = None,
        symbols: Iterable[str] = ("BTCUSDT", "ETHUSDT"),
        events_per_second: float = 50.0,
        weight_limit: int = 6000,
        weight_window_seconds: float = 60.0,
        ban_seconds: float = 120.0,
        ping_interval: float = 20.0,
        kline_push_seconds: float = 2.0,
    ) -> None:
        super().__init__(seed=seed, faults=faults, ground_truth=ground_truth)
        self.symbols = tuple(s.upper() for s in symbols)
        self.events_per_second = events_per_second
        self.weight_limit = weight_limit
        self.weight_window_seconds = weight_window_seconds
        self.ban_seconds = ban_seconds
        self.kline_push_seconds = kline_push_seconds
        self.books = {s: _Book(s, Random(_mix(seed, *s.encode()))) for s in self.symbols}
        self.history = {s: _History(seed, s) for s in self.symbols}
        self.live_aggs: dict[str, list[dict[str, Any]]] = {s: [] for s in self.symbols}
        """Aggregate trades the live market printed, oldest first (REST history after start)."""
        self.live_since_ms = _now_ms()
        for symbol, book in self.books.items():
            # The first live aggregate takes the id of the first history slot not served.
            book.agg_id = self.history[symbol].slot_at_or_after(self.live_since_ms) - 1
        self.sockets: Sockets[_Client] = Sockets(self, heartbeat=Heartbeat(ping_interval))
        self.weight_used = 0
        self._window = 0
        self._blocked_until = 0.0

    # -- lifecycle -------------------------------------------------------------

    def urls(self) -> dict[str, str]:
        return {"rest": self.base_url, "ws": self.ws_base_url}

    async def on_start(self) -> None:
        self.spawn(self.pace(self._step_all, self.events_per_second))
        self.spawn(self._klines())

    def final_books(self) -> dict[str, Book]:
        out = {}
        for symbol, book in self.books.items():
            _, bids, asks = book.levels()
            out[symbol] = (_canonical(bids), _canonical(asks))
        return out

    def book(self, symbol: str) -> tuple[int, list[list[str]], list[list[str]]]:
        """The simulator's current full book: ``(lastUpdateId, bids, asks)``."""
        return self.books[symbol].levels()

    # -- routes ------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        app.middlewares.append(self._weight_middleware)
        app.router.add_get("/api/v3/ping", self._ping)
        app.router.add_get("/api/v3/time", self._time)
        app.router.add_get("/api/v3/exchangeInfo", self._exchange_info)
        app.router.add_get("/api/v3/depth", self._depth)
        app.router.add_get("/api/v3/trades", self._trades)
        app.router.add_get("/api/v3/aggTrades", self._agg_trades)
        app.router.add_get("/api/v3/klines", self._klines_rest)
        app.router.add_get("/stream", self._ws)
        app.router.add_get("/ws", self._ws)
        app.router.add_get("/ws/{stream}", self._ws)

    # -- weights, 429 and 418 ---------------------------------------------------

    def _weight(self, request: web.Request) -> int:
        path = request.path
        if path == "/api/v3/depth":
            return depth_weight(_int_param(request, "limit") or 100)
        return {
            "/api/v3/exchangeInfo": 20,
            "/api/v3/trades": 25,
            "/api/v3/aggTrades": 4,
            "/api/v3/klines": 2,
        }.get(path, 1)

    def _retry_after(self) -> int:
        window = self.weight_window_seconds
        return max(1, math.ceil(window - time.monotonic() % window))

    def rate_limited_response(self) -> web.Response:
        """The fault switch's 429, with the fault's ``Retry-After`` (or the window's)."""
        retry_after = self.faults.retry_after_seconds
        return self._too_many(
            self._retry_after() if retry_after is None else max(1, math.ceil(retry_after))
        )

    def _too_many(self, retry_after: int) -> web.Response:
        """The venue's 429: error -1003 and ``Retry-After``; ignoring it earns a 418 ban."""
        self._blocked_until = time.monotonic() + retry_after
        return web.json_response(
            {"code": -1003, "msg": "Too much request weight used; please use the API less."},
            status=429,
            headers={"Retry-After": str(retry_after)},
        )

    @web.middleware
    async def _weight_middleware(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        if not request.path.startswith("/api/"):
            return await handler(request)
        now = time.monotonic()
        if now < self._blocked_until:
            ban = max(1, math.ceil(self.ban_seconds))
            self._blocked_until = now + ban
            self.truth.record("http_418", path=request.path)
            return web.json_response(
                {"code": -1003, "msg": "Way too much request weight used; IP banned."},
                status=418,
                headers={"Retry-After": str(ban)},
            )
        window = int(now // self.weight_window_seconds)
        if window != self._window:
            self._window, self.weight_used = window, 0
        self.weight_used += self._weight(request)
        if self.weight_used > self.weight_limit:
            self.truth.record("http_429", path=request.path, weight=self.weight_used)
            response: web.StreamResponse = self._too_many(self._retry_after())
        else:
            response = await handler(request)
        response.headers["X-MBX-USED-WEIGHT-1M"] = str(self.weight_used)
        return response

    # -- REST handlers ----------------------------------------------------------

    def _symbol(self, request: web.Request) -> str:
        symbol = request.query.get("symbol", "")
        if not symbol:
            raise web.HTTPBadRequest(
                text='{"code":-1102,"msg":"Mandatory parameter \'symbol\' was not sent, '
                'was empty/null, or malformed."}',
                content_type="application/json",
            )
        if symbol not in self.books:
            raise web.HTTPBadRequest(
                text='{"code":-1121,"msg":"Invalid symbol."}', content_type="application/json"
            )
        return symbol

    @staticmethod
    def _limit(request: web.Request, default: int, maximum: int) -> int:
        limit = _int_param(request, "limit")
        return default if limit is None else max(1, min(limit, maximum))

    async def _ping(self, request: web.Request) -> web.Response:
        return web.json_response({})

    async def _time(self, request: web.Request) -> web.Response:
        return web.json_response({"serverTime": _now_ms()})

    async def _exchange_info(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "timezone": "UTC",
                "serverTime": _now_ms(),
                "rateLimits": [
                    {
                        "rateLimitType": "REQUEST_WEIGHT",
                        "interval": "MINUTE",
                        "intervalNum": 1,
                        "limit": self.weight_limit,
                    },
                    {
                        "rateLimitType": "RAW_REQUESTS",
                        "interval": "MINUTE",
                        "intervalNum": 5,
                        "limit": 61000,
                    },
                ],
                "exchangeFilters": [],
                "symbols": [
                    {
                        "symbol": s,
                        "status": "TRADING",
                        "baseAsset": s[:-4],
                        "baseAssetPrecision": 8,
                        "quoteAsset": s[-4:],
                        "quotePrecision": 8,
                        "quoteAssetPrecision": 8,
                    }
                    for s in self.symbols
                ],
            }
        )

    async def _depth(self, request: web.Request) -> web.Response:
        symbol = self._symbol(request)
        limit = self._limit(request, 100, 5000)
        stale = self.chance(self.faults.stale_snapshot_rate)
        update_id, bids, asks = self.books[symbol].levels(limit, stale=stale)
        if stale:
            self.truth.record("stale_snapshot", symbol=symbol, last_update_id=update_id)
        return web.json_response({"lastUpdateId": update_id, "bids": bids, "asks": asks})

    async def _trades(self, request: web.Request) -> web.Response:
        symbol = self._symbol(request)
        limit = self._limit(request, 500, 1000)
        trades = list(self.books[symbol].recent_trades)[-limit:]
        return web.json_response(trades)

    async def _agg_trades(self, request: web.Request) -> web.Response:
        """History before the simulator started, then the trades its market printed."""
        symbol = self._symbol(request)
        hist = self.history[symbol]
        live = self.live_aggs[symbol]
        limit = self._limit(request, 500, 1000)
        from_id = _int_param(request, "fromId")
        start = _int_param(request, "startTime")
        end = _int_param(request, "endTime")
        now = _now_ms()
        end = now if end is None else min(end, now)
        first_live = hist.slot_at_or_after(self.live_since_ms)
        if from_id is not None:
            first = from_id
        elif start is not None:
            if start < self.live_since_ms:
                first = hist.slot_at_or_after(start)
            else:
                at = bisect.bisect_left([r["T"] for r in live], start)
                first = live[at]["a"] if at < len(live) else first_live + len(live)
        else:
            recent = [r for r in live if r["T"] <= end][-limit:]
            first = recent[0]["a"] if len(recent) == limit else first_live - limit + len(recent)
        rows: list[dict[str, Any]] = []
        slot = first
        while len(rows) < limit:
            if slot < first_live:
                row = hist.agg_trade(slot)
                if row["T"] >= self.live_since_ms:
                    slot = first_live
                    continue
            elif slot - first_live < len(live):
                row = live[slot - first_live]
            else:
                break
            if row["T"] > end:
                break
            rows.append(row)
            slot += 1
        return web.json_response(rows)

    async def _klines_rest(self, request: web.Request) -> web.Response:
        symbol = self._symbol(request)
        interval = request.query.get("interval", "")
        interval_ms = INTERVAL_MS.get(interval)
        if interval_ms is None:
            return _error(400, -1120, "Invalid interval.")
        limit = self._limit(request, 500, 1000)
        start = _int_param(request, "startTime")
        end = _int_param(request, "endTime")
        now = _now_ms()
        end = now if end is None else min(end, now)
        offset = _WEEK_OFFSET_MS if interval == "1w" else 0
        if start is None:
            last = (end - offset) // interval_ms * interval_ms + offset
            first = last - (limit - 1) * interval_ms
        else:
            first = -((offset - start) // interval_ms) * interval_ms + offset
        hist = self.history[symbol]
        rows: list[list[Any]] = []
        open_ms = first
        while len(rows) < limit and open_ms <= end:
            rows.append(hist.kline(open_ms, interval_ms, now))
            open_ms += interval_ms
        return web.json_response(rows)

    # -- WebSocket ------------------------------------------------------------------

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        combined = request.path == "/stream"
        initial = (
            request.query.get("streams", "") if combined else request.match_info.get("stream", "")
        )
        client = _Client(combined, {s for s in initial.split("/") if _STREAM_RE.match(s)})
        return await self.sockets.serve(request, client, self._control)

    async def _control(self, sock: _Socket, text: str) -> None:
        """Answer one control message (too many per second close the socket, as the venue does)."""
        conn = sock.state
        now = time.monotonic()
        conn.control_times.append(now)
        recent = [t for t in conn.control_times if now - t < 1.0]
        if len(recent) > _MAX_CONTROL_PER_SECOND:
            self.truth.record("control_rate_exceeded", conn=sock.number)
            await sock.ws.close(code=1008, message=b"Too many requests")
            return
        try:
            msg = msgspec.json.decode(text)
        except msgspec.DecodeError:
            self.sockets.reply(sock, '{"code":3,"msg":"Invalid JSON: malformed message"}')
            return
        if not isinstance(msg, dict):
            self.sockets.reply(sock, '{"code":3,"msg":"Invalid JSON: expected an object"}')
            return
        req_id = msg.get("id")
        method = msg.get("method")
        params = msg.get("params") or []
        reply: dict[str, Any]
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            bad = [s for s in params if not isinstance(s, str) or not _STREAM_RE.match(s)]
            if bad:
                reply = {"code": 2, "msg": f"Invalid request: bad stream {bad[0]!r}", "id": req_id}
            elif method == "SUBSCRIBE" and len(conn.streams | set(params)) > _MAX_STREAMS:
                reply = {"code": 2, "msg": "Invalid request: too many streams", "id": req_id}
            else:
                if method == "SUBSCRIBE":
                    conn.streams.update(params)
                else:
                    conn.streams.difference_update(params)
                reply = {"result": None, "id": req_id}
        elif method == "LIST_SUBSCRIPTIONS":
            reply = {"result": sorted(conn.streams), "id": req_id}
        else:
            reply = {"code": 2, "msg": "Invalid request: unknown method", "id": req_id}
        self.sockets.reply(sock, msgspec.json.encode(reply).decode())

    def _broadcast(self, stream: str, payload: str) -> int:
        """Publish ``payload`` to every socket following ``stream``; returns how many."""
        combined = None
        sent = 0
        for sock in self.sockets:
            conn = sock.state
            if stream not in conn.streams:
                continue
            if conn.combined:
                if combined is None:
                    combined = f'{{"stream":"{stream}","data":{payload}}}'
                frame = combined
            else:
                frame = payload
            self.sockets.publish(sock, frame)
            sent += 1
        return sent

    # -- the live market ------------------------------------------------------------

    def _step_all(self) -> None:
        for book in self.books.values():
            self._step(book)

    def _listeners(self, lower: str) -> int:
        names = (f"{lower}@depth", f"{lower}@depth@100ms")
        return sum(1 for sock in self.sockets if any(n in sock.state.streams for n in names))

    def _step(self, book: _Book) -> None:
        top_before = book.best()
        first, last, bid_changes, ask_changes = book.step()
        lower = book.symbol.lower()
        now = _now_ms()
        if self.chance(self.faults.skip_update_rate):
            self.truth.record("sequence_skip", instrument=book.symbol, conn=None, U=first,
                              u=last, listeners=self._listeners(lower))  # fmt: skip
        else:
            payload = msgspec.json.encode(
                {
                    "e": "depthUpdate",
                    "E": now,
                    "s": book.symbol,
                    "U": first,
                    "u": last,
                    "b": [[_px(t), _qty(q)] for t, q in bid_changes.items()],
                    "a": [[_px(t), _qty(q)] for t, q in ask_changes.items()],
                }
            ).decode()
            for stream in (f"{lower}@depth", f"{lower}@depth@100ms"):
                self._broadcast(stream, payload)
        bid, ask = book.best()
        if (bid, ask) != top_before and bid is not None and ask is not None:
            ticker = msgspec.json.encode(
                {
                    "u": last,
                    "s": book.symbol,
                    "b": _px(bid),
                    "B": _qty(book.bids[bid]),
                    "a": _px(ask),
                    "A": _qty(book.asks[ask]),
                }
            ).decode()
            self._broadcast(f"{lower}@bookTicker", ticker)
        if bid is not None and ask is not None and book.rng.random() < 0.3:
            self._trade(book, bid, ask, now)

    def _trade(self, book: _Book, bid: int, ask: int, now: int) -> None:
        taker_sells = book.rng.random() < 0.5
        price = _px(bid if taker_sells else ask)
        qty = _qty(book.rng.randint(1, _QTY_SCALE // 10))
        book.trade_id += 1
        book.agg_id += 1
        lower = book.symbol.lower()
        trade = {
            "e": "trade",
            "E": now,
            "s": book.symbol,
            "t": book.trade_id,
            "p": price,
            "q": qty,
            "T": now,
            "m": taker_sells,
            "M": True,
        }
        agg = {
            "e": "aggTrade",
            "E": now,
            "s": book.symbol,
            "a": book.agg_id,
            "p": price,
            "q": qty,
            "f": book.trade_id,
            "l": book.trade_id,
            "T": now,
            "m": taker_sells,
            "M": True,
        }
        book.recent_trades.append(
            {
                "id": book.trade_id,
                "price": price,
                "qty": qty,
                "quoteQty": _qty(0),
                "time": now,
                "isBuyerMaker": taker_sells,
                "isBestMatch": True,
            }
        )
        rest_row = {k: v for k, v in agg.items() if k not in ("e", "E", "s")}
        self.live_aggs[book.symbol].append(rest_row)
        self._broadcast(f"{lower}@trade", msgspec.json.encode(trade).decode())
        self._broadcast(f"{lower}@aggTrade", msgspec.json.encode(agg).decode())
        self.truth.record_trade(
            {
                "instrument": book.symbol,
                "symbol": book.symbol,
                "trade_id": book.trade_id,
                "agg_id": book.agg_id,
                "price": price,
                "qty": qty,
                "side": "sell" if taker_sells else "buy",
                "time_ms": now,
                "sent_ns": time.time_ns(),
            }
        )

    async def _klines(self) -> None:
        """Push the current bar of every followed kline stream, closing bars as time passes."""
        last_open: dict[str, int] = {}
        while True:
            await asyncio.sleep(self.kline_push_seconds)
            await self._running.wait()
            followed = {s for sock in self.sockets for s in sock.state.streams if "@kline_" in s}
            now = _now_ms()
            for stream in sorted(followed):
                lower, _, interval = stream.partition("@kline_")
                symbol = lower.upper()
                if symbol not in self.history:
                    continue
                interval_ms = INTERVAL_MS[interval]
                offset = _WEEK_OFFSET_MS if interval == "1w" else 0
                open_ms = (now - offset) // interval_ms * interval_ms + offset
                previous = last_open.get(stream)
                if previous is not None and previous < open_ms:
                    self._push_kline(stream, symbol, interval, previous, now, closed=True)
                last_open[stream] = open_ms
                self._push_kline(stream, symbol, interval, open_ms, now, closed=False)

    def _push_kline(
        self, stream: str, symbol: str, interval: str, open_ms: int, now: int, closed: bool
    ) -> None:
        row = self.history[symbol].kline(open_ms, INTERVAL_MS[interval], now)
        event = {
            "e": "kline",
            "E": now,
            "s": symbol,
            "k": {
                "t": row[0],
                "T": row[6],
                "s": symbol,
                "i": interval,
                "f": 0,
                "L": row[8] - 1,
                "o": row[1],
                "c": row[4],
                "h": row[2],
                "l": row[3],
                "v": row[5],
                "n": row[8],
                "x": closed,
                "q": row[7],
                "V": row[9],
                "Q": row[10],
                "B": "0",
            },
        }
        self._broadcast(stream, msgspec.json.encode(event).decode())


def _canonical(levels: list[list[str]]) -> list[tuple[str, str]]:
    return [(exact.canon(price), exact.canon(qty)) for price, qty in levels]
