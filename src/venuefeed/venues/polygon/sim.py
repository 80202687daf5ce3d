"""Polygon.io (Massive) simulator: the stocks REST API and ``/stocks`` WebSocket on 127.0.0.1.

It is the venue's twin (ARCHITECTURE rule 9): the real client runs against it
unchanged, with only the base URLs pointed here.

* **History is a pure function of the seed.** :class:`Tape` derives every
  trade, quote and bar from ``(seed, ticker, one-second bucket)``, so any range
  of ``/v3/trades``, ``/v3/quotes`` or ``/v2/aggs`` is the same on every call
  and in every process, however it is paged.
* **The live feed is the same history, as it happens.** The WebSocket sends
  the tape's trades and quotes whose timestamps have just passed (and the
  minute bar when a minute closes), so whatever a client misses while
  disconnected can be backfilled over REST with identical trade ids. The
  tape's trades go into the ground truth as their time passes, whether or not
  anyone is connected; :meth:`Simulator.pause` stops the venue's clock.
* **Wire shapes follow the venue**: ``next_url`` is absolute, points here,
  carries an opaque base64 ``cursor`` and never the key; ``results`` is left
  out when empty; 401/403/429 bodies use Polygon's ``status``/``error``/``message``
  shape; every WebSocket frame is a JSON array; prices and sizes are JSON numbers.

Simplifications (documented, not hidden): the tape trades around the clock (no
market hours), bars exist for every window, aggregate ``limit`` counts bars
rather than base aggregates, and bars are aligned to UTC (the venue aligns
daily bars to New York midnight). ``month``/``quarter``/``year`` bars are not
simulated (400).

Keys: ``api_key`` has every entitlement; ``basic_key`` (optional) behaves like
the free plan -- aggregates and market status work, trades and quotes get 403
``NOT_AUTHORIZED``. Only ``max_connections`` WebSockets per key may be
authenticated at once, as on the venue.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import contextlib
import math
import random
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode

import msgspec
from aiohttp import web

from venuefeed.exact import from_decimal
from venuefeed.sim.base import Faults, GroundTruth, SimulatorBase
from venuefeed.sim.sockets import SimSocket, Sockets

from .parse import trade_id
from .protocol import ClientAction

__all__ = ["Simulator", "Tape"]

_NS: Final = 1_000_000_000
_MS: Final = 1_000_000
_MINUTE_NS: Final = 60 * _NS
_SPAN_NS: Final = {
    "second": _NS,
    "minute": _MINUTE_NS,
    "hour": 3600 * _NS,
    "day": 86_400 * _NS,
    "week": 7 * 86_400 * _NS,
}
_EXCHANGES: Final = (10, 11, 12, 15, 19, 21)
_TRF_EXCHANGE: Final = 4
"""FINRA: off-exchange prints, reported through a trade reporting facility."""
_TRF_IDS: Final = (201, 202)
_SIZES: Final = tuple(Decimal(s) for s in ("1", "5", "10", "50", "100", "100", "200", "500", "0.5"))
_V3_MAX_LIMIT: Final = 50_000
_RATE_LIMIT_TEXT: Final = (
    "You've exceeded the maximum requests per minute, please wait or upgrade your "
    "subscription to continue. https://massive.com/pricing"
)
_NOT_ENTITLED_TEXT: Final = (
    "You are not entitled to this data. Please upgrade your plan at https://massive.com/pricing"
)
_MAX_CONNECTIONS_TEXT: Final = (
    "Maximum number of websocket connections exceeded. You have reached the connection "
    "limit for your account. Please contact support at https://massive.com/contact to "
    "increase your limit."
)

Row = dict[str, Any]
_encoder = msgspec.json.Encoder(decimal_format="number")
_action_decoder = msgspec.json.Decoder(ClientAction)


def _cents(value: int) -> Decimal:
    return Decimal(value).scaleb(-2)


class Tape:
    """The simulated market's history, derived on demand from the seed.

    ``events_per_second`` is the mean number of trades plus quotes per ticker
    per second (half each); 0 or less means the tape's maximum (999 of each
    per second). Rows are generated per one-second bucket with a
    generator seeded by ``(seed, ticker, kind, bucket)`` and cached, so paging
    through a range never depends on what was asked before.
    """

    def __init__(self, seed: int, tickers: tuple[str, ...], events_per_second: float) -> None:
        self.seed = seed
        self.tickers = tickers
        self._per_kind = events_per_second / 2.0 if events_per_second > 0 else 999.0
        self.trades_in: Callable[[str, int], list[Row]] = lru_cache(maxsize=512)(self._trades_in)
        self.quotes_in: Callable[[str, int], list[Row]] = lru_cache(maxsize=512)(self._quotes_in)

    def _rng(self, *key: object) -> random.Random:
        return random.Random(":".join(str(k) for k in (self.seed, *key)))

    def price_cents(self, ticker: str, t_ns: int) -> int:
        """A smooth, deterministic mid price: a per-ticker level with two slow waves."""
        base = 5_000 + zlib.crc32(ticker.encode()) % 40_000
        t = t_ns / _NS
        wave = 0.02 * math.sin(t * 2 * math.pi / 23_400) + 0.004 * math.sin(t * 2 * math.pi / 97)
        return round(base * (1 + wave))

    def _count(self, rng: random.Random) -> int:
        return min(int(rng.random() * (2 * self._per_kind + 1)), 999)

    def _offsets(self, rng: random.Random, n: int) -> list[int]:
        return sorted(rng.randrange(_NS) for _ in range(n))

    def _trades_in(self, ticker: str, bucket: int) -> list[Row]:
        rng = self._rng(ticker, "T", bucket)
        rows = []
        for k, offset in enumerate(self._offsets(rng, self._count(rng))):
            sip = bucket * _NS + offset
            exchange = _TRF_EXCHANGE if rng.random() < 0.3 else rng.choice(_EXCHANGES)
            row: Row = {
                "conditions": [12, 37] if rng.random() < 0.2 else [],
                "exchange": exchange,
                "id": str(bucket * 1000 + k),
                "participant_timestamp": sip - rng.randrange(1, 500_000),
                "price": _cents(self.price_cents(ticker, sip) + rng.choice((-1, 0, 0, 1))),
                "sequence_number": bucket * 1000 + k,
                "sip_timestamp": sip,
                "size": rng.choice(_SIZES),
                "tape": 3,
            }
            if exchange == _TRF_EXCHANGE:
                row["trf_id"] = rng.choice(_TRF_IDS)
                row["trf_timestamp"] = sip - rng.randrange(1, 2_000_000)
            rows.append(row)
        return rows

    def _quotes_in(self, ticker: str, bucket: int) -> list[Row]:
        rng = self._rng(ticker, "Q", bucket)
        rows = []
        for k, offset in enumerate(self._offsets(rng, self._count(rng))):
            sip = bucket * _NS + offset
            mid = self.price_cents(ticker, sip)
            half = rng.choice((1, 1, 2, 3))
            rows.append(
                {
                    "ask_exchange": rng.choice(_EXCHANGES),
                    "ask_price": _cents(mid + half),
                    "ask_size": rng.randrange(1, 20),
                    "bid_exchange": rng.choice(_EXCHANGES),
                    "bid_price": _cents(mid - half),
                    "bid_size": rng.randrange(1, 20),
                    "participant_timestamp": sip - rng.randrange(1, 500_000),
                    "sequence_number": bucket * 1000 + k,
                    "sip_timestamp": sip,
                    "tape": 3,
                }
            )
        return rows

    def bar(self, ticker: str, span_ns: int, start_ns: int) -> Row:
        """The aggregate bar ``[start_ns, start_ns + span_ns)`` in REST shape (``t`` in ms)."""
        rng = self._rng(ticker, "bar", span_ns, start_ns)
        o = self.price_cents(ticker, start_ns)
        c = self.price_cents(ticker, start_ns + span_ns - 1)
        h = max(o, c) + rng.randrange(0, 15)
        low = min(o, c) - rng.randrange(0, 15)
        n = 1 + rng.randrange(1, 50) * max(1, int(math.sqrt(span_ns / _NS)))
        volume = n * rng.choice((50, 100, 150))
        vw = Decimal((h + low + c) * 100 // 3).scaleb(-4)
        return {
            "v": volume,
            "vw": vw,
            "o": _cents(o),
            "c": _cents(c),
            "h": _cents(h),
            "l": _cents(low),
            "t": start_ns // _MS,
            "n": n,
        }

    def scan(
        self,
        rows_in: Callable[[str, int], list[Row]],
        ticker: str,
        lo: int,
        hi: int,
        after: tuple[int, int] | None,
        ascending: bool,
        limit: int,
    ) -> tuple[list[Row], bool]:
        """Rows with ``lo <= sip_timestamp < hi`` strictly past ``after`` (sip, sequence).

        Returns at most ``limit`` rows in the requested order, and whether more remain.
        """
        if hi <= lo:
            return [], False
        out: list[Row] = []
        if ascending:
            buckets: range = range((after[0] if after else lo) // _NS, (hi - 1) // _NS + 1)
        else:
            buckets = range((after[0] if after else hi - 1) // _NS, lo // _NS - 1, -1)
        for bucket in buckets:
            rows = rows_in(ticker, bucket)
            for row in rows if ascending else reversed(rows):
                key = (row["sip_timestamp"], row["sequence_number"])
                if not lo <= key[0] < hi:
                    continue
                if after is not None and (key <= after if ascending else key >= after):
                    continue
                if len(out) == limit:
                    return out, True
                out.append(row)
        return out, False


def ws_trade(ticker: str, row: Row) -> Row:
    """A ``/v3/trades`` row as the WebSocket ``T`` event the venue sends for it."""
    event: Row = {
        "ev": "T",
        "sym": ticker,
        "i": row["id"],
        "x": row["exchange"],
        "p": row["price"],
        "s": row["size"],
        "t": row["sip_timestamp"] // _MS,
        "q": row["sequence_number"],
        "z": row["tape"],
    }
    if row["conditions"]:
        event["c"] = row["conditions"]
    if "trf_id" in row:
        event["trfi"] = row["trf_id"]
        event["trft"] = row["trf_timestamp"] // _MS
    return event


def ws_quote(ticker: str, row: Row) -> Row:
    """A ``/v3/quotes`` row as the WebSocket ``Q`` event."""
    return {
        "ev": "Q",
        "sym": ticker,
        "bx": row["bid_exchange"],
        "bp": row["bid_price"],
        "bs": row["bid_size"],
        "ax": row["ask_exchange"],
        "ap": row["ask_price"],
        "as": row["ask_size"],
        "c": 0,
        "t": row["sip_timestamp"] // _MS,
        "q": row["sequence_number"],
        "z": row["tape"],
    }


def ws_minute_bar(ticker: str, bar: Row, day_open: Decimal) -> Row:
    """A one-minute REST bar as the WebSocket ``AM`` event (``s``/``e`` in ms)."""
    return {
        "ev": "AM",
        "sym": ticker,
        "v": bar["v"],
        "av": bar["v"],
        "op": day_open,
        "vw": bar["vw"],
        "o": bar["o"],
        "c": bar["c"],
        "h": bar["h"],
        "l": bar["l"],
        "a": bar["vw"],
        "z": bar["v"] // bar["n"],
        "s": bar["t"],
        "e": bar["t"] + _MINUTE_NS // _MS,
    }


def _status(status: str, message: str) -> str:
    return _encoder.encode([{"ev": "status", "status": status, "message": message}]).decode()


def _encode_cursor(params: dict[str, str]) -> str:
    return base64.urlsafe_b64encode(urlencode(sorted(params.items())).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> dict[str, str]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise ValueError("invalid cursor") from None
    return dict(parse_qsl(text, keep_blank_values=True))


def _day_start_ns(text: str) -> int:
    day = date.fromisoformat(text)
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * _NS


def _time_param(text: str, unit_ns: int) -> tuple[int, int]:
    """A date or an integer time in ``unit_ns`` units -> the [start, end) it names, in ns."""
    if text.isdigit():
        value = int(text) * unit_ns
        return value, value + unit_ns
    start = _day_start_ns(text)
    return start, start + 86_400 * _NS


def _limit(value: str | None, default: int) -> int:
    limit = default if value is None else int(value)
    if not 1 <= limit <= _V3_MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {_V3_MAX_LIMIT}")
    return limit


def _order(value: str | None, default: str) -> bool:
    value = value or default
    if value not in ("asc", "desc"):
        raise ValueError(f"invalid order/sort {value!r}: expected asc or desc")
    return value == "asc"


@dataclass(eq=False)
class _Client:
    """What the venue knows about one socket: the key it authenticated with, its channels."""

    key: str | None = None
    subs: set[str] = field(default_factory=set)

    def wants(self, channel: str, ticker: str) -> bool:
        return f"{channel}.{ticker}" in self.subs or f"{channel}.*" in self.subs


_Socket = SimSocket[_Client]


class Simulator(SimulatorBase):
    """The Polygon stocks venue on 127.0.0.1. See the module docstring for what is simulated."""

    venue = "polygon"

    def __init__(
        self,
        *,
        seed: int = 1,
        faults: Faults | None = None,
        ground_truth: GroundTruth | None = None,
        tickers: tuple[str, ...] = ("AAPL", "MSFT"),
        api_key: str = "test-key",
        events_per_second: float = 20.0,
        basic_key: str | None = None,
        max_connections: int = 1,
        clock: Callable[[], int] = time.time_ns,
        tick_seconds: float = 0.05,
    ) -> None:
        super().__init__(seed=seed, faults=faults, ground_truth=ground_truth)
        self.tickers = tickers
        self.api_key = api_key
        self.basic_key = basic_key
        self.max_connections = max_connections
        self.clock = clock
        self.tick_seconds = tick_seconds
        self.tape = Tape(seed, tickers, events_per_second)
        self.sockets: Sockets[_Client] = Sockets(self)
        self._request_count = 0
        self._frozen_at: int | None = None

    # -- SimulatorBase -------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        app.router.add_get(
            "/v2/aggs/ticker/{ticker}/range/{multiplier}/{timespan}/{start}/{end}", self._aggs
        )
        app.router.add_get("/v3/trades/{ticker}", self._trades)
        app.router.add_get("/v3/quotes/{ticker}", self._quotes)
        app.router.add_get("/v1/marketstatus/now", self._market_status)
        app.router.add_get("/stocks", self._websocket)

    def urls(self) -> dict[str, str]:
        return {"rest": self.base_url, "ws": f"{self.ws_base_url}/stocks"}

    def client_credentials(self) -> dict[str, str]:
        return {"api_key": self.api_key}

    async def on_start(self) -> None:
        self.spawn(self._feed())

    def now_ns(self) -> int:
        """The venue's time: the clock, held still while the simulator is paused."""
        return self._frozen_at if self._frozen_at is not None else self.clock()

    def pause(self) -> None:
        """Stop the venue's clock: no new tape events, live or over REST, until resumed."""
        if self._frozen_at is None:
            self._frozen_at = self.clock()
        super().pause()

    def resume(self) -> None:
        self._frozen_at = None
        super().resume()

    def rate_limited_response(self) -> web.Response:
        response = self._error(429, "ERROR", error=_RATE_LIMIT_TEXT)
        if self.faults.retry_after_seconds is not None:
            response.headers["Retry-After"] = str(int(self.faults.retry_after_seconds))
        return response

    # -- REST ------------------------------------------------------------------------

    def _request_id(self) -> str:
        self._request_count += 1
        return f"{zlib.crc32(f'{self.seed}:{self._request_count}'.encode()):08x}" * 4

    def _json(self, body: Row, status: int = 200) -> web.Response:
        return web.Response(
            body=_encoder.encode(body), status=status, content_type="application/json"
        )

    def _error(self, http_status: int, status: str, **text: str) -> web.Response:
        return self._json({"status": status, "request_id": self._request_id(), **text}, http_status)

    def _denied(self, request: web.Request, premium: bool) -> web.Response | None:
        """401 for a missing or unknown key, 403 for a plan without the data; None if allowed."""
        auth = request.headers.get("Authorization", "")
        key = auth[7:] if auth.startswith("Bearer ") else request.query.get("apiKey")
        if not key:
            return self._error(401, "ERROR", error="API Key was not provided")
        if key == self.api_key:
            return None
        if key == self.basic_key and key:
            return (
                self._error(403, "NOT_AUTHORIZED", message=_NOT_ENTITLED_TEXT) if premium else None
            )
        return self._error(401, "ERROR", error="Unknown API Key")

    async def _market_status(self, request: web.Request) -> web.Response:
        denied = self._denied(request, premium=False)
        if denied is not None:
            return denied
        now = datetime.fromtimestamp(self.now_ns() / _NS, UTC).isoformat(timespec="seconds")
        return self._json(
            {
                "market": "open",
                "earlyHours": False,
                "afterHours": False,
                "serverTime": now,
                "exchanges": {"nyse": "open", "nasdaq": "open", "otc": "open"},
                "currencies": {"fx": "open", "crypto": "open"},
            }
        )

    async def _trades(self, request: web.Request) -> web.Response:
        return self._v3(request, self.tape.trades_in)

    async def _quotes(self, request: web.Request) -> web.Response:
        return self._v3(request, self.tape.quotes_in)

    def _v3(self, request: web.Request, rows_in: Callable[[str, int], list[Row]]) -> web.Response:
        denied = self._denied(request, premium=True)
        if denied is not None:
            return denied
        ticker = request.match_info["ticker"]
        try:
            query = _decode_cursor(request.query["cursor"]) if "cursor" in request.query else {}
            query = query or {k: v for k, v in request.query.items() if k != "apiKey"}
            lo, hi = self._v3_range(query)
            ascending = _order(query.get("order"), "desc")
            limit = _limit(query.get("limit"), 1000)
            if query.get("sort", "timestamp") != "timestamp":
                raise ValueError("sort must be timestamp")
            after = None
            if query.get("ap"):
                sip, _, seq = query["ap"].partition(".")
                after = (int(sip), int(seq))
        except ValueError as exc:
            return self._error(400, "ERROR", error=str(exc))
        rows: list[Row] = []
        more = False
        if ticker in self.tickers:
            rows, more = self.tape.scan(rows_in, ticker, lo, hi, after, ascending, limit)
        body: Row = {"status": "OK", "request_id": self._request_id()}
        if rows:
            body["results"] = rows
        if more:
            last = rows[-1]
            state = {
                "ap": f"{last['sip_timestamp']}.{last['sequence_number']}",
                "limit": str(limit),
                "order": "asc" if ascending else "desc",
                "sort": "timestamp",
                "timestamp.gte": str(lo),
                "timestamp.lt": str(hi),
            }
            body["next_url"] = f"{self.base_url}{request.path}?cursor={_encode_cursor(state)}"
        return self._json(body)

    def _v3_range(self, query: dict[str, str]) -> tuple[int, int]:
        """``timestamp`` and ``timestamp.gte|gt|lte|lt`` (ns or dates) -> [lo, hi) in ns.

        Without any bound the range is the last hour, so an open query stays small.
        """
        lo: int | None = None
        hi: int | None = None

        def bound(name: str) -> tuple[int, int] | None:
            text = query.get(name)
            if text is None:
                return None
            try:
                return _time_param(text, 1)
            except ValueError:
                raise ValueError(f"could not parse {name}={text!r}") from None

        if (exact := bound("timestamp")) is not None:
            lo, hi = exact
        if (b := bound("timestamp.gte")) is not None:
            lo = b[0] if lo is None else max(lo, b[0])
        if (b := bound("timestamp.gt")) is not None:
            lo = b[1] if lo is None else max(lo, b[1])
        if (b := bound("timestamp.lt")) is not None:
            hi = b[0] if hi is None else min(hi, b[0])
        if (b := bound("timestamp.lte")) is not None:
            hi = b[1] if hi is None else min(hi, b[1])
        hi = self.now_ns() + 1 if hi is None else hi
        return (hi - 3600 * _NS if lo is None else lo), hi

    async def _aggs(self, request: web.Request) -> web.Response:
        denied = self._denied(request, premium=False)
        if denied is not None:
            return denied
        info = request.match_info
        ticker, timespan = info["ticker"], info["timespan"]
        try:
            query = _decode_cursor(request.query["cursor"]) if "cursor" in request.query else {}
            query = query or {k: v for k, v in request.query.items() if k != "apiKey"}
            multiplier = int(info["multiplier"])
            if multiplier < 1 or timespan not in _SPAN_NS:
                raise ValueError(f"unsupported multiplier/timespan {multiplier}/{timespan}")
            start = _time_param(info["start"], _MS)[0]
            end = _time_param(info["end"], _MS)[1] - 1
            ascending = _order(query.get("sort"), "asc")
            limit = _limit(query.get("limit"), 5000)
        except ValueError as exc:
            return self._error(400, "ERROR", error=str(exc))
        span = multiplier * _SPAN_NS[timespan]
        first = -(-start // span) * span
        count = max(0, (end - first) // span + 1) if ticker in self.tickers else 0
        starts = range(first, first + count * span, span)
        if not ascending:
            starts = starts[::-1]
        page = starts[:limit]
        bars = [self.tape.bar(ticker, span, s) for s in page]
        body: Row = {
            "ticker": ticker,
            "queryCount": len(bars),
            "resultsCount": len(bars),
            "adjusted": query.get("adjusted", "true") != "false",
            "status": "OK",
            "request_id": self._request_id(),
            "count": len(bars),
        }
        if bars:
            body["results"] = bars
        if len(starts) > limit:
            nxt = starts[limit] // _MS
            frm, to = (nxt, info["end"]) if ascending else (info["start"], nxt)
            cursor = _encode_cursor(
                {
                    "adjusted": "false" if not body["adjusted"] else "true",
                    "limit": str(limit),
                    "sort": "asc" if ascending else "desc",
                }
            )
            path = f"/v2/aggs/ticker/{ticker}/range/{multiplier}/{timespan}/{frm}/{to}"
            body["next_url"] = f"{self.base_url}{path}?cursor={cursor}"
        return self._json(body)

    # -- WebSocket -----------------------------------------------------------------

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        return await self.sockets.serve(request, _Client(), self._on_action, on_open=self._greet)

    async def _greet(self, sock: _Socket) -> None:
        self.sockets.reply(sock, _status("connected", "Connected Successfully"))

    async def _on_action(self, sock: _Socket, text: str) -> None:
        try:
            action = _action_decoder.decode(text)
        except msgspec.DecodeError:
            self.sockets.reply(sock, _status("error", "Could not parse action"))
            return
        conn = sock.state
        if action.action == "auth":
            await self._auth(sock, action.params)
        elif conn.key is None:
            self.sockets.reply(sock, _status("auth_required", "Authentication required"))
        elif action.action in ("subscribe", "unsubscribe"):
            verb = action.action
            for channel in filter(None, (p.strip() for p in action.params.split(","))):
                if verb == "subscribe":
                    conn.subs.add(channel)
                else:
                    conn.subs.discard(channel)
                self.sockets.reply(sock, _status("success", f"{verb}d to: {channel}"))
        else:
            self.sockets.reply(sock, _status("error", f"Unknown action: {action.action}"))

    async def _auth(self, sock: _Socket, key: str) -> None:
        if key not in (self.api_key, self.basic_key) or not key:
            self.truth.record("ws_auth_failed", conn=sock.number)
            await self._refuse(sock, "auth_failed", "authentication failed")
            return
        in_use = sum(1 for s in self.sockets if s.state.key == key and s is not sock)
        if in_use >= self.max_connections:
            self.truth.record("ws_max_connections", conn=sock.number)
            await self._refuse(sock, "max_connections", _MAX_CONNECTIONS_TEXT)
            return
        sock.state.key = key
        self.sockets.reply(sock, _status("auth_success", "authenticated"))

    async def _refuse(self, sock: _Socket, status: str, message: str) -> None:
        """Say why, then close: the status goes out before the close frame."""
        with contextlib.suppress(ConnectionError, RuntimeError):
            await sock.ws.send_str(_status(status, message))
        await sock.ws.close(code=1008, message=status.replace("_", " ").encode())

    async def disconnect_all(self, status: str | None = "force_disconnect") -> None:
        """Close every WebSocket, first telling clients why when ``status`` is given."""
        for sock in self.sockets:
            if status is not None and not sock.closed:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await sock.ws.send_str(_status(status, "Connection closed by the server"))
            await self.sockets.cut(sock)

    async def _feed(self) -> None:
        """Each tick, the tape events whose time has come: trades into the ground truth
        (whether or not anyone listens), and to each socket what it subscribed to."""
        last = self.now_ns()
        while True:
            await asyncio.sleep(self.tick_seconds)
            now = self.now_ns()
            if now > last:
                self._emit(last, now)
            last = now

    def _events_between(self, last: int, now: int) -> list[tuple[int, str, str, Row]]:
        """(ts_ns, channel, ticker, event) for ``last < ts <= now``: every trade, and the
        quotes and minute bars someone subscribed to."""
        live = [s.state for s in self.sockets if s.state.key is not None and s.state.subs]
        out: list[tuple[int, str, str, Row]] = []
        for ticker in self.tickers:
            want_q = any(c.wants("Q", ticker) for c in live)
            for bucket in range(last // _NS, now // _NS + 1):
                out.extend(
                    (r["sip_timestamp"], "T", ticker, ws_trade(ticker, r))
                    for r in _between(self.tape.trades_in(ticker, bucket), last, now)
                )
                if want_q:
                    out.extend(
                        (r["sip_timestamp"], "Q", ticker, ws_quote(ticker, r))
                        for r in _between(self.tape.quotes_in(ticker, bucket), last, now)
                    )
            minute = now // _MINUTE_NS * _MINUTE_NS
            if last < minute and any(c.wants("AM", ticker) for c in live):
                bar = self.tape.bar(ticker, _MINUTE_NS, minute - _MINUTE_NS)
                day_open = _cents(
                    self.tape.price_cents(ticker, now // (86_400 * _NS) * 86_400 * _NS)
                )
                out.append((minute, "AM", ticker, ws_minute_bar(ticker, bar, day_open)))
        out.sort(key=lambda item: item[0])
        return out

    def _emit(self, last: int, now: int) -> None:
        events = self._events_between(last, now)
        sent_ns = time.time_ns()
        for ts, channel, ticker, event in events:
            if channel == "T":
                self.truth.record_trade(
                    {
                        "instrument": ticker,
                        "trade_id": trade_id(event["x"], event.get("trfi"), event["i"]),
                        "price": from_decimal(event["p"]),
                        "size": from_decimal(event["s"]),
                        "ts_venue": ts,
                        "sent_ns": sent_ns,
                    }
                )
        for sock in self.sockets:
            conn = sock.state
            if conn.key is None:
                continue
            mine = [e[3] for e in events if conn.wants(e[1], e[2])]
            if mine:
                self.sockets.publish(sock, _encoder.encode(mine).decode())


def _between(rows: list[Row], last: int, now: int) -> list[Row]:
    """Rows (sorted by ``sip_timestamp``) with ``last < sip_timestamp <= now``."""
    stamps = [r["sip_timestamp"] for r in rows]
    return rows[bisect.bisect_right(stamps, last) : bisect.bisect_right(stamps, now)]
