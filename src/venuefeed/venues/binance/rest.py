"""Binance spot REST market data: depth snapshots and chunked history, within the weight limit.

Binance limits an IP by *request weight* (6000 per minute), not by request
count, and each endpoint costs a different weight (a 5000-level depth snapshot
costs 250, a page of klines 2). So besides the transport's request-rate bucket
every call first takes its weight from a weight bucket refilled at
``weight_per_minute / 60`` per second; and after every answer the venue's own
count, ``X-MBX-USED-WEIGHT-1M``, is checked -- when it is near the limit
(other processes share the IP) the bucket is closed until the venue's window
resets. 429 and 418 with ``Retry-After`` are retried by the transport
(``retry_statuses=(418,)``).

History is fetched in chunks the venue serves in one request (1000 rows) and
yielded in the venue's chronological order. Ranges are half-open
``[start_ns, end_ns)``, so fetching ``[a, m)`` and ``[m, b)`` gives exactly
what ``[a, b)`` gives: no duplicate and no loss at the boundary.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from typing import Any, Final

from venuefeed.models import BookSnapshot, Candle, Trade
from venuefeed.transport import HttpClient, HttpPolicy, TokenBucket
from venuefeed.venues.binance import parse
from venuefeed.venues.binance.protocol import (
    INTERVAL_MS,
    KLINE_INTERVALS,
    ExchangeInfo,
    depth_weight,
)
from venuefeed.venues.rejects import Rejects, usable

__all__ = ["BinanceRest"]

PAGE_LIMIT: Final = 1000
"""Rows per ``aggTrades`` / ``klines`` request: the venue's maximum."""
AGG_TRADES_WINDOW_MS: Final = 3_600_000
"""``aggTrades`` by time is asked for at most one hour at a time (the venue has
rejected longer ``startTime``..``endTime`` spans); dense hours continue by ``fromId``."""
MAX_DEPTH: Final = 5000
_NEAR_LIMIT: Final = 0.9
_WEIGHTS: Final[Mapping[str, int]] = {
    "aggTrades": 4,
    "klines": 2,
    "trades": 25,
    "exchangeInfo": 20,
    "time": 1,
    "ping": 1,
}


def _ceil_ms(ns: int) -> int:
    return -(-ns // 1_000_000)


class BinanceRest:
    """The REST half of the Binance adapter; shares its weight budget with every caller."""

    def __init__(
        self,
        base_url: str,
        policy: HttpPolicy,
        *,
        weight_per_minute: int = 6000,
        weight_window_seconds: float = 60.0,
        rejects: Rejects | None = None,
    ) -> None:
        self.http = HttpClient(parse.VENUE, base_url, policy, retry_statuses=(418,))
        self.weight_per_minute = weight_per_minute
        self.weight_window_seconds = weight_window_seconds
        self.weights = TokenBucket(
            weight_per_minute / weight_window_seconds,
            max(depth_weight(MAX_DEPTH), weight_per_minute // 6),
        )
        self.used_weight = 0
        """The venue's last reported ``X-MBX-USED-WEIGHT-1M``."""
        self.rejects = rejects or Rejects(parse.VENUE)

    async def close(self) -> None:
        await self.http.close()

    async def get(self, path: str, params: Mapping[str, Any], weight: int, endpoint: str) -> bytes:
        """One weighted GET: take the weight, send, read the venue's weight count."""
        await self.weights.acquire(weight)
        response = await self.http.request("GET", path, params=params, endpoint=endpoint)
        used = response.headers.get("X-MBX-USED-WEIGHT-1M")
        if used is not None and used.isdigit():
            self.used_weight = int(used)
            if self.used_weight >= _NEAR_LIMIT * self.weight_per_minute:
                window = self.weight_window_seconds
                self.weights.penalize(window - time.time() % window)
        return response.body

    # -- snapshots and metadata ------------------------------------------------------

    async def fetch_book(self, symbol: str, depth: int) -> BookSnapshot:
        """``GET /api/v3/depth``: the book at ``lastUpdateId`` (``sequence``), ``depth`` levels."""
        limit = max(1, min(depth, MAX_DEPTH))
        body = await self.get(
            "/api/v3/depth", {"symbol": symbol, "limit": limit}, depth_weight(limit), "depth"
        )
        snap = parse.parse_book(body, symbol, time.time_ns(), self.rejects)
        return usable(snap, parse.VENUE, "/api/v3/depth")

    async def server_time(self) -> int:
        """The venue's clock in ns."""
        server = parse.parse_server_time(await self._get("time", {}), self.rejects)
        return usable(server, parse.VENUE, "/api/v3/time")

    async def ping(self) -> None:
        await self._get("ping", {})

    async def exchange_info(self) -> ExchangeInfo:
        info = parse.parse_exchange_info(await self._get("exchangeInfo", {}), self.rejects)
        return usable(info, parse.VENUE, "/api/v3/exchangeInfo")

    async def recent_trades(self, symbol: str, limit: int = 500) -> list[Trade]:
        """``GET /api/v3/trades``: the latest trades, with plain (unprefixed) trade ids."""
        body = await self._get("trades", {"symbol": symbol, "limit": min(limit, PAGE_LIMIT)})
        trades = parse.parse_recent_trades(body, symbol, time.time_ns(), self.rejects)
        return usable(trades, parse.VENUE, "/api/v3/trades")

    async def _get(self, name: str, params: Mapping[str, Any]) -> bytes:
        return await self.get(f"/api/v3/{name}", params, _WEIGHTS[name], name)

    # -- history ------------------------------------------------------------------------

    async def fetch_trades(self, symbol: str, start_ns: int, end_ns: int) -> AsyncIterator[Trade]:
        """Aggregate trades with time in ``[start_ns, end_ns)``, oldest first.

        Walks the range an hour at a time by ``startTime``/``endTime``; an
        hour with more than one page continues by ``fromId`` (the venue's
        advice: do not mix the two in one request) until it passes the end.
        """
        first_ms, last_ms = _ceil_ms(start_ns), _ceil_ms(end_ns) - 1
        window = first_ms
        while window <= last_ms:
            window_end = min(window + AGG_TRADES_WINDOW_MS - 1, last_ms)
            page = await self._agg_trades(
                {"symbol": symbol, "startTime": window, "endTime": window_end}
            )
            for trade in page.trades:
                yield trade
            if len(page.rows) < PAGE_LIMIT:
                window = window_end + 1
                continue
            while True:
                page = await self._agg_trades({"symbol": symbol, "fromId": page.rows[-1][0] + 1})
                for trade in page.trades:
                    if trade.ts_venue <= last_ms * 1_000_000:
                        yield trade
                if any(ms > last_ms for _, ms in page.rows) or len(page.rows) < PAGE_LIMIT:
                    return  # past the end of the range, or at the newest trade

    async def _agg_trades(self, params: Mapping[str, Any]) -> parse.AggTradesPage:
        body = await self.get(
            "/api/v3/aggTrades", {**params, "limit": PAGE_LIMIT}, _WEIGHTS["aggTrades"], "aggTrades"
        )
        page = parse.parse_trades_page(body, params["symbol"], time.time_ns(), self.rejects)
        return usable(page, parse.VENUE, "/api/v3/aggTrades")

    async def fetch_candles(
        self, symbol: str, interval: str, start_ns: int, end_ns: int
    ) -> AsyncIterator[Candle]:
        """Klines opening in ``[start_ns, end_ns)``, oldest first, 1000 intervals per request.

        Fixed-length intervals are walked in spans of exactly 1000 bars, so
        the requests are the same however the range was split; ``1M``
        (calendar months) continues from the last bar returned.
        """
        if interval not in KLINE_INTERVALS:
            raise ValueError(f"unknown Binance kline interval {interval!r}")
        first_ms, last_ms = _ceil_ms(start_ns), _ceil_ms(end_ns) - 1
        span = INTERVAL_MS[interval] * PAGE_LIMIT if interval in INTERVAL_MS else None
        cursor = first_ms
        while cursor <= last_ms:
            chunk_end = last_ms if span is None else min(cursor + span - 1, last_ms)
            params = {
                "symbol": symbol,
                "interval": interval,
                "startTime": cursor,
                "endTime": chunk_end,
                "limit": PAGE_LIMIT,
            }
            body = await self.get("/api/v3/klines", params, _WEIGHTS["klines"], "klines")
            parsed = parse.parse_candles(body, symbol, interval, time.time_ns(), self.rejects)
            page = usable(parsed, parse.VENUE, "/api/v3/klines")
            opens = [t for t in page.open_times if first_ms <= t <= last_ms]
            for candle in page.candles:
                if first_ms * 1_000_000 <= candle.open_time <= last_ms * 1_000_000:
                    yield candle
            if span is not None:
                cursor = chunk_end + 1
            elif len(opens) < PAGE_LIMIT:
                return
            else:
                cursor = opens[-1] + 1
