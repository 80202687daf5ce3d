"""The Polymarket adapter: the venue contract over :mod:`.rest`, :mod:`.feed`, :mod:`.wallets`.

Endpoints are named ``gamma``, ``clob``, ``data`` and ``ws``; config ``urls``
overrides them (the simulator's ``urls()`` points all four at itself).
Tunables are ``venues.polymarket.options`` (:class:`~.options.Options`,
checked at start-up); the connection policy comes from the venue's
``websocket`` settings. The live stream is the generic
:class:`~venuefeed.venues.pump.FeedStream` around a :class:`~.feed.PolymarketFeed`,
whose REST fetches (book snapshots, Gamma look-ups) this adapter answers.
When the API key, secret and passphrase are configured, the stream carries a
companion on the user channel (``user_ws``): the account's own orders and fills
(:mod:`.user`), on a socket of their own.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from venuefeed.models import BookSnapshot, Candle, Market, Trade
from venuefeed.pipeline import quality
from venuefeed.transport import HttpError, HttpPolicy, WsPolicy
from venuefeed.venues.base import (
    ALL_CHANNELS,
    Capability,
    Channel,
    CheckResult,
    HistoryLimit,
    MarketQuery,
    VenueAdapter,
)
from venuefeed.venues.options import load_options
from venuefeed.venues.polymarket.feed import MARKETS, PolymarketFeed
from venuefeed.venues.polymarket.options import Options
from venuefeed.venues.polymarket.protocol import MarketChannel, UserChannel
from venuefeed.venues.polymarket.rest import PolymarketRest
from venuefeed.venues.polymarket.user import UserFeed
from venuefeed.venues.polymarket.wallets import WalletWatcher
from venuefeed.venues.pump import FeedStream

if TYPE_CHECKING:
    from venuefeed.config import Settings, VenueSettings

__all__ = ["PolymarketAdapter"]

_INTERVALS = {"m": 60, "h": 3600, "d": 86400, "w": 604800}


def interval_seconds(interval: str) -> int:
    """``"1m"``, ``"5m"``, ``"1h"``, ``"1d"``, ``"1w"`` in seconds."""
    unit = interval[-1:]
    if unit not in _INTERVALS or not interval[:-1].isdigit() or int(interval[:-1]) < 1:
        raise ValueError(f"unsupported candle interval {interval!r} (use e.g. 1m, 5m, 1h, 1d)")
    return int(interval[:-1]) * _INTERVALS[unit]


class PolymarketAdapter(VenueAdapter):
    """Polymarket: Gamma discovery, CLOB books, Data-API trades, market WebSocket, whales."""

    name: ClassVar[str] = "polymarket"
    default_urls: ClassVar[dict[str, str]] = {
        "gamma": "https://gamma-api.polymarket.com",
        "clob": "https://clob.polymarket.com",
        "data": "https://data-api.polymarket.com",
        "ws": "wss://ws-subscriptions-clob.polymarket.com/ws/market",
        "user_ws": "wss://ws-subscriptions-clob.polymarket.com/ws/user",
    }
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {"markets", "books", "trades", "candles", "stream", "wallets"}
    )
    options_type: ClassVar[type[Options]] = Options

    def __init__(self, settings: VenueSettings, config: Settings) -> None:
        super().__init__(settings, config)
        self.options = load_options(self.options_type, self.name, settings.options)
        self.rest = PolymarketRest(
            self.url("gamma"),
            self.url("clob"),
            self.url("data"),
            HttpPolicy.from_settings(settings),
            self.rejects,
            keyset=self.options.gamma_keyset,
        )
        self.markets: dict[str, Market] = {}
        """Market metadata by token id, filled by discovery and look-ups."""

    async def close(self) -> None:
        await self.rest.close()

    # -- discovery ---------------------------------------------------------------------

    async def fetch_markets(self, query: MarketQuery) -> AsyncIterator[Market]:
        async for market in self.rest.markets(query):
            for token in market.instruments:
                self.markets[token] = market
            yield market

    async def market_of(self, token: str) -> Market | None:
        """The market trading ``token`` (cached, else one Gamma look-up)."""
        if token not in self.markets:
            for market in await self.rest.markets_by_tokens([token]):
                for t in market.instruments:
                    self.markets[t] = market
        return self.markets.get(token)

    # -- books ---------------------------------------------------------------------------

    async def fetch_book(self, instrument: str, depth: int | None = None) -> BookSnapshot:
        """Top ``depth`` levels per side (default ``ingestion.book_depth``), best first."""
        return await self.rest.book(instrument, depth or self.config.ingestion.book_depth)

    async def fetch_books(
        self, instruments: Sequence[str], depth: int | None = None
    ) -> list[BookSnapshot]:
        """Several books in batched ``POST /books`` requests."""
        return await self.rest.books(instruments, depth or self.config.ingestion.book_depth)

    # -- trades --------------------------------------------------------------------------

    async def fetch_trades(
        self, instrument: str, start_ns: int, end_ns: int
    ) -> AsyncIterator[Trade]:
        """Public trades of one token in the window, oldest first.

        Raises :class:`HistoryLimit` when the token has no known market (the
        Data API lists trades by market) or the window lies beyond the Data
        API's offset cap.
        """
        async for trade in self.fetch_trade_group([instrument], start_ns, end_ns):
            yield trade

    async def trade_history_groups(self, instruments: Iterable[str]) -> list[list[str]]:
        """Tokens grouped by market: one Data-API request serves both outcomes."""
        groups: dict[str, list[str]] = {}
        for token in dict.fromkeys(instruments):
            market = await self.market_of(token)
            groups.setdefault(market.market_id if market else f"?{token}", []).append(token)
        return list(groups.values())

    async def fetch_trade_group(
        self, group: Sequence[str], start_ns: int, end_ns: int
    ) -> AsyncIterator[Trade]:
        market = await self.market_of(group[0])
        if market is None:
            raise HistoryLimit(f"token {group[0]} has no Gamma market: its trades cannot be listed")
        wanted = set(group)
        trades = await self.rest.trades(market.market_id, start_ns, end_ns, complete=True)
        for trade in trades:
            if trade.instrument in wanted:
                yield trade

    async def fetch_market_trades(self, market_id: str, start_ns: int, end_ns: int) -> list[Trade]:
        """Public trades of both outcome tokens of one market (condition id)."""
        return await self.rest.trades(market_id, start_ns, end_ns)

    async def fetch_wallet_trades(self, wallet: str, start_ns: int, end_ns: int) -> list[Trade]:
        return await self.rest.wallet_trades(wallet, start_ns, end_ns)

    def live_trades(self, trades: Iterable[Trade], now_ns: int | None = None) -> list[Trade]:
        """G1: only trades younger than ``quality.max_trade_age_seconds``."""
        now = now_ns if now_ns is not None else time.time_ns()
        limit = self.config.quality.max_trade_age_seconds
        return [t for t in trades if not quality.is_stale(t.ts_venue, now, limit)]

    async def size_at_price(self, instrument: str, price: str, ts_ns: int) -> str | None:
        """G3: a size for a print without one, from recent REST trades at that price."""
        q = self.config.quality
        window = int(q.size_backfill_max_age_seconds * 1e9)
        trades = [t async for t in self.fetch_trades(instrument, ts_ns - window, ts_ns + window)]
        return quality.size_at_price(
            trades,
            price,
            ts_ns,
            tolerance=q.size_backfill_tolerance,
            max_age_seconds=q.size_backfill_max_age_seconds,
        )

    async def verify_price(self, instrument: str, price: str) -> tuple[bool, str | None, str]:
        """G5: ``(ok, reference price, reason)`` against the current book's mid."""
        try:
            book: BookSnapshot | None = await self.fetch_book(instrument, 1)
        except HttpError as exc:
            return False, None, f"book unavailable: {exc}"
        return quality.verify_against_snapshot(price, book, self.config.quality.price_deviation_max)

    def wallet_watcher(self, wallets: Iterable[str] | None = None) -> WalletWatcher:
        """A whale watcher for ``wallets`` (default: option ``whale_wallets``)."""
        chosen = wallets if wallets is not None else self.options.whale_wallets
        return WalletWatcher(
            self.rest,
            [str(w) for w in chosen],
            self.config.whales.notional_threshold,
        )

    # -- prices --------------------------------------------------------------------------

    async def fetch_candles(
        self, instrument: str, interval: str, start_ns: int, end_ns: int
    ) -> AsyncIterator[Candle]:
        for candle in await self.rest.candles(
            instrument, interval_seconds(interval), start_ns, end_ns
        ):
            yield candle

    # -- health and streaming -------------------------------------------------------------

    async def check(self) -> CheckResult:
        """Reach all three REST hosts (no credentials are needed for market data)."""
        started = time.perf_counter()
        failures: list[str] = []
        for label, client, path, params in (
            ("clob", self.rest.clob, "/time", None),
            ("gamma", self.rest.gamma, "/markets", {"limit": 1}),
            ("data", self.rest.data, "/", None),
        ):
            try:
                await client.get(path, params, endpoint="check")
            except HttpError as exc:
                failures.append(f"{label}: {exc}")
        latency = (time.perf_counter() - started) * 1000 / 3
        return CheckResult(
            venue=self.name,
            reachable=not failures,
            authenticated=None,
            latency_ms=round(latency, 1),
            detail="; ".join(failures) or "gamma, clob and data API reachable",
        )

    def open_stream(self, channels: frozenset[Channel] = ALL_CHANNELS) -> FeedStream:
        # The venue's liveness check is its text PING/PONG, not protocol pings.
        policy = WsPolicy.from_settings(
            self.settings, self.config.ingestion, protocol_ping_interval=None
        )
        options = self.options
        feed = PolymarketFeed(options, channels, self.rejects, self.markets)
        channel = MarketChannel(
            self.url("ws"), options.max_assets_per_connection, options.ping_interval_seconds
        )
        account = self._account_stream(policy)
        return FeedStream(feed, channel, policy, fetch=self._fetch,
                          companions=(account,) if account is not None else ())  # fmt: skip

    def _account_stream(self, policy: WsPolicy) -> FeedStream | None:
        """The user channel's stream when all three API credentials are configured, else None."""
        auth = {
            wire: self.credential(name)
            for wire, name in (
                ("apiKey", "api_key"),
                ("secret", "api_secret"),
                ("passphrase", "api_passphrase"),
            )
        }
        if not all(auth.values()):
            return None
        owned = {k: v for k, v in auth.items() if v is not None}
        feed = UserFeed(self.markets, self.rejects, owned["apiKey"])
        channel = UserChannel(self.url("user_ws"), owned, self.options.max_assets_per_connection,
                              self.options.ping_interval_seconds)  # fmt: skip
        return FeedStream(feed, channel, policy)

    async def _fetch(self, what: str, keys: Sequence[str]) -> Sequence[Any]:
        """The feed's REST requests: Gamma markets of unknown tokens, else ``POST /books``."""
        if what == MARKETS:
            return await self.rest.markets_by_tokens(keys)
        return await self.rest.summaries(list(keys))
