"""Kalshi REST calls: which path, which parameters, and how the answer is read.

Retries, rate limiting and the circuit breaker are the transport's
(:class:`~venuefeed.transport.http.HttpClient`); signing is per attempt through
its ``signer`` hook, so a retried request carries a fresh timestamp.
List endpoints are read at the largest page size the venue allows (1000
markets or trades, 200 events) to keep the request count -- and the rate
limit budget -- as small as possible.

Kalshi keeps two tiers (``venue-protocols.md`` section 7.2): markets settled
and trades made before the cutoffs of ``GET /historical/cutoff`` are served
only by ``/historical/markets`` and ``/historical/trades``. :meth:`KalshiRest.trades`
splits a window at the trades cutoff and asks each tier for its part, so a
back-fill of an old window is not silently empty; the cutoffs advance, so an
answer is kept for ``cutoff_ttl`` seconds only.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from venuefeed.models import BookSnapshot, Candle, Market, Trade
from venuefeed.transport import HttpClient, HttpPolicy, paginate_cursor
from venuefeed.venues.kalshi import parse
from venuefeed.venues.kalshi.auth import Signer
from venuefeed.venues.rejects import Rejects, usable

__all__ = [
    "EVENTS_PAGE_MAX",
    "HISTORICAL_TRADES_PAGE_MAX",
    "MARKETS_PAGE_MAX",
    "TRADES_PAGE_MAX",
    "KalshiRest",
]

MARKETS_PAGE_MAX = 1000
TRADES_PAGE_MAX = 1000
HISTORICAL_TRADES_PAGE_MAX = 200
"""Reported as the historical trades cap by a third-party wrapper; staying under it is safe."""
EVENTS_PAGE_MAX = 200
BOOK_DEPTH_MAX = 100
CANDLES_PER_REQUEST = 5000
_PERIODS = {"1m": 1, "1h": 60, "1d": 1440}


class KalshiRest:
    """Typed access to the public market-data endpoints (signed when a key is configured)."""

    def __init__(
        self,
        base_url: str,
        policy: HttpPolicy,
        signer: Signer | None,
        rejects: Rejects | None = None,
        *,
        historical_tier: bool = True,
        cutoff_ttl: float = 3600.0,
    ) -> None:
        self.http = HttpClient("kalshi", base_url, policy, signer=signer)
        self._series_of: dict[str, str] = {}
        self.rejects = rejects or Rejects(parse.VENUE)
        self.historical_tier = historical_tier
        self._cutoff_ttl = cutoff_ttl
        self._cutoffs: tuple[float, parse.Cutoffs] | None = None

    async def close(self) -> None:
        await self.http.close()

    async def get(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        endpoint: str,
        extended_recovery: bool = False,
        progress: Callable[[], int] | None = None,
    ) -> bytes:
        return await self.http.get(
            path,
            params,
            endpoint=endpoint,
            extended_recovery=extended_recovery,
            progress=progress,
        )

    # -- markets -------------------------------------------------------------

    async def markets(
        self, params: Mapping[str, Any], category: str | None = None
    ) -> AsyncIterator[Market]:
        """Every market matching ``params`` (``status``, ``event_ticker``, ``series_ticker``,
        ``min_close_ts``/``max_close_ts`` ...), page after page."""
        base = {**params, "limit": MARKETS_PAGE_MAX}

        async def fetch(cursor: str | None) -> tuple[list[Market], str | None]:
            body = await self.get("/markets", {**base, "cursor": cursor}, endpoint="markets")
            return usable(
                parse.parse_markets_page(body, self.rejects, category), parse.VENUE, "/markets"
            )

        async for page in paginate_cursor(fetch):
            for market in page.items:
                yield market

    async def market(self, ticker: str) -> Market:
        body = await self.get(f"/markets/{ticker}", endpoint="market")
        return usable(parse.parse_market(body, self.rejects), parse.VENUE, "/markets/{ticker}")

    async def series_tickers(self, category: str) -> list[str]:
        """Series of one category (the venue files categories on series, not markets)."""
        out: list[str] = []

        async def fetch(cursor: str | None) -> tuple[list[str], str | None]:
            body = await self.get(
                "/series", {"category": category, "cursor": cursor}, endpoint="series"
            )
            return usable(parse.parse_series_tickers(body, self.rejects), parse.VENUE, "/series")

        async for page in paginate_cursor(fetch):
            out.extend(page.items)
        return out

    async def series_of(self, ticker: str) -> str:
        """The series ticker of a market (market -> event -> series), cached."""
        found = self._series_of.get(ticker)
        if found is None:
            market = await self.market(ticker)
            if market.event_id is None:
                raise ValueError(f"kalshi market {ticker} has no event")
            body = await self.get(f"/events/{market.event_id}", endpoint="event")
            series = parse.parse_event_series(body, self.rejects)
            found = self._series_of[ticker] = usable(series, parse.VENUE, "/events/{ticker}")
        return found

    # -- books, trades, candles ----------------------------------------------

    async def orderbook(self, ticker: str, depth: int | None) -> BookSnapshot:
        """The canonical top-``depth`` book (None or 0: every level)."""
        wire_depth = 0 if not depth or depth > BOOK_DEPTH_MAX else depth
        body = await self.get(
            f"/markets/{ticker}/orderbook", {"depth": wire_depth}, endpoint="orderbook"
        )
        snap = parse.parse_book(body, ticker, time.time_ns(), self.rejects, depth or None)
        return usable(snap, parse.VENUE, "/markets/{ticker}/orderbook")

    async def cutoffs(self) -> parse.Cutoffs:
        """``GET /historical/cutoff``, kept for ``cutoff_ttl`` seconds."""
        now = time.monotonic()
        if self._cutoffs is not None and now - self._cutoffs[0] < self._cutoff_ttl:
            return self._cutoffs[1]
        body = await self.get("/historical/cutoff", endpoint="historical_cutoff")
        found = parse.parse_cutoffs(body, time.time_ns(), self.rejects)
        cutoffs = usable(found, parse.VENUE, "/historical/cutoff")
        self._cutoffs = (now, cutoffs)
        return cutoffs

    async def trades(self, ticker: str, start_ns: int, end_ns: int) -> AsyncIterator[Trade]:
        """Trades of one market in ``[start_ns, end_ns]`` from whichever tiers hold them.

        Older than the trades cutoff: ``/historical/trades``; from it on:
        ``/markets/trades``. Each tier pages newest first.
        """
        cut = (await self.cutoffs()).trades_ns if self.historical_tier else start_ns
        if start_ns < cut:
            old = ("/historical/trades", "historical_trades", HISTORICAL_TRADES_PAGE_MAX)
            async for trade in self._trades(old, ticker, start_ns, min(end_ns, cut - 1)):
                yield trade
        if end_ns >= cut:
            live = ("/markets/trades", "trades", TRADES_PAGE_MAX)
            async for trade in self._trades(live, ticker, max(start_ns, cut), end_ns):
                yield trade

    async def _trades(
        self, tier: tuple[str, str, int], ticker: str, start_ns: int, end_ns: int
    ) -> AsyncIterator[Trade]:
        path, label, page_size = tier
        base = {
            "ticker": ticker,
            "min_ts": start_ns // 1_000_000_000,
            "max_ts": -(-end_ns // 1_000_000_000),
            "limit": page_size,
        }

        async def fetch(cursor: str | None) -> tuple[list[Trade], str | None]:
            body = await self.get(path, {**base, "cursor": cursor}, endpoint=label)
            page = parse.parse_trades_page(body, time.time_ns(), self.rejects)
            return usable(page, parse.VENUE, path)

        async for page in paginate_cursor(fetch):
            for trade in page.items:
                if start_ns <= trade.ts_venue <= end_ns:
                    yield trade

    async def candles(
        self, ticker: str, interval: str, start_ns: int, end_ns: int
    ) -> AsyncIterator[Candle]:
        """Candlesticks of ``ticker`` (``1m``, ``1h`` or ``1d``), fetched in bounded windows."""
        period = _PERIODS.get(interval)
        if period is None:
            raise ValueError(f"kalshi candles come in {sorted(_PERIODS)}, not {interval!r}")
        series = await self.series_of(ticker)
        step = period * 60
        start, end = start_ns // 1_000_000_000, end_ns // 1_000_000_000
        while start <= end:
            chunk_end = min(end, start + step * (CANDLES_PER_REQUEST - 1))
            body = await self.get(
                f"/series/{series}/markets/{ticker}/candlesticks",
                {"start_ts": start, "end_ts": chunk_end, "period_interval": period},
                endpoint="candlesticks",
            )
            candles = parse.parse_candles(body, ticker, period, time.time_ns(), self.rejects)
            for candle in usable(candles, parse.VENUE, "candlesticks"):
                yield candle
            start = chunk_end + 1
