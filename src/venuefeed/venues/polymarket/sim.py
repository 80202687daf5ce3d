"""Polymarket's local twin: Gamma, CLOB, Data API and the market WebSocket on one port.

It speaks the wire format of ``shared/docs/venue-protocols.md`` section 1 (and
its shapes are checked against the real captures in a conformance test), not
what our client happens to expect:

* Gamma ``/markets`` and ``/events`` with JSON-encoded-string fields, ``limit``
  silently capped at 100, ``offset > 10000`` answered with 422, list filters
  accepted repeated or comma-joined; the keyset lists ``/markets/keyset`` and
  ``/events/keyset`` (``after_cursor``/``next_cursor``, ``offset`` refused), which
  can be switched off or made to ignore the cursor (:attr:`Simulator.gamma_keyset`),
  and markets that are odd on the wire (:attr:`Simulator.odd_markets`);
* CLOB ``/book`` and ``POST /books`` with best levels *last*, string numbers,
  millisecond string timestamps and the book ``hash``; ``/prices-history``;
* Data API ``/trades`` and ``/activity`` as bare arrays, seconds, JSON numbers;
* ``/ws/market``: ``assets_ids`` subscribe (``initial_dump`` honoured, later
  ``operation`` updates), text ``PING``/``PONG`` -- and a ``PING`` before the
  subscribe is answered by closing with 1008, like the venue --, the initial
  dump as one JSON array, current-shape ``price_change`` with the paired
  complementary-token change, ``last_trade_price`` with ``transaction_hash``,
  ``best_bid_ask``, ``tick_size_change``, ``new_market``, ``market_resolved``;
* ``/ws/user``: the account's own orders and trades. The first subscribe must
  carry the configured API key, secret and passphrase (else the text
  ``UNAUTHORIZED`` and a 1008 close); every ``account_every``-th trade is the
  account's taker order, sent to its sockets that follow the market as
  ``order`` PLACEMENT, ``trade`` MATCHED, ``order`` UPDATE and ``trade``
  CONFIRMED (the ground truth has ``account_order`` and ``account_fill``).

Books are integer ticks (0.01) and integer size cents, so a step of the random
walk costs a few dict operations; the NO token's book is the mirror of the YES
book (NO bid at 1-p for every YES ask at p), which is what the venue's paired
changes express. Everything is drawn from the seeded RNG, so a scenario is
reproducible; everything sent that a test may check lands in ``self.truth``.
Venue-specific truth kinds: ``ping_before_subscribe``, ``asset_cap_exceeded``,
``subscribe``, ``tick_size_change``, ``raw_frame`` (a scripted frame sent as
given by :meth:`Simulator.send_raw`) and ``subscription_stall`` (an asset no
longer delivered on a live socket, :meth:`Simulator.stall`), ``ws_auth_failed``,
``account_order`` and ``account_fill``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import math
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import msgspec
from aiohttp import web

from venuefeed.sim.base import Book, Faults, GroundTruth, SimulatorBase
from venuefeed.sim.shared_events import SHARED_EVENTS, SharedEvent, shared_close_ts
from venuefeed.sim.sockets import SimSocket, Sockets

__all__ = ["DEFAULT_WHALES", "Simulator"]

DEFAULT_WHALES: tuple[str, ...] = (
    "0x56687bf447db6ffa42ffe2204a05edaa20f55839",
    "0x1f2e3d4c5b6a79880112233445566778899aabbc",
)

_PRICE = [f"{t / 100:.2f}".rstrip("0").rstrip(".") for t in range(101)]
_encode = msgspec.json.encode
_TEMPLATES = (
    ("Will {a} close above ${n} on {d}?", "{a}", ("NVIDIA", "Apple", "Tesla", "Bitcoin", "Gold")),
    ("Will {a} win the {d} match?", "{a}", ("Arsenal", "Real Madrid", "Celtics", "Yankees")),
    ("Will {a} announce a rate cut by {d}?", "{a}", ("the Fed", "the ECB", "the BoE", "the BoJ")),
    ("Will {a} reach {n}k followers by {d}?", "{a}", ("MrBeast", "Taylor Swift", "NASA")),
)
_CATEGORIES = ("Stocks", "Sports", "Economy", "Pop Culture")
_MAX_LEVELS = 15
_MAX_LEAD_MS = 50
"""How far one market's venue clock may run ahead of the wall clock before its next event
waits for the wall clock (only a market with more than 1,000 events a second gets there)."""


def _size_text(cents: int) -> str:
    whole, frac = divmod(cents, 100)
    return str(whole) if frac == 0 else f"{whole}.{frac:02d}".rstrip("0")


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True)
class _Book:
    """One token's book: tick -> size in cents. Both sides are never empty."""

    market: str
    bids: dict[int, int] = field(default_factory=dict)
    asks: dict[int, int] = field(default_factory=dict)
    ts_ms: int = 0
    last_trade: int | None = None
    tick_size: str = "0.01"


@dataclass(slots=True)
class _Market:
    id: str
    condition_id: str
    question: str
    slug: str
    description: str
    category: str
    start: datetime
    end: datetime
    yes: str
    no: str
    event_id: str
    event_slug: str
    event_title: str
    active: bool = True
    closed: bool = False
    volume: float = 0.0
    clock_ms: int = 0
    """Venue time of the market's last event (both tokens' books), ms."""
    updated: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(slots=True, eq=False)
class _Client:
    """What the venue knows about one market-channel socket."""

    assets: set[str] = field(default_factory=set)
    stalled: set[str] = field(default_factory=set)
    """Subscribed assets this socket no longer hears of (until they are subscribed again)."""
    custom: bool = False
    subscribed: bool = False
    last_heard: float = field(default_factory=time.monotonic)


_Socket = SimSocket[_Client]


@dataclass(slots=True, eq=False)
class _UserClient:
    """What the venue knows about one user-channel socket: authenticated, and for which markets."""

    authed: bool = False
    markets: set[str] = field(default_factory=set)


class Simulator(SimulatorBase):
    """The Polymarket twin. ``urls()`` points all four endpoints of the adapter at it."""

    venue = "polymarket"

    def __init__(
        self,
        *,
        seed: int = 1,
        faults: Faults | None = None,
        ground_truth: GroundTruth | None = None,
        markets: int = 40,
        events_per_second: float = 20.0,
        whale_wallets: Sequence[str] = DEFAULT_WHALES,
        max_assets_per_connection: int = 500,
        client_timeout: float = 30.0,
        whale_rate: float = 0.1,
        account_every: int = 0,
        credentials: tuple[str, str, str] = ("sim-key", "sim-secret", "sim-passphrase"),
    ) -> None:
        super().__init__(seed=seed, faults=faults, ground_truth=ground_truth)
        self.events_per_second = events_per_second
        self.whale_wallets = tuple(w.lower() for w in whale_wallets)
        self.max_assets_per_connection = max_assets_per_connection
        self.client_timeout = client_timeout
        self.whale_rate = whale_rate
        self.account_every = account_every
        """Every Nth trade is the account's own taker order (0: the account never trades)."""
        self.credentials = credentials
        """The API key, secret and passphrase the user channel accepts."""
        self.user_sockets: Sockets[_UserClient] = Sockets(self)
        self._account_trades = 0
        self.markets: list[_Market] = []
        self.books: dict[str, _Book] = {}
        self.partner: dict[str, str] = {}
        self.market_of: dict[str, _Market] = {}
        self.trades: list[dict[str, Any]] = []
        self.sockets: Sockets[_Client] = Sockets(self)
        self.events_emitted = 0
        self.requests: dict[str, int] = {}
        self.gamma_keyset: Literal["ok", "absent", "ignore_cursor"] = "ok"
        """How ``/markets/keyset`` and ``/events/keyset`` behave: as documented; not
        deployed (404); or ignoring ``after_cursor`` (the first page again, same cursor),
        as a user reported of the real service in April 2026."""
        self.odd_markets: set[str] = set()
        """Condition ids whose Gamma objects carry a wrongly typed field (``clobTokenIds``
        as a number): one odd market in an otherwise good page."""
        self._wallets = [f"0x{self.rng.getrandbits(160):040x}" for _ in range(40)]
        self._now = datetime.now(UTC).replace(microsecond=0)
        for index in range(markets):
            self._add_market(index)
        # The last few of a catalogue big enough become the events Kalshi lists too; they
        # were drawn all the same, so every seeded draw after this point is unchanged.
        if markets >= 4 * len(SHARED_EVENTS):
            for number, event in enumerate(SHARED_EVENTS):
                self._replace(markets - len(SHARED_EVENTS) + number, event)

    # -- market state -------------------------------------------------------------------

    def _add_market(self, index: int) -> _Market:
        rng = self.rng
        kind = index % len(_TEMPLATES)
        template, _, subjects = _TEMPLATES[kind]
        subject = subjects[rng.randrange(len(subjects))]
        # Two thirds resolve inside the default 7-day window, the rest later; a few closed.
        days = rng.uniform(0.2, 6.5) if index % 3 else rng.uniform(8.0, 60.0)
        end = self._now + timedelta(days=days)
        day_text = f"{end:%B} {end.day}"
        question = template.format(a=subject, n=rng.randrange(50, 500), d=day_text)
        slug = "-".join("".join(c for c in question.lower() if c.isalnum() or c == " ").split())
        slug = f"{slug}-{index}"
        condition = f"0x{rng.getrandbits(256):064x}"
        yes, no = (str(rng.getrandbits(252)) for _ in range(2))
        event_index = index // 2
        market = _Market(
            id=str(500000 + index),
            condition_id=condition,
            question=question,
            slug=slug,
            description=(
                f'This market will resolve to "Yes" if {subject} meets the condition in the '
                f'title by {day_text}. Otherwise, this market will resolve to "No".'
            ),
            category=_CATEGORIES[kind],
            start=self._now - timedelta(days=rng.uniform(1, 30)),
            end=end,
            yes=yes,
            no=no,
            event_id=str(90000 + event_index),
            event_slug=f"sim-event-{event_index}",
            event_title=f"{_CATEGORIES[kind]}: {subject}",
            closed=index % 13 == 12,
        )
        self._list(market, rng, rng.randrange(20, 80))
        return market

    def _list(self, market: _Market, rng: random.Random, mid: int) -> None:
        """Register ``market`` and give its YES book levels around ``mid`` (cents), NO mirrored."""
        yes, no, condition = market.yes, market.no, market.condition_id
        self.markets.append(market)
        self.market_of[yes] = self.market_of[no] = market
        self.partner[yes], self.partner[no] = no, yes
        yes_book = _Book(condition)
        for depth in range(rng.randrange(3, 9)):
            yes_book.bids[mid - 1 - depth] = rng.randrange(100, 500_000)
        for depth in range(rng.randrange(3, 9)):
            yes_book.asks[mid + 1 + depth] = rng.randrange(100, 500_000)
        ts = self._tick_ms(market)
        yes_book.ts_ms = ts
        self.books[yes] = yes_book
        self.books[no] = _Book(
            condition,
            bids={100 - t: s for t, s in yes_book.asks.items()},
            asks={100 - t: s for t, s in yes_book.bids.items()},
            ts_ms=ts,
        )

    def _replace(self, index: int, shared: SharedEvent) -> None:
        """Market ``index`` becomes one also listed on Kalshi, drawn from its own RNG."""
        old = self.markets[index]
        for token in (old.yes, old.no):
            del self.books[token], self.partner[token], self.market_of[token]
        rng = random.Random(f"{self.seed}:shared:{shared.key}")
        end = datetime.fromtimestamp(shared_close_ts(self._now.timestamp(), shared), UTC)
        slug = f"sim-{shared.key}"
        yes, no = (str(rng.getrandbits(252)) for _ in range(2))
        market = _Market(
            id=str(500000 + index), condition_id=f"0x{rng.getrandbits(256):064x}",
            question=shared.polymarket_question, slug=slug, description=shared.polymarket_rules,
            category=_CATEGORIES[2], start=self._now - timedelta(days=7), end=end, yes=yes, no=no,
            event_id=str(90000 + index), event_slug=slug, event_title=shared.polymarket_question,
        )  # fmt: skip
        self._list(market, rng, shared.polymarket_fair)
        self.markets[index] = self.markets.pop()

    def _tick_ms(self, market: _Market) -> int:
        """Venue time of an event of ``market`` in ms: the wall clock, made strictly
        increasing per market, so every change of a book has its own time (a REST book
        and the live book are ordered by it).

        Per market, not one clock for the venue: a venue-wide clock that must advance
        1 ms per event runs ahead of the wall clock as soon as the venue prints more than
        1,000 events a second -- at full speed minutes ahead, and the client then rightly
        refuses every frame as from the future. A single market that busy is held back
        by :meth:`step` instead (:data:`_MAX_LEAD_MS`).
        """
        now = time.time_ns() // 1_000_000
        clock = market.clock_ms
        market.clock_ms = clock = now if now > clock else clock + 1
        return clock

    def tokens(self, *, open_only: bool = True) -> list[str]:
        """Every outcome token (of open markets by default), YES then NO per market."""
        return [t for m in self.markets if not (open_only and m.closed) for t in (m.yes, m.no)]

    def final_books(self, depth: int | None = None) -> dict[str, Book]:
        """Ground truth: each token's book now, best-first, as canonical (price, size) text."""
        out = {}
        for token, book in self.books.items():
            bids = sorted(book.bids.items(), reverse=True)[:depth]
            asks = sorted(book.asks.items())[:depth]
            out[token] = (
                [(_PRICE[t], _size_text(s)) for t, s in bids],
                [(_PRICE[t], _size_text(s)) for t, s in asks],
            )
        return out

    # -- REST: Gamma -------------------------------------------------------------------------

    def _gamma_market(
        self, m: _Market, *, with_event: bool = True, tags: bool = False
    ) -> dict[str, Any]:
        yes_book = self.books[m.yes]
        best_bid = max(yes_book.bids) / 100
        best_ask = min(yes_book.asks) / 100
        mid = round((best_bid + best_ask) / 2, 3)
        yes_price = "1" if m.closed else _trim(mid)
        no_price = "0" if m.closed else _trim(round(1 - mid, 3))
        volume = m.volume
        body: dict[str, Any] = {
            "id": m.id,
            "question": m.question,
            "conditionId": m.condition_id,
            "slug": m.slug,
            "resolutionSource": "",
            "endDate": _iso(m.end),
            "liquidity": "20328.3747",
            "startDate": _iso(m.start),
            "image": "https://polymarket-upload.s3.us-east-2.amazonaws.com/sim.png",
            "icon": "https://polymarket-upload.s3.us-east-2.amazonaws.com/sim.png",
            "description": m.description,
            "outcomes": json.dumps(["Yes", "No"]),
            "outcomePrices": json.dumps([yes_price, no_price]),
            "volume": _trim(round(volume, 6)),
            "active": m.active,
            "closed": m.closed,
            "marketMakerAddress": "",
            "createdAt": _iso(m.start),
            "updatedAt": _iso(m.updated),
            "new": False,
            "featured": False,
            "archived": False,
            "restricted": True,
            "groupItemThreshold": "0",
            "questionID": f"0x{hashlib.sha256(m.id.encode()).hexdigest()}",
            "enableOrderBook": True,
            "orderPriceMinTickSize": float(yes_book.tick_size),
            "orderMinSize": 5,
            "volumeNum": round(volume, 6),
            "liquidityNum": 20328.3747,
            "endDateIso": f"{m.end:%Y-%m-%d}",
            "startDateIso": f"{m.start:%Y-%m-%d}",
            "volume24hr": round(volume, 6),
            "clobTokenIds": json.dumps([m.yes, m.no]),
            "acceptingOrders": not m.closed,
            "negRisk": False,
            "spread": round(best_ask - best_bid, 3),
            "lastTradePrice": (yes_book.last_trade or 0) / 100,
            "bestBid": best_bid,
            "bestAsk": best_ask,
            "umaResolutionStatuses": "[]",
        }
        if m.condition_id in self.odd_markets:
            body["clobTokenIds"] = 12345
        if with_event:
            # As in the real capture: the embedded event carries tags only on request.
            event = self._gamma_event(m, nested=False)
            if not tags:
                del event["tags"]
            body["events"] = [event]
        return body

    def _gamma_event(self, m: _Market, *, nested: bool) -> dict[str, Any]:
        event: dict[str, Any] = {
            "id": m.event_id,
            "ticker": m.event_slug,
            "slug": m.event_slug,
            "title": m.event_title,
            "description": m.description,
            "startDate": _iso(m.start),
            "endDate": _iso(m.end),
            "active": True,
            "closed": m.closed,
            "archived": False,
            "liquidity": 20328.3747,
            "volume": 0.0,
            "negRisk": False,
            "tags": [
                {
                    "id": str(100 + _CATEGORIES.index(m.category)),
                    "label": m.category,
                    "slug": m.category.lower().replace(" ", "-"),
                }
            ],
        }
        if nested:
            event["markets"] = [
                self._gamma_market(x, with_event=False)
                for x in self.markets
                if x.event_id == m.event_id
            ]
        return event

    def _gamma_filter(self, request: web.Request) -> list[_Market]:
        q = request.query
        chosen = self.markets
        if "active" in q:
            want = q["active"] == "true"
            chosen = [m for m in chosen if m.active == want]
        if "closed" in q:
            want = q["closed"] == "true"
            chosen = [m for m in chosen if m.closed == want]
        if "end_date_min" in q:
            low = datetime.fromisoformat(q["end_date_min"])
            chosen = [m for m in chosen if m.end >= low]
        if "end_date_max" in q:
            high = datetime.fromisoformat(q["end_date_max"])
            chosen = [m for m in chosen if m.end <= high]
        tokens = _multi(request, "clob_token_ids")
        if tokens:
            chosen = [m for m in chosen if m.yes in tokens or m.no in tokens]
        conditions = _multi(request, "condition_ids")
        if conditions:
            chosen = [m for m in chosen if m.condition_id in conditions]
        tags = _multi(request, "tag_slug")
        if tags:
            chosen = [m for m in chosen if m.category.lower().replace(" ", "-") in tags]
        return chosen

    @staticmethod
    def _page(request: web.Request, items: list[Any], cap: int) -> list[Any] | web.Response:
        try:
            limit = min(int(request.query.get("limit", "20")), cap)
            offset = int(request.query.get("offset", "0"))
        except ValueError:
            return web.json_response({"error": "invalid limit or offset"}, status=400)
        if offset > 10_000:
            return web.json_response({"error": "offset too large"}, status=422)
        return items[offset : offset + limit]

    async def _gamma_markets(self, request: web.Request) -> web.StreamResponse:
        self._count("gamma_markets")
        page = self._page(request, self._gamma_filter(request), 100)
        if isinstance(page, web.Response):
            return page
        tags = request.query.get("include_tag") == "true"
        return _json([self._gamma_market(m, tags=tags) for m in page])

    def _event_heads(self, request: web.Request) -> list[_Market]:
        """One market per event (the event's first), in listing order."""
        seen: dict[str, _Market] = {}
        for m in self._gamma_filter(request):
            seen.setdefault(m.event_id, m)
        return list(seen.values())

    async def _gamma_events(self, request: web.Request) -> web.StreamResponse:
        self._count("gamma_events")
        page = self._page(request, self._event_heads(request), 100)
        if isinstance(page, web.Response):
            return page
        return _json([self._gamma_event(m, nested=True) for m in page])

    def _keyset_page(
        self, request: web.Request, items: list[Any], cap: int
    ) -> tuple[list[Any], str | None] | web.Response:
        """A keyset page: ``after_cursor`` in, ``next_cursor`` out (absent on the last page);
        ``offset`` is refused, ``limit`` capped at ``cap``."""
        if self.gamma_keyset == "absent":
            return web.json_response({"error": "not found"}, status=404)
        if "offset" in request.query:
            return web.json_response({"error": "offset is not supported"}, status=400)
        cursor = request.query.get("after_cursor", "")
        try:
            limit = min(int(request.query.get("limit", "20")), cap)
            start = int(base64.b64decode(cursor, validate=True)) if cursor else 0
        except ValueError:
            return web.json_response({"error": "invalid limit or cursor"}, status=400)
        if self.gamma_keyset == "ignore_cursor":
            start = 0
        end = start + max(limit, 1)
        following = base64.b64encode(str(end).encode()).decode() if end < len(items) else None
        return items[start:end], following

    async def _gamma_markets_keyset(self, request: web.Request) -> web.StreamResponse:
        self._count("gamma_markets_keyset")
        page = self._keyset_page(request, self._gamma_filter(request), 100)
        if isinstance(page, web.Response):
            return page
        items, following = page
        tags = request.query.get("include_tag") == "true"
        body: dict[str, Any] = {"markets": [self._gamma_market(m, tags=tags) for m in items]}
        if following is not None:
            body["next_cursor"] = following
        return _json(body)

    async def _gamma_events_keyset(self, request: web.Request) -> web.StreamResponse:
        self._count("gamma_events_keyset")
        page = self._keyset_page(request, self._event_heads(request), 500)
        if isinstance(page, web.Response):
            return page
        items, following = page
        body: dict[str, Any] = {"events": [self._gamma_event(m, nested=True) for m in items]}
        if following is not None:
            body["next_cursor"] = following
        return _json(body)

    # -- REST: CLOB ---------------------------------------------------------------------------

    def _book_body(self, token: str) -> dict[str, Any]:
        book = self.books[token]
        body: dict[str, Any] = {
            "market": book.market,
            "asset_id": token,
            "timestamp": str(book.ts_ms),
            "hash": "",
            # Best level last, as the venue sends it.
            "bids": [
                {"price": _PRICE[t], "size": _size_text(s)} for t, s in sorted(book.bids.items())
            ],
            "asks": [
                {"price": _PRICE[t], "size": _size_text(s)}
                for t, s in sorted(book.asks.items(), reverse=True)
            ],
            "min_order_size": "5",
            "tick_size": book.tick_size,
            "neg_risk": False,
            "last_trade_price": _PRICE[book.last_trade] if book.last_trade is not None else "0.5",
        }
        text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
        body["hash"] = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()
        return body

    async def _book(self, request: web.Request) -> web.StreamResponse:
        self._count("book")
        token = request.query.get("token_id", "")
        if token not in self.books:
            return web.json_response(
                {"error": "No orderbook exists for the requested token id"}, status=404
            )
        return _json(self._book_body(token))

    async def _books(self, request: web.Request) -> web.StreamResponse:
        self._count("books")
        try:
            wanted = [item["token_id"] for item in await request.json()]
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": "Invalid payload"}, status=400)
        return _json([self._book_body(t) for t in wanted if t in self.books])

    async def _midpoint(self, request: web.Request) -> web.StreamResponse:
        book = self.books.get(request.query.get("token_id", ""))
        if book is None:
            return web.json_response({"error": "Invalid token id"}, status=400)
        return _json({"mid": _trim((max(book.bids) + min(book.asks)) / 200)})

    async def _time(self, _request: web.Request) -> web.StreamResponse:
        return web.Response(text=str(int(time.time())))

    async def _prices_history(self, request: web.Request) -> web.StreamResponse:
        self._count("prices_history")
        q = request.query
        token = q.get("market", "")
        if token not in self.books:
            return web.json_response({"error": "Invalid market"}, status=400)
        now = int(time.time())
        end = int(q.get("endTs", now))
        start = int(q.get("startTs", end - 86_400))
        step = max(1, int(q.get("fidelity", "1"))) * 60
        base = (max(self.books[token].bids) + min(self.books[token].asks)) / 200
        phase = int(token[-6:]) % 360
        history = [
            {
                "t": t,
                "p": round(min(0.99, max(0.01, base + 0.05 * math.sin((t // 60 + phase) / 37))), 3),
            }
            for t in range(start - start % step, end + 1, step)
            if t >= start
        ]
        return _json({"history": history})

    # -- REST: Data API ------------------------------------------------------------------------

    async def _health(self, _request: web.Request) -> web.StreamResponse:
        return _json({"data": "OK"})

    def _trade_rows(self, request: web.Request) -> list[dict[str, Any]]:
        q = request.query
        rows = self.trades
        user = q.get("user", "").lower()
        if user:
            rows = [r for r in rows if r["proxyWallet"] == user]
        markets = _multi(request, "market")
        if markets:
            rows = [r for r in rows if r["conditionId"] in markets]
        if q.get("side") in ("BUY", "SELL"):
            rows = [r for r in rows if r["side"] == q["side"]]
        if q.get("filterType") == "CASH" and "filterAmount" in q:
            floor = float(q["filterAmount"])
            rows = [r for r in rows if r["size"] * r["price"] >= floor]
        elif q.get("filterType") == "TOKENS" and "filterAmount" in q:
            floor = float(q["filterAmount"])
            rows = [r for r in rows if r["size"] >= floor]
        return rows

    async def _data_trades(self, request: web.Request) -> web.StreamResponse:
        self._count("data_trades")
        rows = list(reversed(self._trade_rows(request)))  # newest first
        page = self._page(request, rows, 10_000) if "limit" in request.query else rows[:100]
        if isinstance(page, web.Response):
            return page
        return _json(page)

    async def _activity(self, request: web.Request) -> web.StreamResponse:
        self._count("activity")
        q = request.query
        if not q.get("user"):
            return web.json_response({"error": "user is required"}, status=400)
        rows = self._trade_rows(request)
        if "start" in q:
            rows = [r for r in rows if r["timestamp"] >= int(q["start"])]
        if "end" in q:
            rows = [r for r in rows if r["timestamp"] <= int(q["end"])]
        if q.get("sortDirection", "DESC") != "ASC":
            rows = list(reversed(rows))
        page = self._page(request, rows, 500)
        if isinstance(page, web.Response):
            return page
        return _json([_activity_row(r) for r in page])

    def positions(self, wallet: str) -> dict[str, dict[str, Any]]:
        """Ground truth: ``wallet``'s holdings by token, from its trades (a sale never goes
        below zero: a wallet cannot sell what it does not hold), rows as ``/positions``."""
        held: dict[str, dict[str, Any]] = {}
        for row in self.trades:
            if row["proxyWallet"] != wallet:
                continue
            token = row["asset"]
            pos = held.setdefault(token, {"size": 0.0, "cost": 0.0, "row": row})
            if row["side"] == "BUY":
                pos["size"] += row["size"]
                pos["cost"] += row["size"] * row["price"]
            else:
                keep = max(0.0, pos["size"] - row["size"])
                pos["cost"] *= keep / pos["size"] if pos["size"] else 0.0
                pos["size"] = keep
        out = {}
        for token, pos in held.items():
            size = round(pos["size"], 2)
            if size < 1:  # the venue's default sizeThreshold
                continue
            row = pos["row"]
            market = self.market_of[token]
            out[token] = {
                "proxyWallet": wallet, "asset": token, "conditionId": row["conditionId"],
                "size": size, "avgPrice": round(pos["cost"] / pos["size"], 4),
                "curPrice": (max(self.books[token].bids) if self.books[token].bids else 0) / 100,
                "title": row["title"], "slug": row["slug"], "eventSlug": row["eventSlug"],
                "outcome": row["outcome"], "outcomeIndex": row["outcomeIndex"],
                "oppositeAsset": self.partner[token], "endDate": _iso(market.end),
                "redeemable": False, "mergeable": False, "negativeRisk": False,
            }  # fmt: skip
        return out

    async def _positions(self, request: web.Request) -> web.StreamResponse:
        self._count("positions")
        user = request.query.get("user", "").lower()
        if not user:
            return web.json_response({"error": "user is required"}, status=400)
        page = self._page(request, list(self.positions(user).values()), 500)
        return page if isinstance(page, web.Response) else _json(page)

    def _count(self, endpoint: str) -> None:
        self.requests[endpoint] = self.requests.get(endpoint, 0) + 1

    # -- WebSocket ------------------------------------------------------------------------------

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        return await self.sockets.serve(request, _Client(), self._on_client_text)

    async def _on_client_text(self, sock: _Socket, text: str) -> None:
        conn = sock.state
        conn.last_heard = time.monotonic()
        if text == "PING":
            if not conn.subscribed:
                # The venue treats a heartbeat before any subscription as a policy
                # violation and closes; a client that pings first loops forever.
                self.truth.record("ping_before_subscribe", conn=sock.number)
                await sock.ws.close(code=1008, message=b"subscribe first")
            else:
                self.sockets.reply(sock, "PONG")
            return
        try:
            data = json.loads(text)
        except ValueError:
            self.sockets.reply(sock, "INVALID OPERATION")
            return
        if not isinstance(data, dict) or not isinstance(data.get("assets_ids"), list):
            self.sockets.reply(sock, "INVALID OPERATION")
            return
        assets = [a for a in data["assets_ids"] if isinstance(a, str)]
        operation = data.get("operation")
        if operation == "unsubscribe":
            conn.assets.difference_update(assets)
            conn.stalled.difference_update(assets)
            return
        if operation is None and str(data.get("type", "")).lower() != "market":
            self.sockets.reply(sock, "INVALID OPERATION")
            return
        conn.subscribed = True
        conn.custom = conn.custom or bool(data.get("custom_feature_enabled"))
        room = self.max_assets_per_connection - len(conn.assets)
        new = [a for a in assets if a not in conn.assets]
        if len(new) > room:
            self.truth.record("asset_cap_exceeded", requested=len(new), room=room)
            new = new[: max(room, 0)]
        conn.assets.update(new)
        self.truth.record(
            "subscribe",
            assets=len(new),
            total=len(conn.assets),
            initial_dump=bool(data.get("initial_dump")),
        )
        if data.get("initial_dump") and new:
            dump = [self._book_msg(a) for a in new if a in self.books]
            if dump:
                self.sockets.reply(sock, _encode(dump).decode())

    async def _watch_clients(self) -> None:
        """Close connections whose client stopped sending (no PING), as the venue does."""
        while True:
            await asyncio.sleep(min(1.0, self.client_timeout / 3))
            limit = time.monotonic() - self.client_timeout
            for sock in self.sockets:
                if sock.state.last_heard < limit and not sock.closed:
                    self.truth.record("ws_idle_close", conn=sock.number)
                    await sock.ws.close(code=1000, message=b"idle")

    async def _user_ws(self, request: web.Request) -> web.StreamResponse:
        return await self.user_sockets.serve(request, _UserClient(), self._on_user_text)

    async def _on_user_text(self, sock: SimSocket[_UserClient], text: str) -> None:
        conn = sock.state
        if text == "PING":
            self.user_sockets.reply(sock, "PONG")
            return
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("markets"), list):
            self.user_sockets.reply(sock, "INVALID OPERATION")
            return
        markets = {m for m in data["markets"] if isinstance(m, str)}
        if not conn.authed:
            auth = data.get("auth")
            given = tuple(auth.get(k) for k in ("apiKey", "secret", "passphrase")) if isinstance(
                auth, dict) else ()  # fmt: skip
            if given != self.credentials:
                self.truth.record("ws_auth_failed", conn=sock.number)
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await sock.ws.send_str("UNAUTHORIZED")
                await sock.ws.close(code=1008, message=b"unauthorized")
                return
            conn.authed = True
        if data.get("operation") == "unsubscribe":
            conn.markets.difference_update(markets)
        else:
            conn.markets.update(markets)
        self.truth.record("user_subscribe", conn=sock.number, markets=len(conn.markets))

    def _account_trade(self, market: _Market, token: str, side: str, price: str,
                       size: str, ts_ms: int, tx: str) -> None:  # fmt: skip
        """The account was this trade's taker: its order placed, matched in full, confirmed."""
        self._account_trades += 1
        order_id = f"0x{hashlib.sha256(tx.encode()).hexdigest()}"
        trade_id = f"sim-{self._account_trades}"
        key = self.credentials[0]
        outcome = "Yes" if token == market.yes else "No"
        wallet, seconds = f"0x{tx[-40:]}", str(ts_ms // 1000)
        # Every key of the real captures (order_placement, user_trade1), same JSON types.
        order = {"event_type": "order", "type": "PLACEMENT", "id": order_id,
                 "market": market.condition_id, "asset_id": token, "side": side, "price": price,
                 "original_size": size, "size_matched": "0", "outcome": outcome, "owner": key,
                 "order_owner": key, "maker_address": wallet, "order_type": "GTC",
                 "expiration": "0", "status": "LIVE", "created_at": seconds,
                 "timestamp": str(ts_ms), "associate_trades": None}  # fmt: skip
        maker = {"order_id": f"0x{tx[2:66]}", "owner": "someone-else", "maker_address": wallet,
                 "matched_amount": size, "price": price, "fee_rate_bps": "0", "asset_id": token,
                 "outcome": outcome}  # fmt: skip
        trade = {"event_type": "trade", "type": "TRADE", "id": trade_id,
                 "taker_order_id": order_id, "market": market.condition_id, "asset_id": token,
                 "side": side, "size": size, "price": price, "fee_rate_bps": "0",
                 "match_time": seconds, "last_update": seconds, "timestamp": str(ts_ms),
                 "outcome": outcome, "owner": key, "trade_owner": key, "maker_address": wallet,
                 "transaction_hash": tx, "bucket_index": 0, "trader_side": "TAKER",
                 "status": "MATCHED", "maker_orders": [maker]}  # fmt: skip
        frames = [order, trade, {**order, "type": "UPDATE", "status": "MATCHED",
                                 "size_matched": size, "associate_trades": [trade_id]},
                  {**trade, "status": "CONFIRMED"}]  # fmt: skip
        for sock in self.user_sockets:
            if sock.state.authed and market.condition_id in sock.state.markets:
                for frame in frames:
                    self.user_sockets.publish(sock, _encode(frame).decode())
        self.truth.record("account_order", order_id=order_id, instrument=token, status="resting",
                          filled="0")  # fmt: skip
        self.truth.record("account_order", order_id=order_id, instrument=token,
                          status="executed", filled=size)  # fmt: skip
        self.truth.record("account_fill", fill_id=f"{trade_id}:{order_id}", order_id=order_id,
                          instrument=token, side=side.lower(), price=price, size=size)  # fmt: skip

    def _book_msg(self, token: str) -> dict[str, Any]:
        book = self.books[token]
        body = self._book_body(token)
        return {
            "event_type": "book",
            "market": book.market,
            "asset_id": token,
            "bids": body["bids"],
            "asks": body["asks"],
            "timestamp": body["timestamp"],
            "hash": body["hash"],
        }

    def _broadcast(
        self,
        assets: Sequence[str],
        build: Callable[[Sequence[str]], str],
        *,
        custom_only: bool = False,
    ) -> None:
        """Publish a frame to each socket subscribed to any of ``assets``.

        ``build(wanted)`` returns the frame text restricted to the assets that
        socket follows.
        """
        full: str | None = None
        for sock in self.sockets:
            conn = sock.state
            if custom_only and not conn.custom:
                continue
            wanted = [a for a in assets if a in conn.assets and a not in conn.stalled]
            if not wanted:
                continue
            if len(wanted) == len(assets):
                if full is None:
                    full = build(assets)
                text = full
            else:
                text = build(wanted)
            self.sockets.publish(sock, text)

    def undelivered(self, conn: int, frames: list[str]) -> None:
        """Each trade print among ``frames`` is a ``trade_undelivered`` for socket ``conn``."""
        for frame in frames:
            if '"last_trade_price"' not in frame:
                continue
            try:
                msg = json.loads(frame)
            except ValueError:
                continue  # a garbled copy (malformed fault): the intact one is counted
            if isinstance(msg, dict) and msg.get("event_type") == "last_trade_price":
                self.truth.record("trade_undelivered", conn=conn, token_id=msg.get("asset_id"),
                                  transaction_hash=msg.get("transaction_hash"))  # fmt: skip

    def _listeners(self, token: str) -> int:
        return sum(1 for sock in self.sockets if token in sock.state.assets)

    def malformed(self, frame: str) -> str:
        """One of the garbled shapes the venue has been seen to send (or a cut-off frame)."""
        kind = self.rng.randrange(3)
        if kind == 0:
            return frame[: len(frame) // 2]
        if kind == 1:
            return json.dumps({"event_type": "sim_mystery", "timestamp": "0"})
        return json.dumps([{"event_type": "price_change", "timestamp": "0"}])

    # -- activity ---------------------------------------------------------------------------------

    async def on_start(self) -> None:
        self.spawn(self.pace(self.step, self.events_per_second))
        self.spawn(self._watch_clients())

    async def on_stop(self) -> None:
        await self.user_sockets.close_all()

    def step(self) -> Awaitable[None] | None:
        """One unit of venue activity, drawn from the seeded RNG.

        A market whose clock already runs :data:`_MAX_LEAD_MS` ahead of the wall clock
        (more than 1,000 events of it a second) has its event when the wall clock has
        caught up: a venue never stamps its events in the future.
        """
        self.events_emitted += 1
        rng = self.rng
        open_markets = [m for m in self.markets if not m.closed]
        if not open_markets:
            return None
        market = open_markets[rng.randrange(len(open_markets))]
        lead = market.clock_ms - time.time_ns() // 1_000_000
        if lead >= _MAX_LEAD_MS:
            return self._step_later(market, lead / 1000)
        self._step_in(market)
        return None

    async def _step_later(self, market: _Market, delay: float) -> None:
        await asyncio.sleep(delay)
        self._step_in(market)

    def _step_in(self, market: _Market) -> None:
        rng = self.rng
        roll = rng.random()
        if roll < 0.70:
            self._random_change(market)
        elif roll < 0.85:
            self._trade(market)
        elif roll < 0.95:
            self._best_bid_ask(market.yes if rng.random() < 0.5 else market.no)
        else:
            token = market.yes if rng.random() < 0.5 else market.no
            self._broadcast([token], lambda _w: _encode(self._book_msg(token)).decode())

    def _random_change(self, market: _Market) -> None:
        rng = self.rng
        book = self.books[market.yes]
        bid_side = rng.random() < 0.5
        levels = book.bids if bid_side else book.asks
        action = rng.random()
        if action < 0.2 and len(levels) > 2:
            tick = list(levels)[rng.randrange(len(levels))]
            size = 0
        elif action < 0.5 and len(levels) < _MAX_LEVELS:
            if bid_side:
                free = [
                    t for t in range(max(1, min(book.asks) - 15), min(book.asks)) if t not in levels
                ]
            else:
                free = [
                    t
                    for t in range(max(book.bids) + 1, min(99, max(book.bids) + 15) + 1)
                    if t not in levels
                ]
            if not free:
                return
            tick = free[rng.randrange(len(free))]
            size = rng.randrange(100, 500_000)
        else:
            tick = list(levels)[rng.randrange(len(levels))]
            size = rng.randrange(100, 500_000)
        skip = self.chance(self.faults.skip_update_rate)
        self._change(market, bid_side, tick, size, send=not skip)
        if skip:
            # The venue's books carry no sequence: the change is made and told to nobody.
            self.truth.record("sequence_skip", instrument=market.yes, conn=None,
                              instruments=[market.yes, market.no], tick=tick,
                              listeners=self._listeners(market.yes))  # fmt: skip

    def _change(
        self, market: _Market, yes_bid: bool, tick: int, size: int, *, send: bool = True
    ) -> None:
        """Set one YES level (and its mirror on NO) and publish the paired price_change."""
        yes, no = self.books[market.yes], self.books[market.no]
        ts = self._tick_ms(market)
        own, mirror = (yes.bids, no.asks) if yes_bid else (yes.asks, no.bids)
        if size:
            own[tick] = size
            mirror[100 - tick] = size
        else:
            own.pop(tick, None)
            mirror.pop(100 - tick, None)
        yes.ts_ms = no.ts_ms = ts
        if not send:
            return
        size_text = _size_text(size)
        items = {
            market.yes: self._item(
                market.yes, yes, tick, size_text, "BUY" if yes_bid else "SELL", ts
            ),
            market.no: self._item(
                market.no, no, 100 - tick, size_text, "SELL" if yes_bid else "BUY", ts
            ),
        }
        head = {"event_type": "price_change", "market": market.condition_id}

        def build(wanted: Sequence[str]) -> str:
            return _encode(
                {**head, "price_changes": [items[a] for a in wanted], "timestamp": str(ts)}
            ).decode()

        self._broadcast([market.yes, market.no], build)

    @staticmethod
    def _item(token: str, book: _Book, tick: int, size: str, side: str, ts: int) -> dict[str, str]:
        digest = hashlib.sha1(
            f"{token}{ts}{tick}{size}".encode(), usedforsecurity=False
        ).hexdigest()
        return {
            "asset_id": token,
            "price": _PRICE[tick],
            "size": size,
            "side": side,
            "hash": digest,
            "best_bid": _PRICE[max(book.bids)],
            "best_ask": _PRICE[min(book.asks)],
        }

    def _trade(self, market: _Market) -> None:
        rng = self.rng
        token = market.yes if rng.random() < 0.5 else market.no
        buy = rng.random() < 0.5
        yes = self.books[market.yes]
        # Which YES side the taker hits: buying YES or selling NO lifts YES asks.
        hits_yes_ask = buy == (token == market.yes)
        levels = yes.asks if hits_yes_ask else yes.bids
        tick = min(levels) if hits_yes_ask else max(levels)
        whale = rng.random() < self.whale_rate and bool(self.whale_wallets)
        wallet = (
            self.whale_wallets[rng.randrange(len(self.whale_wallets))]
            if whale
            else self._wallets[rng.randrange(len(self._wallets))]
        )
        own_tick = tick if token == market.yes else 100 - tick
        if whale:
            # A whale first finds (or makes) size at the top: notional well above 10k USDC.
            needed = int(30_000 / max(own_tick / 100, 0.01) * 100) + rng.randrange(0, 100_000)
            self._change(market, not hits_yes_ask, tick, max(levels[tick], needed + 100))
        available = levels[tick]
        if available <= 100:
            return
        size = available - 100 if whale else min(available - 100, rng.randrange(100, 200_000))
        remaining = available - size
        tx = f"0x{rng.getrandbits(256):064x}"
        ts = self._tick_ms(market)
        price = _PRICE[own_tick]
        size_text = _size_text(size)
        side = "BUY" if buy else "SELL"
        self._change(market, not hits_yes_ask, tick, remaining)
        self.books[token].last_trade = own_tick
        msg = {
            "event_type": "last_trade_price",
            "market": market.condition_id,
            "asset_id": token,
            "fee_rate_bps": "0",
            "price": price,
            "side": side,
            "size": size_text,
            "timestamp": str(ts),
            "transaction_hash": tx,
        }
        outcome_index = 0 if token == market.yes else 1
        row = {
            "proxyWallet": wallet,
            "side": side,
            "asset": token,
            "conditionId": market.condition_id,
            "size": size / 100,
            "price": own_tick / 100,
            "timestamp": ts // 1000,
            "title": market.question,
            "slug": market.slug,
            "icon": "https://polymarket-upload.s3.us-east-2.amazonaws.com/sim.png",
            "eventSlug": market.event_slug,
            "outcome": "Yes" if outcome_index == 0 else "No",
            "outcomeIndex": outcome_index,
            "name": "",
            "pseudonym": f"Sim-Trader-{wallet[2:8]}",
            "bio": "",
            "profileImage": "",
            "profileImageOptimized": "",
            "transactionHash": tx,
        }
        self.trades.append(row)
        market.volume += size * own_tick / 10_000
        self._broadcast([token], lambda _w: _encode(msg).decode())
        if self.account_every and len(self.trades) % self.account_every == 0:
            self._account_trade(market, token, side, price, size_text, ts, tx)
        self.truth.record_trade(
            {
                "instrument": token,
                "token_id": token,
                "market": market.condition_id,
                "price": price,
                "size": size_text,
                "side": side,
                "timestamp_ms": ts,
                "transaction_hash": tx,
                "wallet": wallet,
                "whale": whale,
                "sent_ns": time.time_ns(),
            }
        )

    def _best_bid_ask(self, token: str) -> None:
        book = self.books[token]
        bid, ask = max(book.bids), min(book.asks)
        msg = {
            "event_type": "best_bid_ask",
            "market": book.market,
            "asset_id": token,
            "best_bid": _PRICE[bid],
            "best_ask": _PRICE[ask],
            "spread": _PRICE[ask - bid],
            "timestamp": str(self._tick_ms(self.market_of[token])),
        }
        self._broadcast([token], lambda _w: _encode(msg).decode(), custom_only=True)

    # -- scenario controls --------------------------------------------------------

    async def change_tick_size(self, token: str, new: str = "0.001") -> None:
        """Announce a tick-size change (the book grid itself stays on 0.01 ticks)."""
        book = self.books[token]
        old, book.tick_size = book.tick_size, new
        msg = {
            "event_type": "tick_size_change",
            "market": book.market,
            "asset_id": token,
            "new_tick_size": new,
            "old_tick_size": old,
            "timestamp": str(self._tick_ms(self.market_of[token])),
        }
        self.truth.record("tick_size_change", token=token)
        self._broadcast([token], lambda _w: _encode(msg).decode())

    async def stall(self, token: str) -> None:
        """Stop delivering ``token`` to its subscribers while their sockets stay up -- the
        venue's best-known failure; subscribing to it again ends the stall."""
        for sock in self.sockets:
            if token in sock.state.assets:
                sock.state.stalled.add(token)
                self.truth.record("subscription_stall", conn=sock.number, token=token)

    async def send_raw(self, token: str, text: str) -> None:
        """Send ``text`` as it is to the subscribers of ``token``: a scripted venue mistake
        (a change the books disagree with), which the books do not reflect."""
        self.truth.record("raw_frame", token=token)
        self._broadcast([token], lambda _w: text)

    async def set_level(
        self, token: str, bid: bool, price_tick: int, size_cents: int, *, send: bool = True
    ) -> None:
        """Set one level of ``token``'s book (a scripted change with its paired mirror).

        ``send=False`` changes the book without telling anyone: a lost update.
        """
        market = self.market_of[token]
        if token == market.yes:
            self._change(market, bid, price_tick, size_cents, send=send)
        else:
            self._change(market, not bid, 100 - price_tick, size_cents, send=send)

    async def resolve(self, token: str) -> None:
        """Resolve the market of ``token`` with ``token`` as the winner."""
        market = self.market_of[token]
        market.closed = True
        market.updated = datetime.now(UTC)
        msg = {
            "event_type": "market_resolved",
            "id": market.id,
            "market": market.condition_id,
            "assets_ids": [market.yes, market.no],
            "winning_asset_id": token,
            "winning_outcome": "Yes" if token == market.yes else "No",
            "timestamp": str(self._tick_ms(market)),
            "tags": [market.category.lower()],
        }
        self._broadcast([market.yes, market.no], lambda _w: _encode(msg).decode(), custom_only=True)

    async def inject_print(
        self, token: str, price: str, size: str | None, *, age_seconds: float = 0.0
    ) -> str:
        """Publish one ``last_trade_price`` exactly as given; returns its transaction hash.

        For quality scenarios: an old print (``age_seconds`` > the staleness
        limit), a print without ``size`` (the venue sometimes omits it), a print
        far from the book. Books are not moved. Prints with a size are recorded
        as ground-truth trades like any other.
        """
        market = self.market_of[token]
        tx = f"0x{self.rng.getrandbits(256):064x}"
        ts = self._tick_ms(market) - int(age_seconds * 1000)
        msg: dict[str, str] = {
            "event_type": "last_trade_price",
            "market": market.condition_id,
            "asset_id": token,
            "fee_rate_bps": "0",
            "price": price,
            "side": "BUY",
            "timestamp": str(ts),
            "transaction_hash": tx,
        }
        if size is not None:
            msg["size"] = size
        self._broadcast([token], lambda _w: _encode(msg).decode())
        self.truth.record("injected_print", token=token, price=price, size=size, age=age_seconds)
        if size is not None:
            self.truth.record_trade(
                {"instrument": token, "token_id": token, "market": market.condition_id,
                 "price": price, "size": size, "side": "BUY", "timestamp_ms": ts,
                 "transaction_hash": tx, "wallet": None, "whale": False, "sent_ns": time.time_ns()}
            )  # fmt: skip
        return tx

    def edit_rules(self, token: str, text: str) -> None:
        """Change a market's rules text (Gamma ``description``), as venues sometimes do."""
        market = self.market_of[token]
        market.description = text
        market.updated = datetime.now(UTC)

    # -- wiring -----------------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/markets", self._gamma_markets)
        app.router.add_get("/events", self._gamma_events)
        app.router.add_get("/markets/keyset", self._gamma_markets_keyset)
        app.router.add_get("/events/keyset", self._gamma_events_keyset)
        app.router.add_get("/book", self._book)
        app.router.add_post("/books", self._books)
        app.router.add_get("/midpoint", self._midpoint)
        app.router.add_get("/time", self._time)
        app.router.add_get("/prices-history", self._prices_history)
        app.router.add_get("/trades", self._data_trades)
        app.router.add_get("/activity", self._activity)
        app.router.add_get("/positions", self._positions)
        app.router.add_get("/", self._health)
        app.router.add_get("/ws/market", self._ws)
        app.router.add_get("/ws/user", self._user_ws)

    def urls(self) -> dict[str, str]:
        return {
            "gamma": self.base_url,
            "clob": self.base_url,
            "data": self.base_url,
            "ws": f"{self.ws_base_url}/ws/market",
            "user_ws": f"{self.ws_base_url}/ws/user",
        }


def _trim(value: float) -> str:
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return text or "0"


def _multi(request: web.Request, key: str) -> set[str]:
    """A list filter given as repeated keys or comma-joined (the venue accepts both)."""
    return {part for value in request.query.getall(key, []) for part in value.split(",") if part}


def _json(data: Any) -> web.Response:
    return web.Response(body=_encode(data), content_type="application/json")


def _activity_row(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "proxyWallet": row["proxyWallet"],
        "timestamp": row["timestamp"],
        "conditionId": row["conditionId"],
        "type": "TRADE",
        "size": row["size"],
        "usdcSize": round(row["size"] * row["price"], 6),
        "transactionHash": row["transactionHash"],
        "price": row["price"],
        "asset": row["asset"],
        "side": row["side"],
        "outcomeIndex": row["outcomeIndex"],
        "title": row["title"],
        "slug": row["slug"],
        "icon": row["icon"],
        "eventSlug": row["eventSlug"],
        "outcome": row["outcome"],
        "name": row["name"],
        "pseudonym": row["pseudonym"],
        "bio": row["bio"],
        "profileImage": row["profileImage"],
        "profileImageOptimized": row["profileImageOptimized"],
    }
