"""Polymarket REST: Gamma discovery, CLOB books and price history, Data-API trades.

Each host gets its own :class:`~venuefeed.transport.HttpClient` (they have
separate rate limits, PMD rate-limits page), which does the retrying; this
module only says what to ask and how to read the answer. Responses decode
straight into :mod:`.protocol` structs and come out as canonical events.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Literal

from venuefeed import exact
from venuefeed.log import get_logger
from venuefeed.models import BookSnapshot, Candle, Market, Trade
from venuefeed.transport import HttpClient, HttpPolicy, HttpStatusError, paginate_offset
from venuefeed.venues.base import HistoryLimit, MarketQuery
from venuefeed.venues.polymarket import parse
from venuefeed.venues.polymarket.protocol import BookSummary
from venuefeed.venues.rejects import Rejects, usable

__all__ = ["GAMMA_PAGE", "PolymarketRest"]

GAMMA_PAGE = 100
"""Gamma silently caps ``limit`` at 100; asking for more only hides the cap."""
GAMMA_MAX_OFFSET = 10_000
"""Gamma answers 422 beyond this offset."""
KEYSET_MAX_PAGES = 1_000
"""Keyset pages per listing (100 markets each): a bound far above the venue's open markets."""
TOKEN_BATCH = 50
"""Tokens per Gamma ``clob_token_ids`` or CLOB ``/books`` request (two tokens per market)."""
DATA_PAGE = 500
DATA_MAX_OFFSET = 10_000

_log = get_logger("venuefeed.venues.polymarket.rest")
GammaList = Literal["markets", "events"]


class PolymarketRest:
    """REST calls of one adapter; owns the three HTTP clients."""

    def __init__(
        self,
        gamma: str,
        clob: str,
        data: str,
        policy: HttpPolicy,
        rejects: Rejects | None = None,
        *,
        keyset: bool = True,
    ) -> None:
        self.keyset = keyset
        """List Gamma markets and events with the keyset endpoints first."""
        self.gamma = HttpClient(parse.VENUE, gamma, policy)
        self.clob = HttpClient(parse.VENUE, clob, policy)
        self.data = HttpClient(parse.VENUE, data, policy)
        self.rejects = rejects or Rejects(parse.VENUE)

    async def close(self) -> None:
        for client in (self.gamma, self.clob, self.data):
            await client.close()

    # -- discovery -------------------------------------------------------------------

    async def markets(self, query: MarketQuery) -> AsyncIterator[Market]:
        """Markets that are active, not closed and (unless disabled) resolve in the window.

        With categories, events are listed per tag (``/events?tag_slug=``) so
        each market comes with its event; otherwise ``/markets`` is paged.
        The window is also sent as ``end_date_min/max`` but re-checked here,
        because a filter the server ignores must not widen the result.
        """
        now = datetime.now(UTC)
        params: dict[str, object] = {}
        if query.active_only:
            params.update(active=True, closed=False)
        window_end: int | None = None
        if query.max_resolution_days > 0:
            end = now + timedelta(days=query.max_resolution_days)
            params.update(end_date_min=_iso(now), end_date_max=_iso(end))
            window_end = int(end.timestamp() * 1e9)
        now_ns = int(now.timestamp() * 1e9)
        seen: set[str] = set()
        count = 0

        def keep(market: Market) -> bool:
            if market.market_id in seen:
                return False
            if query.active_only and market.status not in ("open", "paused"):
                return False
            if window_end is None:
                return True
            return market.close_time is not None and now_ns <= market.close_time <= window_end

        sources = (
            [self._event_markets({**params, "tag_slug": tag}) for tag in query.categories]
            if query.categories
            else [self._plain_markets(params)]
        )
        for source in sources:
            async for market in source:
                if keep(market):
                    seen.add(market.market_id)
                    yield market
                    count += 1
                    if query.limit is not None and count >= query.limit:
                        return

    async def _plain_markets(self, params: dict[str, object]) -> AsyncIterator[Market]:
        async for market in self._gamma_list("markets", {**params, "include_tag": True}):
            yield market

    async def _event_markets(self, params: dict[str, object]) -> AsyncIterator[Market]:
        async for market in self._gamma_list("events", params):
            yield market

    async def markets_by_tokens(self, tokens: Iterable[str]) -> list[Market]:
        """The markets trading ``tokens`` (batched ``clob_token_ids`` as repeated keys)."""
        wanted = list(dict.fromkeys(tokens))
        out: dict[str, Market] = {}
        for i in range(0, len(wanted), TOKEN_BATCH):
            batch: dict[str, object] = {"clob_token_ids": wanted[i : i + TOKEN_BATCH]}
            async for market in self._gamma_list("markets", batch):
                out[market.market_id] = market
        return list(out.values())

    async def _gamma_list(
        self, kind: GammaList, params: dict[str, object]
    ) -> AsyncIterator[Market]:
        """Every market of a Gamma listing: keyset first, the legacy offset list as fallback.

        The legacy ``/markets`` and ``/events`` lists were announced for sunset
        (2026-05-01) and the keyset cursor was reported ignored server-side
        (protocol doc section 7.1), so neither is trusted alone. The legacy list
        takes over when the keyset endpoint refuses (a 4xx: not deployed, or a
        filter it does not take) or stops without its end marker (a cursor or a
        page that repeats). Markets the keyset already gave come again from the
        fallback: callers keep one per market id.
        """
        gave = False
        if self.keyset:
            path = f"/{kind}/keyset"
            try:
                ended = False
                async for markets, last in self._keyset_pages(kind, params):
                    ended = last
                    for market in markets:
                        gave = True
                        yield market
                if ended:
                    return
                _log.warning("gamma keyset listing repeated itself; using the legacy list",
                             path=path)  # fmt: skip
            except HttpStatusError as exc:
                status = exc.status or 0
                if status == 429 or not 400 <= status < 500:
                    raise
                _log.info("gamma keyset listing refused; using the legacy list",
                          path=path, status=exc.status)  # fmt: skip
        try:
            async for market in self._legacy_pages(kind, params):
                yield market
        except HttpStatusError as exc:
            if not gave or exc.status not in (404, 410):
                raise
            _log.warning("gamma legacy list is gone too; keeping what the keyset listed",
                         path=f"/{kind}", status=exc.status)  # fmt: skip

    async def _keyset_pages(
        self, kind: GammaList, params: dict[str, object]
    ) -> AsyncIterator[tuple[list[Market], bool]]:
        """Each keyset page's markets and whether it was the last; stops early (last=False)
        on a cursor or a page of markets seen before, or after :data:`KEYSET_MAX_PAGES`."""
        path = f"/{kind}/keyset"
        cursor: str | None = None
        cursors: set[str] = set()
        previous: list[str] = []
        for _ in range(KEYSET_MAX_PAGES):
            query = {**params, "limit": GAMMA_PAGE}
            if cursor is not None:
                query["after_cursor"] = cursor
            body = await self.gamma.get(path, query, endpoint=f"{kind}_keyset")
            if kind == "markets":
                found, following = usable(
                    parse.parse_markets_keyset(body, self.rejects), parse.VENUE, path
                )
                markets = [m for m in found if m is not None]
            else:
                events, following = usable(
                    parse.parse_events_keyset(body, self.rejects), parse.VENUE, path
                )
                markets = [m for event in events for m in event]
            ids = [m.market_id for m in markets]
            if ids and ids == previous:
                return
            previous = ids
            yield markets, following is None
            if following is None or following in cursors:
                return
            cursors.add(following)
            cursor = following

    async def _legacy_pages(
        self, kind: GammaList, params: dict[str, object]
    ) -> AsyncIterator[Market]:
        """The legacy offset list (``limit`` capped at 100, 422 beyond offset 10000)."""
        path = f"/{kind}"

        async def fetch(offset: int, limit: int) -> list[list[Market]]:
            body = await self.gamma.get(
                path, {**params, "limit": limit, "offset": offset}, endpoint=kind
            )
            if kind == "events":
                return usable(parse.parse_events_page(body, self.rejects), parse.VENUE, path)
            page = usable(parse.parse_markets_page(body, self.rejects), parse.VENUE, path)
            return [[m] if m is not None else [] for m in page]

        async for page in paginate_offset(fetch, limit=GAMMA_PAGE, max_offset=GAMMA_MAX_OFFSET):
            for markets in page.items:
                for market in markets:
                    yield market

    # -- books -------------------------------------------------------------------------

    async def summaries(self, tokens: Sequence[str]) -> list[BookSummary]:
        """``POST /books`` in batches; unknown tokens are simply absent from the answer."""
        out: list[BookSummary] = []
        for i in range(0, len(tokens), TOKEN_BATCH):
            body = [{"token_id": t} for t in tokens[i : i + TOKEN_BATCH]]
            answer = await self.clob.post("/books", body, endpoint="books")
            out.extend(usable(parse.parse_books(answer, self.rejects), parse.VENUE, "/books"))
        return out

    async def book(self, token: str, depth: int) -> BookSnapshot:
        body = await self.clob.get("/book", {"token_id": token}, endpoint="book")
        snap = parse.parse_book(body, time.time_ns(), self.rejects, depth)
        return usable(snap, parse.VENUE, "/book")

    async def books(self, tokens: Sequence[str], depth: int) -> list[BookSnapshot]:
        now = time.time_ns()
        snaps = [
            parse.book_snapshot(s, now, self.rejects, depth) for s in await self.summaries(tokens)
        ]
        return [s for s in snaps if s is not None]

    # -- trades ------------------------------------------------------------------------

    async def _trade_pages(
        self, path: str, params: dict[str, object], start_ns: int, cap: int, complete: bool = False
    ) -> list[Trade]:
        """Data-API rows newest first, paged until older than ``start_ns`` or exhausted.

        With ``complete``, stopping at the offset cap before reaching ``start_ns``
        raises :class:`HistoryLimit` (the older trades of the window are out of reach).
        """
        out: list[Trade] = []
        done = False
        next_offset = 0

        async def fetch(offset: int, limit: int) -> list[Trade | None]:
            if done:
                return []
            body = await self.data.get(
                path, {**params, "limit": limit, "offset": offset}, endpoint=path.strip("/")
            )
            return usable(
                parse.parse_trades_page(body, time.time_ns(), self.rejects), parse.VENUE, path
            )

        async for page in paginate_offset(fetch, limit=cap, max_offset=DATA_MAX_OFFSET):
            trades = [t for t in page.items if t is not None]
            out.extend(trades)
            done = bool(trades) and min(t.ts_venue for t in trades) < start_ns
            next_offset = int(page.next_cursor or 0)
        # Not past the window start, and the next page was never asked for: the cap stopped us.
        if complete and not done and next_offset > DATA_MAX_OFFSET:
            raise HistoryLimit(
                f"{path} stops at offset {DATA_MAX_OFFSET}: trades before "
                f"{out[-1].ts_venue if out else start_ns} ns are out of reach"
            )
        return out

    async def trades(
        self,
        market_id: str,
        start_ns: int,
        end_ns: int,
        token: str | None = None,
        *,
        complete: bool = False,
    ) -> list[Trade]:
        """Public trades of one market (condition id) in ``[start_ns, end_ns]``, oldest first.

        ``/trades`` has no time filter, so pages are read newest first until
        they pass ``start_ns``; ``token`` narrows to one outcome. ``complete``:
        see :meth:`_trade_pages`.
        """
        rows = await self._trade_pages(
            "/trades", {"market": market_id}, start_ns, DATA_PAGE, complete
        )
        return _window(rows, start_ns, end_ns, token)

    async def wallet_trades(self, wallet: str, start_ns: int, end_ns: int) -> list[Trade]:
        """One wallet's trades in the window (``/activity`` has real time filters), oldest first."""
        params: dict[str, object] = {
            "user": wallet,
            "type": "TRADE",
            "start": start_ns // 1_000_000_000,
            "end": -(-end_ns // 1_000_000_000),
            "sortDirection": "DESC",
        }
        rows = await self._trade_pages("/activity", params, start_ns, DATA_PAGE)
        return _window(rows, start_ns, end_ns, None)

    async def large_trades(self, min_notional: Decimal, limit: int = DATA_PAGE) -> list[Trade]:
        """The newest trades of at least ``min_notional`` USDC, across all markets."""
        params = {
            "filterType": "CASH",
            "filterAmount": exact.from_decimal(min_notional),
            "limit": limit,
        }
        body = await self.data.get("/trades", params, endpoint="trades")
        page = usable(
            parse.parse_trades_page(body, time.time_ns(), self.rejects), parse.VENUE, "/trades"
        )
        return [t for t in page if t is not None]

    # -- prices -------------------------------------------------------------------------

    async def candles(
        self, token: str, interval_s: int, start_ns: int, end_ns: int
    ) -> list[Candle]:
        """Bars built from ``/prices-history`` points (a few points per bar)."""
        fidelity = max(1, interval_s // 60 // 4)
        params = {
            "market": token,
            "startTs": start_ns // 1_000_000_000,
            "endTs": end_ns // 1_000_000_000,
            "fidelity": fidelity,
        }
        body = await self.clob.get("/prices-history", params, endpoint="prices_history")
        candles = parse.parse_candles(body, token, interval_s, time.time_ns(), self.rejects)
        return usable(candles, parse.VENUE, "/prices-history")


def _window(rows: list[Trade], start_ns: int, end_ns: int, token: str | None) -> list[Trade]:
    """Rows inside the window, deduplicated, oldest first.

    Data-API times are whole seconds, so the window start is floored to the
    second: a trade at 12:00:00.700 reported as 12:00:00 still belongs to a
    window that starts at 12:00:00.500.
    """
    start_ns -= start_ns % 1_000_000_000
    unique = {
        t.trade_id: t
        for t in rows
        if start_ns <= t.ts_venue <= end_ns and (token is None or t.instrument == token)
    }
    return sorted(unique.values(), key=lambda t: t.ts_venue)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
