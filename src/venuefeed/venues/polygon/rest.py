"""Polygon.io (Massive) REST: aggregates and v3 trades/quotes, paged through ``next_url``.

Retries, 429 handling and rate limiting belong to :mod:`venuefeed.transport`;
this module says which URLs to ask for and how to read the pages.

Authentication and ``next_url``
    The key travels only in an ``Authorization: Bearer`` header set on the
    client, so it is on every request -- first pages and ``next_url`` pages
    alike -- and never in a URL that could be logged. A ``next_url`` is reduced
    to its path and query (the opaque ``cursor``) and requested against the
    *configured* base URL: the key is never sent to whatever host a response
    names, and pages recorded before the 2025 rename (``api.polygon.io``)
    still resume against ``api.massive.com``.

Resuming
    Every page is a :class:`~venuefeed.transport.pagination.Page` whose
    ``next_cursor`` is that relative ``next_url`` (it holds no secret, so it
    may be stored). A job that stores ``page.next_cursor`` after writing a
    page restarts exactly there with ``resume=``; the result equals an
    uninterrupted run, without duplicates. Without a stored cursor, restarting
    from the last stored timestamp is also safe: trades carry a stable
    ``trade_id`` and candles an ``open_time``, the natural keys sinks dedupe on.

Ranges are half-open, ``[start_ns, end_ns)``, so adjacent ranges never share
an item: trades by SIP timestamp, candles by open time.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final, TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import msgspec

from venuefeed.models import Candle, TopOfBook, Trade
from venuefeed.transport import HttpClient, HttpPolicy, Page, paginate_cursor
from venuefeed.venues.rejects import Rejects, usable

from .parse import VENUE, Interval, parse_candles, parse_quotes_page, parse_trades_page
from .protocol import MarketStatusNow

__all__ = ["MAX_LIMIT", "PolygonRest", "relative_next_url"]

MAX_LIMIT: Final = 50_000
"""The largest page the v3 endpoints and aggregates accept."""
_MS: Final = 1_000_000
_AUTH_QUERY_KEYS: Final = frozenset({"apikey", "api_key"})
_status_decoder = msgspec.json.Decoder(MarketStatusNow)

T = TypeVar("T", Trade, TopOfBook, Candle)
PageParser = Callable[[bytes], tuple[list[T], str | None] | None]


def relative_next_url(next_url: str) -> str:
    """``https://api.massive.com/v3/trades/AAPL?cursor=X`` -> ``/v3/trades/AAPL?cursor=X``.

    Any key-like query parameter is dropped: a cursor is stored, and must
    never carry a credential.
    """
    parts = urlsplit(next_url)
    query = [(k, v) for k, v in parse_qsl(parts.query, True) if k.lower() not in _AUTH_QUERY_KEYS]
    return parts.path + (f"?{urlencode(query)}" if query else "")


class PolygonRest:
    """The venue's REST endpoints as canonical pages, through the shared HTTP client."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        policy: HttpPolicy,
        *,
        page_limit: int = MAX_LIMIT,
        rejects: Rejects | None = None,
    ) -> None:
        if not 1 <= page_limit <= MAX_LIMIT:
            raise ValueError(f"polygon page_limit must be between 1 and {MAX_LIMIT}")
        self.page_limit = page_limit
        self.rejects = rejects or Rejects(VENUE)
        self.http = HttpClient(
            VENUE, base_url, policy, headers={"Authorization": f"Bearer {api_key}"}
        )

    async def close(self) -> None:
        await self.http.close()

    async def market_status(self) -> MarketStatusNow:
        """``/v1/marketstatus/now``: cheap, and refused without a valid key."""
        body = await self.http.get("/v1/marketstatus/now", endpoint="marketstatus")
        return _status_decoder.decode(body)

    def trade_pages(
        self, symbol: str, start_ns: int, end_ns: int, *, resume: str | None = None
    ) -> AsyncIterator[Page[Trade]]:
        """Trades with ``start_ns <= sip_timestamp < end_ns``, oldest first, page by page."""
        return self._v3_pages(
            "trades",
            symbol,
            start_ns,
            end_ns,
            lambda body: parse_trades_page(body, symbol, time.time_ns(), self.rejects),
            resume,
        )

    def quote_pages(
        self, symbol: str, start_ns: int, end_ns: int, *, resume: str | None = None
    ) -> AsyncIterator[Page[TopOfBook]]:
        """NBBO quotes with ``start_ns <= sip_timestamp < end_ns``, oldest first."""
        return self._v3_pages(
            "quotes",
            symbol,
            start_ns,
            end_ns,
            lambda body: parse_quotes_page(body, symbol, time.time_ns(), self.rejects),
            resume,
        )

    def _v3_pages(
        self,
        kind: str,
        symbol: str,
        start_ns: int,
        end_ns: int,
        parse: PageParser[T],
        resume: str | None,
    ) -> AsyncIterator[Page[T]]:
        path = f"/v3/{kind}/{quote(symbol, safe='')}"
        params: dict[str, str | int] = {
            "timestamp.gte": start_ns,
            "timestamp.lt": end_ns,
            "order": "asc",
            "sort": "timestamp",
            "limit": self.page_limit,
        }
        return self._pages(path, params, kind, parse, resume, f"{path}?")

    async def candle_pages(
        self,
        symbol: str,
        interval: Interval,
        start_ns: int,
        end_ns: int,
        *,
        resume: str | None = None,
    ) -> AsyncIterator[Page[Candle]]:
        """Bars with ``start_ns <= open_time < end_ns``, oldest first.

        The venue's ``from``/``to`` are inclusive milliseconds; the exact
        half-open range is enforced here, so the venue's boundary rules never
        decide which half of a split range a bar lands in.
        """
        if end_ns <= start_ns:
            return
        prefix = f"/v2/aggs/ticker/{quote(symbol, safe='')}/range/{interval.multiplier}/"
        prefix += f"{interval.timespan}/"
        path = f"{prefix}{start_ns // _MS}/{(end_ns - 1) // _MS}"
        params: dict[str, str | int] = {"adjusted": "true", "sort": "asc", "limit": self.page_limit}
        pages = self._pages(
            path,
            params,
            "aggs",
            lambda body: parse_candles(body, symbol, interval, time.time_ns(), self.rejects),
            resume,
            prefix,
        )
        async for page in pages:
            inside = [c for c in page.items if start_ns <= c.open_time < end_ns]
            yield Page(inside, page.cursor, page.next_cursor)

    async def _pages(
        self,
        path: str,
        params: dict[str, str | int],
        endpoint: str,
        parse: PageParser[T],
        resume: str | None,
        resume_prefix: str,
    ) -> AsyncIterator[Page[T]]:
        """Follow ``next_url`` from the first page (or from ``resume``) to the end."""
        if resume is not None and not resume.startswith(resume_prefix):
            raise ValueError(f"polygon resume cursor {resume!r} does not continue {path}")

        def fetch(cursor: str | None) -> Awaitable[tuple[list[T], str | None]]:
            if cursor is None:
                return self._page(path, params, endpoint, parse)
            return self._page(cursor, None, endpoint, parse)

        async for page in paginate_cursor(fetch, start=resume):
            yield page

    async def _page(
        self,
        path: str,
        params: dict[str, str | int] | None,
        endpoint: str,
        parse: PageParser[T],
    ) -> tuple[list[T], str | None]:
        body = await self.http.get(path, params, endpoint=endpoint)
        items, next_url = usable(parse(body), VENUE, endpoint)
        return items, relative_next_url(next_url) if next_url else None
