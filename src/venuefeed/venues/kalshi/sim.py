"""Kalshi's local twin: Trade API v2 REST and the authenticated WebSocket on 127.0.0.1.

It speaks the wire format of ``shared/docs/venue-protocols.md`` section 2:
cursor pagination ending with ``cursor: ""`` and the documented page caps
(1000 markets/trades, 200 events), bids-only ``orderbook_fp`` books
ascending with the best bid last, the RSA-PSS signed WebSocket handshake,
``subscribed`` acks with a ``sid``, ``orderbook_snapshot`` then signed
``orderbook_delta`` increments numbered by ``seq`` per sid,
``update_subscription``/``get_snapshot``, numbered error envelopes,
protocol Ping frames with body ``heartbeat``, and 429s without
``Retry-After``.

Markets come from :class:`Universe` by index, so 200,000 markets cost
nothing until asked for: market ``i`` is a pure function of ``(seed, i,
anchor)`` -- its tickers come from its index, its times and quotes from a
keyed hash -- and a cursor is just an encoded index. Only books that trading
touched are materialised, in :class:`SimBook`. Prices are integer thousandths
of a dollar ("mills") and sizes integer hundredths of a contract, the venue's
own granularity, so the simulator never does float arithmetic on money. The first
``trading_markets`` open markets (the venue's busy ones) trade from start to
stop whether or not anyone subscribed, and ``/markets/trades`` serves every
trade they printed. Faults: the shared :class:`~venuefeed.sim.faults.Faults`
switches (``skip_update_rate`` skips a ``seq`` of one subscription) plus
:meth:`Simulator.fail_pagination` (failures in the middle of a pagination
run, ``pagination_failure``); a long network failure is a :meth:`stop` and a
:meth:`start` on the same port. Every trade (with ``sent_ns``), every skipped
sequence number and, on stop, the final book of every market that traded are
written to the ground-truth log.
"""

from __future__ import annotations

import base64
import hashlib
import random
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web

from venuefeed.sim.base import Book, Faults, GroundTruth, SimulatorBase
from venuefeed.sim.shared_events import SHARED_EVENTS, SharedEvent, shared_close_ts
from venuefeed.sim.sockets import Heartbeat, SimSocket, Sockets
from venuefeed.venues.kalshi.auth import (
    CredentialsError,
    generate_test_keypair,
    load_public_key,
    public_pem_of,
    verify_request,
)

__all__ = ["REST_PREFIX", "WS_PATH", "Simulator"]

# -- the market model -------------------------------------------------------------

MARKETS_PER_EVENT = 8
EVENTS_PER_SERIES = 25
DAY = 86_400

_CATEGORIES = ("Economics", "Politics", "Climate and Weather", "Financials", "Sports", "Crypto")
_STRUCTURES = ("linear_cent",) * 7 + ("tapered_deci_cent",) * 2 + ("deci_cent",)
_TICKER_RE = re.compile(r"^KXSIM(\d+)-26AUG(\d+)-T(\d+)$")
_EVENT_RE = re.compile(r"^KXSIM(\d+)-26AUG(\d+)$")
_SERIES_RE = re.compile(r"^KXSIM(\d+)$")


def dollars(mills: int, places: int = 4) -> str:
    """Thousandths of a dollar as Kalshi's dollar string: 420 -> ``"0.4200"``."""
    text = f"{mills // 1000}.{mills % 1000:03d}"
    return text + "0" * (places - 3) if places > 3 else text


def fp(hundredths: int) -> str:
    """Hundredths of a contract as a fixed-point count: 1300 -> ``"13.00"``."""
    sign = "-" if hundredths < 0 else ""
    h = abs(hundredths)
    return f"{sign}{h // 100}.{h % 100:02d}"


_days: dict[int, str] = {}


def iso(ts: int) -> str:
    """Unix seconds as ``2026-08-19T15:37:39Z``; the date part is cached (a hot path)."""
    day, secs = divmod(ts, DAY)
    date = _days.get(day)
    if date is None:
        date = datetime.fromtimestamp(day * DAY, UTC).strftime("%Y-%m-%d")
        if len(_days) > 100_000:
            _days.clear()
        _days[day] = date
    hours, rest = divmod(secs, 3600)
    return f"{date}T{hours:02d}:{rest // 60:02d}:{rest % 60:02d}Z"


def encode_cursor(index: int) -> str:
    return base64.urlsafe_b64encode(f"i:{index}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int | None:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    if not text.startswith("i:") or not text[2:].isdigit():
        return None
    return int(text[2:])


def valid_tick(structure: str, mills: int) -> bool:
    """Whether a price is on the market's grid (``getting_started/fixed_point_migration.md``)."""
    if not 1 <= mills <= 999:
        return False
    if structure == "deci_cent":
        return True
    if structure == "tapered_deci_cent" and (mills < 100 or mills > 900):
        return True
    return mills % 10 == 0


@dataclass(frozen=True, slots=True)
class MarketCore:
    """The few attributes of a market that filters and quotes need."""

    index: int
    ticker: str
    event_ticker: str
    series_ticker: str
    open_ts: int
    close_ts: int
    structure: str
    best_yes: int
    best_no: int
    yes_size: int
    no_size: int
    last_price: int
    status: str
    result: str


class SimBook:
    """A live bids-only book (YES and NO) of one market."""

    __slots__ = ("no", "structure", "yes")

    def __init__(self, structure: str, yes: dict[int, int], no: dict[int, int]) -> None:
        self.structure = structure
        self.yes = yes
        self.no = no

    def best(self, side: str) -> int | None:
        levels = self.yes if side == "yes" else self.no
        return max(levels) if levels else None

    def levels(self, side: str, depth: int = 0) -> list[list[str]]:
        """Ascending, best last, as the venue sends them; ``depth`` best levels (0 = all)."""
        levels = self.yes if side == "yes" else self.no
        prices = sorted(levels)
        if depth > 0:
            prices = prices[-depth:]
        return [[dollars(p), fp(levels[p])] for p in prices]

    def canonical(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """The canonical YES book (bids desc, asks asc) as canonical strings, for tests."""
        bids = [
            (_canon(dollars(p)), _canon(fp(self.yes[p]))) for p in sorted(self.yes, reverse=True)
        ]
        asks = [
            (_canon(dollars(1000 - p)), _canon(fp(self.no[p])))
            for p in sorted(self.no, reverse=True)
        ]
        return bids, asks


def _canon(text: str) -> str:
    text = text.rstrip("0").rstrip(".") if "." in text else text
    return text or "0"


class Universe:
    """All series, events and markets of a seeded simulator, by index."""

    def __init__(self, seed: int, markets: int, anchor_ts: int) -> None:
        self.seed = seed
        self.n_markets = markets
        self.n_events = -(-markets // MARKETS_PER_EVENT)
        self.n_series = -(-self.n_events // EVENTS_PER_SERIES)
        self.anchor = anchor_ts
        self.earliest_close = anchor_ts - 20 * DAY
        """No market closes before this (unix seconds)."""
        self._key = seed.to_bytes(8, "little", signed=True)

    # -- tickers -------------------------------------------------------------

    @staticmethod
    def series_ticker(s: int) -> str:
        return f"KXSIM{s:05d}"

    def event_ticker(self, e: int) -> str:
        return f"{self.series_ticker(e // EVENTS_PER_SERIES)}-26AUG{e % EVENTS_PER_SERIES:02d}"

    def market_ticker(self, i: int) -> str:
        return f"{self.event_ticker(i // MARKETS_PER_EVENT)}-T{50 + i % MARKETS_PER_EVENT}"

    def market_index(self, ticker: str) -> int | None:
        m = _TICKER_RE.match(ticker)
        if not m:
            return None
        s, k, t = (int(g) for g in m.groups())
        if k >= EVENTS_PER_SERIES or not 50 <= t < 50 + MARKETS_PER_EVENT:
            return None
        i = (s * EVENTS_PER_SERIES + k) * MARKETS_PER_EVENT + (t - 50)
        return i if i < self.n_markets else None

    def event_index(self, ticker: str) -> int | None:
        m = _EVENT_RE.match(ticker)
        if not m:
            return None
        s, k = int(m.group(1)), int(m.group(2))
        e = s * EVENTS_PER_SERIES + k
        return e if k < EVENTS_PER_SERIES and e < self.n_events else None

    def series_index(self, ticker: str) -> int | None:
        m = _SERIES_RE.match(ticker)
        if not m:
            return None
        s = int(m.group(1))
        return s if s < self.n_series else None

    def event_markets(self, e: int) -> range:
        return range(e * MARKETS_PER_EVENT, min((e + 1) * MARKETS_PER_EVENT, self.n_markets))

    def series_markets(self, s: int) -> range:
        per = MARKETS_PER_EVENT * EVENTS_PER_SERIES
        return range(s * per, min((s + 1) * per, self.n_markets))

    def series_events(self, s: int) -> range:
        return range(s * EVENTS_PER_SERIES, min((s + 1) * EVENTS_PER_SERIES, self.n_events))

    @staticmethod
    def shared(i: int) -> SharedEvent | None:
        """The cross-listed event market ``i`` stands for: the first market of events 0..k."""
        k, rest = divmod(i, MARKETS_PER_EVENT)
        return SHARED_EVENTS[k] if rest == 0 and k < len(SHARED_EVENTS) else None

    # -- markets -------------------------------------------------------------

    def core(self, i: int) -> MarketCore:
        # One keyed hash gives all the draws: ~10x cheaper than seeding a Random per market.
        bits = int.from_bytes(
            hashlib.blake2b(i.to_bytes(8, "little"), digest_size=16, key=self._key).digest(),
            "little",
        )
        bits, close_off = divmod(bits, 60 * DAY // 60)
        bits, open_off = divmod(bits, 44 * 24)
        bits, structure_pick = divmod(bits, len(_STRUCTURES))
        bits, fair_pick = divmod(bits, 88)
        bits, spread_pick = divmod(bits, 4)
        bits, yes_pick = divmod(bits, 499)
        bits, no_pick = divmod(bits, 499)
        close_ts = self.earliest_close + close_off * 60
        open_ts = close_ts - DAY - open_off * 3600
        structure = _STRUCTURES[structure_pick]
        if open_ts > self.anchor:
            status, result = "initialized", ""
        elif close_ts <= self.anchor - DAY:
            status, result = "finalized", ("yes", "no")[bits & 1]
        elif close_ts <= self.anchor:
            status, result = "closed", ""
        else:
            status, result = "active", ""
        fair = 60 + fair_pick * 10
        shared = self.shared(i)
        if shared is not None:  # listed on Polymarket too: open, same close, its own price
            close_ts = shared_close_ts(self.anchor, shared)
            open_ts = self.anchor - 7 * DAY
            status, result, fair = "active", "", shared.kalshi_fair
        half_spread = (10, 10, 20, 30)[spread_pick]
        best_yes = fair - half_spread
        best_no = 1000 - fair - half_spread
        if status != "active" and status != "initialized":
            best_yes_size = best_no_size = 0
        else:
            best_yes_size = (1 + yes_pick) * 100
            best_no_size = (1 + no_pick) * 100
        return MarketCore(
            index=i,
            ticker=self.market_ticker(i),
            event_ticker=self.event_ticker(i // MARKETS_PER_EVENT),
            series_ticker=self.series_ticker(i // (MARKETS_PER_EVENT * EVENTS_PER_SERIES)),
            open_ts=open_ts,
            close_ts=close_ts,
            structure=structure,
            best_yes=best_yes,
            best_no=best_no,
            yes_size=best_yes_size,
            no_size=best_no_size,
            last_price=fair,
            status=status,
            result=result,
        )

    def initial_book(self, core: MarketCore) -> SimBook:
        """Best levels from the core, deeper levels from a book-specific stream."""
        yes: dict[int, int] = {}
        no: dict[int, int] = {}
        if core.yes_size:
            rng = random.Random(f"{self.seed}:{core.index}:book")
            fine = core.structure != "linear_cent"
            sides = ((yes, core.best_yes, core.yes_size), (no, core.best_no, core.no_size))
            for side, best, size in sides:
                side[best] = size
                price = best
                for _ in range(rng.randrange(0, 10)):
                    price -= rng.randrange(1, 4) * (rng.choice((1, 10)) if fine else 10)
                    if price < 1:
                        break
                    if valid_tick(core.structure, price):
                        side[price] = rng.randrange(1, 2000) * 100 + rng.choice((0, 0, 0, 50))
        return SimBook(core.structure, yes, no)

    def market_payload(self, core: MarketCore, book: SimBook | None) -> dict[str, Any]:
        """The market object as ``GET /markets`` returns it (every required field)."""
        if book is not None:
            by, bn = book.best("yes"), book.best("no")
            ys = book.yes[by] if by is not None else 0
            ns = book.no[bn] if bn is not None else 0
        else:
            by, bn, ys, ns = core.best_yes, core.best_no, core.yes_size, core.no_size
            if not ys:
                by = bn = None
        yes_bid = by or 0
        no_bid = bn or 0
        yes_ask = 1000 - bn if bn else 1000
        no_ask = 1000 - by if by else 1000
        t = core.ticker
        strike = 50 + core.index % MARKETS_PER_EVENT
        close = iso(core.close_ts)
        created = iso(core.open_ts - DAY)
        yes_bid_s, yes_ask_s, last_s = dollars(yes_bid), dollars(yes_ask), dollars(core.last_price)
        rules = (
            f"If the simulated index for {core.event_ticker} is above {strike} at "
            f"{close}, then the market resolves to Yes."
        )
        title = f"Will the simulated index be above {strike}?"
        shared = self.shared(core.index)
        if shared is not None:
            title, rules = shared.kalshi_title, shared.kalshi_rules
        return {
            "ticker": t,
            "event_ticker": core.event_ticker,
            "market_type": "binary",
            "title": title,
            "subtitle": f"Above {strike}",
            "yes_sub_title": f"Above {strike}",
            "no_sub_title": f"{strike} or below",
            "created_time": created,
            "updated_time": created,
            "open_time": iso(core.open_ts),
            "close_time": close,
            "expected_expiration_time": iso(core.close_ts + 3600),
            "latest_expiration_time": iso(core.close_ts + 7 * DAY),
            "settlement_timer_seconds": 3600,
            "status": core.status,
            "notional_value_dollars": "1.0000",
            "yes_bid_dollars": yes_bid_s,
            "yes_ask_dollars": yes_ask_s,
            "no_bid_dollars": dollars(no_bid),
            "no_ask_dollars": dollars(no_ask),
            "yes_bid_size_fp": fp(ys),
            "yes_ask_size_fp": fp(ns),
            "last_price_dollars": last_s,
            "previous_yes_bid_dollars": yes_bid_s,
            "previous_yes_ask_dollars": yes_ask_s,
            "previous_price_dollars": last_s,
            "volume_fp": fp((core.index * 7919) % 1_000_000 * 100),
            "volume_24h_fp": fp((core.index * 104729) % 10_000 * 100),
            "open_interest_fp": fp((core.index * 1299709) % 100_000 * 100),
            "liquidity_dollars": "0.0000",
            "result": core.result,
            "can_close_early": True,
            "expiration_value": "",
            "strike_type": "greater",
            "floor_strike": strike,
            "rules_primary": rules,
            "rules_secondary": "Simulated market; see the venuefeed simulator for its rules.",
            "price_level_structure": core.structure,
            "price_ranges": _RANGES[core.structure],
            "exchange_index": 0,
        }

    def event_payload(self, e: int) -> dict[str, Any]:
        s = e // EVENTS_PER_SERIES
        first = self.core(e * MARKETS_PER_EVENT)
        return {
            "event_ticker": self.event_ticker(e),
            "series_ticker": self.series_ticker(s),
            "sub_title": f"On {iso(first.close_ts)[:10]}",
            "title": f"Simulated index level, event {e}",
            "collateral_return_type": "MECNET",
            "mutually_exclusive": False,
            "category": _CATEGORIES[s % len(_CATEGORIES)],
            "strike_date": iso(first.close_ts),
            "available_on_brokers": False,
            "settlement_sources": [{"name": "venuefeed", "url": "https://example.invalid/sim"}],
            "last_updated_ts": iso(self.anchor - DAY),
            "exchange_index": 0,
        }

    def event_status(self, e: int) -> str:
        status = self.core(e * MARKETS_PER_EVENT).status
        return {
            "initialized": "unopened",
            "active": "open",
            "closed": "closed",
            "finalized": "settled",
        }[status]

    def series_payload(self, s: int) -> dict[str, Any]:
        return {
            "ticker": self.series_ticker(s),
            "frequency": ("daily", "weekly", "monthly", "one-off")[s % 4],
            "title": f"Simulated index series {s}",
            "category": _CATEGORIES[s % len(_CATEGORIES)],
            "tags": ["simulated"],
            "settlement_sources": [{"name": "venuefeed", "url": "https://example.invalid/sim"}],
            "contract_url": "https://example.invalid/contract.pdf",
            "contract_terms_url": "https://example.invalid/terms.pdf",
            "fee_type": "quadratic",
            "fee_multiplier": 1,
            "additional_prohibitions": [],
            "product_metadata": None,
            "last_updated_ts": iso(self.anchor - DAY),
        }


_RANGES: dict[str, list[dict[str, str]]] = {
    "linear_cent": [{"start": "0.0000", "end": "1.0000", "step": "0.0100"}],
    "deci_cent": [{"start": "0.0000", "end": "1.0000", "step": "0.0010"}],
    "tapered_deci_cent": [
        {"start": "0.0000", "end": "0.1000", "step": "0.0010"},
        {"start": "0.1000", "end": "0.9000", "step": "0.0100"},
        {"start": "0.9000", "end": "1.0000", "step": "0.0010"},
    ],
}
"""``price_ranges`` per ``price_level_structure`` (shared, never mutated)."""


# -- the venue ----------------------------------------------------------------------

REST_PREFIX = "/trade-api/v2"
WS_PATH = "/trade-api/ws/v2"
MARKETS_LIMIT_MAX = 1000
EVENTS_LIMIT_MAX = 200
SCAN_PER_PAGE = 20_000
"""Indices a filtered /markets page may scan before answering with a partial (never empty) page."""

_PUBLIC_CHANNELS = frozenset({"trade", "ticker", "ticker_v2", "market_lifecycle_v2"})
_PRIVATE_CHANNELS = frozenset({"orderbook_delta", "fill", "user_orders"})
"""Served to signed connections only (error 9 otherwise)."""
_KNOWN_CHANNELS = (
    _PUBLIC_CHANNELS
    | _PRIVATE_CHANNELS
    | {
        "market_positions",
        "communications",
        "order_group_updates",
    }
)
_LIFECYCLE_STATUS = {
    "activated": "active",
    "deactivated": "inactive",
    "determined": "determined",
    "settled": "finalized",
}
"""The REST ``status`` a market has after a lifecycle event."""
_MARKET_STATUS_FILTER = {
    "unopened": "initialized",
    "open": "active",
    "closed": "closed",
    "settled": "finalized",
}
_encode = msgspec.json.encode
_INTERNAL = frozenset({"count", "yes_mills", "ts_ms"})
"""Bookkeeping keys of the simulator's trade records that are not on the wire."""


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


@dataclass(eq=False)
class _Sub:
    sid: int
    channel: str
    tickers: set[str] | None
    seq: int = 0


@dataclass(eq=False)
class _Client:
    """What the venue knows about one WebSocket: who signed it and its subscriptions."""

    authenticated: bool
    subs: dict[int, _Sub] = field(default_factory=dict)
    next_sid: int = 1


_Socket = SimSocket[_Client]


DEMO_KEY_ID = "00000000-0000-4000-8000-0000000000de"
"""Key id the demo's client sends; the simulator checks signatures, not ids."""


class Simulator(SimulatorBase):
    """A seeded local Kalshi. See the module docstring for what it speaks."""

    venue = "kalshi"

    def __init__(
        self,
        *,
        seed: int = 1,
        faults: Faults | None = None,
        ground_truth: GroundTruth | None = None,
        markets: int = 200,
        public_key_pem: bytes | None = None,
        events_per_second: float = 20.0,
        anchor_ts: int | None = None,
        ping_interval: float = 10.0,
        private_key_pem: bytes | None = None,
        trading_markets: int = 100,
        historical_cutoff_ts: int | None = None,
        account_every: int = 4,
    ) -> None:
        super().__init__(seed=seed, faults=faults, ground_truth=ground_truth)
        self._private_key_pem = private_key_pem
        if anchor_ts is None:
            anchor_ts = int(time.time()) // DAY * DAY
        self.universe = Universe(seed, markets, anchor_ts)
        self.cutoff = (
            historical_cutoff_ts if historical_cutoff_ts is not None else (anchor_ts - 365 * DAY)
        )
        """Unix seconds: markets settled and trades made before it are only served by the
        ``/historical`` tier (default: a year back, so nothing the universe holds)."""
        self.public_key = load_public_key(public_key_pem) if public_key_pem else None
        self.events_per_second = events_per_second
        self.books: dict[str, SimBook] = {}
        self.live_trades: dict[str, list[dict[str, Any]]] = {}
        self.sockets: Sockets[_Client] = Sockets(
            self, heartbeat=Heartbeat(ping_interval, b"heartbeat"), max_msg_size=1 << 20
        )
        self.trading = self.market_tickers(trading_markets) if trading_markets > 0 else []
        """Markets whose books and tape move (the first N open ones); 0 = a static venue."""
        self.requests: dict[str, int] = {}
        self.account_every = account_every
        """Every Nth trade is the signed account's own (taker) order: ``fill`` and
        ``user_orders`` frames to its connections; 0 = the account never trades."""
        self._account_trades = 0
        self.lifecycle_status: dict[str, tuple[str, str]] = {}
        """Markets a scenario moved through their lifecycle: ticker -> (REST status, result)."""
        self._page_fail_after: int | None = None
        self._page_fail_count = 0
        self._pages_served = 0

    # -- SimulatorBase -------------------------------------------------------

    @classmethod
    def for_demo(cls, *, seed: int, events_per_second: float) -> Simulator:
        """With a fresh test key pair, so the client signs like it does against Kalshi."""
        private_pem, public_pem = generate_test_keypair()
        return cls(seed=seed, events_per_second=events_per_second, markets=200,
                   public_key_pem=public_pem, private_key_pem=private_pem)  # fmt: skip

    @classmethod
    def standalone(cls, *, key_file: str | None = None, **settings: Any) -> Simulator:
        """Every client must sign, as on Kalshi: with the private key in ``key_file`` (a harness
        that holds its own test key: ``--set key_file=PATH``), else a fresh test key pair;
        ``venuefeed sim kalshi`` prints the key id and where the private key went."""
        if "public_key_pem" not in settings:
            if key_file is not None:
                try:
                    private_pem = Path(key_file).read_bytes()
                    public_pem = public_pem_of(private_pem)
                except (OSError, CredentialsError) as exc:
                    raise ValueError(f"key_file {key_file}: {exc}") from None
            else:
                private_pem, public_pem = generate_test_keypair()
            settings.update(public_key_pem=public_pem, private_key_pem=private_pem)
        return cls(**settings)

    def client_credentials(self) -> dict[str, str]:
        if self._private_key_pem is None:
            return {}
        return {"api_key_id": DEMO_KEY_ID, "private_key": self._private_key_pem.decode()}

    def urls(self) -> dict[str, str]:
        return {"rest": self.base_url + REST_PREFIX, "ws": self.ws_base_url + WS_PATH}

    def routes(self, app: web.Application) -> None:
        app.middlewares.append(self._auth_middleware)
        r = app.router
        r.add_get(REST_PREFIX + "/exchange/status", self._exchange_status)
        r.add_get(REST_PREFIX + "/portfolio/balance", self._balance)
        r.add_get(REST_PREFIX + "/markets", self._markets)
        r.add_get(REST_PREFIX + "/markets/trades", self._trades)
        r.add_get(REST_PREFIX + "/historical/cutoff", self._cutoff)
        r.add_get(REST_PREFIX + "/historical/markets", self._historical_markets)
        r.add_get(REST_PREFIX + "/historical/trades", self._historical_trades)
        r.add_get(REST_PREFIX + "/markets/{ticker}", self._market)
        r.add_get(REST_PREFIX + "/markets/{ticker}/orderbook", self._orderbook)
        r.add_get(REST_PREFIX + "/events", self._events)
        r.add_get(REST_PREFIX + "/events/{ticker}", self._event)
        r.add_get(REST_PREFIX + "/series", self._series_list)
        r.add_get(REST_PREFIX + "/series/{ticker}", self._series)
        r.add_get(
            REST_PREFIX + "/series/{series}/markets/{ticker}/candlesticks", self._candlesticks
        )
        r.add_get(WS_PATH, self._ws)

    def rate_limited_response(self) -> web.Response:
        """Kalshi's 429 carries no ``Retry-After`` (KD ``getting_started/rate_limits.md``)."""
        return web.json_response({"error": "too many requests"}, status=429)

    async def on_start(self) -> None:
        if self.trading:
            self.spawn(self.pace(self._step_any, self.events_per_second))

    def final_books(self) -> dict[str, Book]:
        return {ticker: book.canonical() for ticker, book in self.books.items()}

    # -- scenario controls ---------------------------------------------------

    def fail_pagination(self, after_pages: int, failures: int = 3) -> None:
        """503 for ``failures`` page requests once ``after_pages`` more cursor pages were served."""
        self._page_fail_after = self._pages_served + after_pages
        self._page_fail_count = failures

    def lifecycle(self, ticker: str, event_type: str, result: str = "") -> None:
        """Move ``ticker`` through a lifecycle event: ``market_lifecycle_v2`` to subscribers,
        the REST status to match, and a ``market_lifecycle`` line in the ground truth."""
        core = self.universe.core(self._index(ticker))
        now = int(time.time())
        msg: dict[str, Any] = {
            "market_ticker": ticker,
            "event_type": event_type,
            "open_ts": core.open_ts,
            "close_ts": core.close_ts,
        }
        if event_type == "deactivated":
            msg["is_deactivated"] = True
        if event_type == "determined":
            msg.update(result=result, determination_ts=now)
        if event_type == "settled":
            msg.update(result=result, settled_ts=now)
        status = _LIFECYCLE_STATUS.get(event_type)
        if status is not None:
            self.lifecycle_status[ticker] = (status, result)
        self.truth.record("market_lifecycle", instrument=ticker, event_type=event_type,
                          result=result)  # fmt: skip
        self._publish("market_lifecycle_v2", "market_lifecycle_v2", ticker, msg)

    def _publish(
        self, channel: str, kind: str, ticker: str, msg: dict[str, Any], signed: bool = False
    ) -> None:
        """``msg`` as a ``kind`` frame to every subscription of ``channel`` that covers
        ``ticker`` (of signed connections only, with ``signed``)."""
        for sock in self.sockets:
            if signed and not sock.state.authenticated:
                continue
            for sub in sock.state.subs.values():
                if sub.channel != channel:
                    continue
                if sub.tickers is not None and ticker not in sub.tickers:
                    continue
                frame = {"type": kind, "sid": sub.sid, "msg": msg}
                self.sockets.publish(sock, _encode(frame).decode())

    def _index(self, ticker: str) -> int:
        i = self.universe.market_index(ticker)
        if i is None:
            raise KeyError(ticker)
        return i

    def canonical_book(self, ticker: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """The market's current canonical book (bids desc, asks asc), for comparisons."""
        return self._book(ticker).canonical()

    def market_tickers(self, count: int, status: str = "active") -> list[str]:
        """The first ``count`` market tickers with the given status."""
        out: list[str] = []
        for i in range(self.universe.n_markets):
            core = self.universe.core(i)
            if core.status == status:
                out.append(core.ticker)
                if len(out) == count:
                    break
        return out

    # -- REST ----------------------------------------------------------------

    @web.middleware
    async def _auth_middleware(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        """Verify signed headers wherever a client sends them (public endpoints included)."""
        if request.path == WS_PATH:
            return await handler(request)
        self.requests[request.path] = self.requests.get(request.path, 0) + 1
        if self.public_key is not None and "KALSHI-ACCESS-SIGNATURE" in request.headers:
            why = verify_request(self.public_key, request.headers, request.method, request.path)
            if why is not None:
                return _error(401, "authentication_error", why)
        return await handler(request)

    def _page_fault(self, cursor: str) -> web.Response | None:
        if not cursor:
            return None
        self._pages_served += 1
        if (
            self._page_fail_after is not None
            and self._pages_served > self._page_fail_after
            and self._page_fail_count > 0
        ):
            self._page_fail_count -= 1
            self._pages_served -= 1
            self.truth.record("pagination_failure", cursor=cursor)
            return web.json_response({"error": "internal error"}, status=503)
        return None

    def _book(self, ticker: str) -> SimBook:
        book = self.books.get(ticker)
        if book is None:
            core = self.universe.core(self._index(ticker))
            book = self.books[ticker] = self.universe.initial_book(core)
        return book

    def _market_dict(self, i: int) -> dict[str, Any]:
        return self._payload(self.universe.core(i))

    def _payload(self, core: MarketCore) -> dict[str, Any]:
        """The market as REST shows it, after any lifecycle event a scenario sent."""
        payload = self.universe.market_payload(core, self.books.get(core.ticker))
        changed = self.lifecycle_status.get(core.ticker)
        if changed is not None:
            payload["status"], payload["result"] = changed
        return payload

    async def _exchange_status(self, request: web.Request) -> web.Response:
        return web.json_response({"exchange_active": True, "trading_active": True})

    async def _balance(self, request: web.Request) -> web.Response:
        if "KALSHI-ACCESS-SIGNATURE" not in request.headers:
            return _error(401, "authentication_error", "authentication required")
        return web.json_response({"balance": 0, "portfolio_value": 0, "updated_ts": 0})

    @staticmethod
    def _int(request: web.Request, name: str, default: int | None = None) -> int | None:
        raw = request.query.get(name)
        if raw is None or raw == "":
            return default
        return int(raw)

    def historical(self, core: MarketCore) -> bool:
        """Whether the market settled before the cutoff: then only ``/historical`` has it."""
        return core.status == "finalized" and core.close_ts < self.cutoff

    async def _cutoff(self, request: web.Request) -> web.Response:
        stamp = iso(self.cutoff)
        body = {"market_settled_ts": stamp, "trades_created_ts": stamp, "orders_updated_ts": stamp}
        return web.json_response(body)

    async def _historical_markets(self, request: web.Request) -> web.Response:
        return await self._markets(request, historical=True)

    async def _markets(self, request: web.Request, historical: bool = False) -> web.Response:
        q = request.query
        try:
            limit = self._int(request, "limit", 100)
            min_close = self._int(request, "min_close_ts")
            max_close = self._int(request, "max_close_ts")
        except ValueError:
            return _error(400, "invalid_parameters", "bad integer parameter")
        assert limit is not None
        if not 0 <= limit <= MARKETS_LIMIT_MAX:
            return _error(400, "invalid_parameters", "limit must be between 0 and 1000")
        limit = limit or 100
        status = q.get("status", "")
        if status and status not in _MARKET_STATUS_FILTER and status != "paused":
            return _error(400, "invalid_parameters", f"invalid status {status!r}")
        if (min_close is not None or max_close is not None) and status not in ("", "closed"):
            return _error(
                400,
                "invalid_parameters",
                "close timestamp filters are only compatible with status closed",
            )
        cursor = q.get("cursor", "")
        fault = self._page_fault(cursor)
        if fault is not None:
            return fault
        u = self.universe
        if historical and self.cutoff <= u.earliest_close:  # nothing settled that long ago
            return web.json_response({"markets": [], "cursor": ""})
        indices: Iterable[int]
        if q.get("tickers"):
            found = (u.market_index(t) for t in q["tickers"].split(","))
            indices = sorted({i for i in found if i is not None})
        elif q.get("event_ticker"):
            e = u.event_index(q["event_ticker"])
            indices = u.event_markets(e) if e is not None else range(0)
        elif q.get("series_ticker"):
            s = u.series_index(q["series_ticker"])
            indices = u.series_markets(s) if s is not None else range(0)
        else:
            indices = range(u.n_markets)
        start = 0
        if cursor:
            decoded = decode_cursor(cursor)
            if decoded is None:
                return _error(400, "invalid_cursor", "invalid cursor")
            start = decoded
        want = _MARKET_STATUS_FILTER.get(status) if status else None
        out: list[dict[str, Any]] = []
        next_cursor = ""
        scanned = 0
        for i in indices:
            if i < start:
                continue
            if len(out) >= limit or (out and scanned >= SCAN_PER_PAGE):
                next_cursor = encode_cursor(i)
                break
            scanned += 1
            core = u.core(i)
            if self.historical(core) is not historical:
                continue
            if want is not None and core.status != want:
                continue
            if min_close is not None and core.close_ts < min_close:
                continue
            if max_close is not None and core.close_ts > max_close:
                continue
            out.append(self._payload(core))
        return web.Response(
            body=_encode({"markets": out, "cursor": next_cursor}), content_type="application/json"
        )

    async def _market(self, request: web.Request) -> web.Response:
        i = self.universe.market_index(request.match_info["ticker"])
        if i is None:
            return _error(404, "not_found", "market not found")
        return web.Response(
            body=_encode({"market": self._market_dict(i)}), content_type="application/json"
        )

    async def _orderbook(self, request: web.Request) -> web.Response:
        try:
            depth = self._int(request, "depth", 0) or 0
        except ValueError:
            return _error(400, "invalid_parameters", "bad depth")
        if depth > 100:
            return _error(400, "invalid_parameters", "depth must be between 0 and 100")
        try:
            book = self._book(request.match_info["ticker"])
        except KeyError:
            return _error(404, "not_found", "market not found")
        body = {
            "orderbook_fp": {
                "yes_dollars": book.levels("yes", depth),
                "no_dollars": book.levels("no", depth),
            }
        }
        return web.Response(body=_encode(body), content_type="application/json")

    async def _events(self, request: web.Request) -> web.Response:
        q = request.query
        try:
            limit = self._int(request, "limit", EVENTS_LIMIT_MAX)
        except ValueError:
            return _error(400, "invalid_parameters", "bad limit")
        assert limit is not None
        if not 1 <= limit <= EVENTS_LIMIT_MAX:
            return _error(400, "invalid_parameters", "limit must be between 1 and 200")
        cursor = q.get("cursor", "")
        fault = self._page_fault(cursor)
        if fault is not None:
            return fault
        u = self.universe
        indices: Iterable[int] = range(u.n_events)
        if q.get("series_ticker"):
            s = u.series_index(q["series_ticker"])
            indices = u.series_events(s) if s is not None else range(0)
        start = decode_cursor(cursor) if cursor else 0
        if start is None:
            return _error(400, "invalid_cursor", "invalid cursor")
        status = q.get("status", "")
        nested = q.get("with_nested_markets") == "true"
        out: list[dict[str, Any]] = []
        next_cursor = ""
        for e in indices:
            if e < start:
                continue
            if len(out) >= limit:
                next_cursor = encode_cursor(e)
                break
            if status and u.event_status(e) != status:
                continue
            event = u.event_payload(e)
            if nested:
                event["markets"] = [self._market_dict(i) for i in u.event_markets(e)]
            out.append(event)
        return web.Response(
            body=_encode({"events": out, "cursor": next_cursor}), content_type="application/json"
        )

    async def _event(self, request: web.Request) -> web.Response:
        e = self.universe.event_index(request.match_info["ticker"])
        if e is None:
            return _error(404, "not_found", "event not found")
        markets = [self._market_dict(i) for i in self.universe.event_markets(e)]
        event = self.universe.event_payload(e)
        if request.query.get("with_nested_markets") == "true":
            event["markets"] = markets
        return web.Response(
            body=_encode({"event": event, "markets": markets}), content_type="application/json"
        )

    async def _series_list(self, request: web.Request) -> web.Response:
        category = request.query.get("category")
        out = []
        for s in range(self.universe.n_series):
            series = self.universe.series_payload(s)
            if category and series["category"] != category:
                continue
            out.append(series)
        return web.Response(body=_encode({"series": out}), content_type="application/json")

    async def _series(self, request: web.Request) -> web.Response:
        s = self.universe.series_index(request.match_info["ticker"])
        if s is None:
            return _error(404, "not_found", "series not found")
        return web.Response(
            body=_encode({"series": self.universe.series_payload(s)}),
            content_type="application/json",
        )

    def _history(self, ticker: str) -> list[dict[str, Any]]:
        """Trades of one market, newest first: seeded history before the anchor, then live ones."""
        i = self.universe.market_index(ticker)
        if i is None:
            return []
        core = self.universe.core(i)
        rng = random.Random(f"{self.seed}:{i}:trades")
        trades: list[dict[str, Any]] = []
        if core.status != "initialized":
            end = min(core.close_ts, self.universe.anchor)
            begin = max(core.open_ts, end - 2 * DAY)
            price = core.last_price
            for _ in range(rng.randrange(0, 40)):
                ts = rng.randrange(begin, end)
                price = min(990, max(10, price + rng.choice((-10, 0, 10))))
                yes_side = rng.random() < 0.5
                trades.append(
                    _trade_payload(
                        str(uuid.UUID(int=rng.getrandbits(128))),
                        ticker,
                        price,
                        rng.randrange(1, 300) * 100,
                        yes_side,
                        ts * 1000,
                    )
                )
        trades.extend(self.live_trades.get(ticker, ()))
        trades.sort(key=lambda t: (t["ts_ms"], t["trade_id"]), reverse=True)
        return trades

    async def _historical_trades(self, request: web.Request) -> web.Response:
        return await self._trades(request, historical=True)

    async def _trades(self, request: web.Request, historical: bool = False) -> web.Response:
        q = request.query
        try:
            limit = self._int(request, "limit", 100)
            min_ts = self._int(request, "min_ts")
            max_ts = self._int(request, "max_ts")
        except ValueError:
            return _error(400, "invalid_parameters", "bad integer parameter")
        assert limit is not None
        if not 0 <= limit <= MARKETS_LIMIT_MAX:
            return _error(400, "invalid_parameters", "limit must be between 0 and 1000")
        limit = limit or 100
        cursor = q.get("cursor", "")
        fault = self._page_fault(cursor)
        if fault is not None:
            return fault
        ticker = q.get("ticker")
        if ticker:
            trades = self._history(ticker)
        else:
            trades = sorted(
                (t for ts in self.live_trades.values() for t in ts),
                key=lambda t: (t["ts_ms"], t["trade_id"]),
                reverse=True,
            )
        cutoff_ms = self.cutoff * 1000
        trades = [t for t in trades if (t["ts_ms"] < cutoff_ms) is historical]
        if min_ts is not None:
            trades = [t for t in trades if t["ts_ms"] >= min_ts * 1000]
        if max_ts is not None:
            trades = [t for t in trades if t["ts_ms"] <= max_ts * 1000]
        start = decode_cursor(cursor) if cursor else 0
        if start is None:
            return _error(400, "invalid_cursor", "invalid cursor")
        page = trades[start : start + limit]
        nxt = encode_cursor(start + limit) if start + limit < len(trades) else ""
        body = {"trades": [_rest_trade(t) for t in page], "cursor": nxt}
        return web.Response(body=_encode(body), content_type="application/json")

    async def _candlesticks(self, request: web.Request) -> web.Response:
        try:
            start = self._int(request, "start_ts")
            end = self._int(request, "end_ts")
            period = self._int(request, "period_interval")
        except ValueError:
            return _error(400, "invalid_parameters", "bad integer parameter")
        if start is None or end is None or period not in (1, 60, 1440):
            return _error(
                400, "invalid_parameters", "start_ts, end_ts and period_interval are required"
            )
        ticker = request.match_info["ticker"]
        i = self.universe.market_index(ticker)
        if i is None or self.universe.core(i).series_ticker != request.match_info["series"]:
            return _error(404, "not_found", "market not found")
        step = period * 60
        first_end = (start + step - 1) // step * step
        if (end - first_end) // step > 5000:
            return _error(400, "invalid_parameters", "too many candlesticks requested")
        trades = sorted(self._history(ticker), key=lambda t: t["ts_ms"])
        candles = []
        k = 0
        previous: str | None = None
        while k < len(trades) and trades[k]["ts_ms"] <= (first_end - step) * 1000:
            previous = trades[k]["yes_price_dollars"]
            k += 1
        for period_end in range(first_end, end + 1, step):
            bucket = []
            while k < len(trades) and trades[k]["ts_ms"] <= period_end * 1000:
                bucket.append(trades[k])
                k += 1
            candles.append(_candle(period_end, bucket, previous))
            if bucket:
                previous = bucket[-1]["yes_price_dollars"]
        body = {"ticker": ticker, "candlesticks": candles}
        return web.Response(body=_encode(body), content_type="application/json")

    # -- WebSocket -------------------------------------------------------------

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        signed = "KALSHI-ACCESS-SIGNATURE" in request.headers
        if self.public_key is not None:
            why = verify_request(self.public_key, request.headers, "GET", WS_PATH)
            if why is not None:
                self.truth.record("ws_rejected", reason=why)
                return _error(401, "authentication_error", why)
        client = _Client(authenticated=signed or self.public_key is not None)
        return await self.sockets.serve(request, client, self._on_text, on_binary=self._on_binary)

    async def _on_text(self, sock: _Socket, text: str) -> None:
        self._command(sock, text)

    async def _on_binary(self, sock: _Socket, _data: bytes) -> None:
        self._send_error(sock, None, 1, "Unable to process message")

    def _reply(self, sock: _Socket, body: Any) -> None:
        self.sockets.reply(sock, _encode(body).decode())

    def _send_error(self, sock: _Socket, cmd_id: int | None, code: int, text: str) -> None:
        env: dict[str, Any] = {"type": "error", "msg": {"code": code, "msg": text}}
        if cmd_id is not None:
            env["id"] = cmd_id
        self._reply(sock, env)

    def _command(self, sock: _Socket, text: str) -> None:
        conn = sock.state
        try:
            cmd = msgspec.json.decode(text)
        except msgspec.DecodeError:
            self._send_error(sock, None, 1, "Unable to process message")
            return
        if not isinstance(cmd, dict):
            self._send_error(sock, None, 1, "Unable to process message")
            return
        cmd_id = cmd.get("id") if isinstance(cmd.get("id"), int) else None
        name = cmd.get("cmd")
        params = cmd.get("params")
        if name == "list_subscriptions":
            subs = [{"channel": s.channel, "sid": s.sid} for s in conn.subs.values()]
            self._reply(sock, {"id": cmd_id, "type": "ok", "msg": subs})
            return
        if name not in ("subscribe", "unsubscribe", "update_subscription"):
            self._send_error(sock, cmd_id, 5, "Unknown command")
            return
        if not isinstance(params, dict):
            self._send_error(sock, cmd_id, 2, "Params required")
            return
        if name == "subscribe":
            self._subscribe(sock, cmd_id, params)
        elif name == "unsubscribe":
            self._unsubscribe(sock, cmd_id, params)
        else:
            self._update(sock, cmd_id, params)

    def _tickers(self, params: dict[str, Any]) -> list[str] | None:
        tickers: list[str] = []
        if isinstance(params.get("market_ticker"), str):
            tickers.append(params["market_ticker"])
        if isinstance(params.get("market_tickers"), list):
            tickers.extend(t for t in params["market_tickers"] if isinstance(t, str))
        return tickers or None

    def _subscribe(self, sock: _Socket, cmd_id: int | None, params: dict[str, Any]) -> None:
        conn = sock.state
        channels = params.get("channels")
        if not isinstance(channels, list) or not channels:
            self._send_error(sock, cmd_id, 3, "Channels required")
            return
        tickers = self._tickers(params)
        for channel in channels:
            if channel not in _KNOWN_CHANNELS:
                self._send_error(sock, cmd_id, 8, "Unknown channel name")
                continue
            served = channel in _PUBLIC_CHANNELS or channel in _PRIVATE_CHANNELS
            if not served or (channel in _PRIVATE_CHANNELS and not conn.authenticated):
                self._send_error(sock, cmd_id, 9, "Authentication required")
                continue
            if channel == "orderbook_delta" and not tickers:
                self._send_error(sock, cmd_id, 14, "Market ticker required")
                continue
            if tickers is not None:
                unknown = [t for t in tickers if self.universe.market_index(t) is None]
                if unknown:
                    env = {
                        "id": cmd_id,
                        "type": "error",
                        "msg": {"code": 16, "msg": "Market not found", "market_ticker": unknown[0]},
                    }
                    self._reply(sock, env)
                    continue
            if any(
                s.channel == channel
                and (s.tickers is None or tickers is None or s.tickers & set(tickers))
                for s in conn.subs.values()
            ):
                self._send_error(sock, cmd_id, 6, "Already subscribed")
                continue
            sub = _Sub(conn.next_sid, channel, set(tickers) if tickers is not None else None)
            conn.next_sid += 1
            conn.subs[sub.sid] = sub
            ack = {"id": cmd_id, "type": "subscribed", "msg": {"channel": channel, "sid": sub.sid}}
            self._reply(sock, ack)
            if channel == "orderbook_delta" and tickers is not None:
                self._snapshots(sock, sub, tickers)

    def _snapshots(self, sock: _Socket, sub: _Sub, tickers: Iterable[str]) -> None:
        for ticker in tickers:
            book = self._book(ticker)
            sub.seq += 1
            msg: dict[str, Any] = {"market_ticker": ticker, "market_id": _market_uuid(ticker)}
            if book.yes:
                msg["yes_dollars_fp"] = book.levels("yes")
            if book.no:
                msg["no_dollars_fp"] = book.levels("no")
            frame = {"type": "orderbook_snapshot", "sid": sub.sid, "seq": sub.seq, "msg": msg}
            self._reply(sock, frame)

    def _unsubscribe(self, sock: _Socket, cmd_id: int | None, params: dict[str, Any]) -> None:
        conn = sock.state
        sids = params.get("sids")
        if not isinstance(sids, list) or not sids:
            self._send_error(sock, cmd_id, 4, "Sids required")
            return
        for sid in sids:
            sub = conn.subs.pop(sid, None) if isinstance(sid, int) else None
            if sub is None:
                self._send_error(sock, cmd_id, 7, "Unknown subscription ID")
                continue
            reply = {"id": cmd_id, "sid": sid, "seq": sub.seq, "type": "unsubscribed"}
            self._reply(sock, reply)

    def _update(self, sock: _Socket, cmd_id: int | None, params: dict[str, Any]) -> None:
        conn = sock.state
        sids = params.get("sids")
        if isinstance(params.get("sid"), int) and sids is None:
            sids = [params["sid"]]
        if not isinstance(sids, list) or len(sids) != 1:
            self._send_error(sock, cmd_id, 12, "Exactly one subscription ID is required")
            return
        action = params.get("action")
        if not action:
            self._send_error(sock, cmd_id, 15, "Action required")
            return
        sub = conn.subs.get(sids[0])
        if sub is None:
            self._send_error(sock, cmd_id, 7, "Unknown subscription ID")
            return
        tickers = self._tickers(params)
        if action == "get_snapshot":
            if sub.channel != "orderbook_delta" or sub.tickers is None:
                self._send_error(sock, cmd_id, 13, "Action not supported for this channel")
                return
            self.truth.record("get_snapshot", sid=sub.sid)
            wanted = [t for t in sorted(sub.tickers) if tickers is None or t in tickers]
            self._snapshots(sock, sub, wanted)
            return
        if action not in ("add_markets", "delete_markets"):
            self._send_error(sock, cmd_id, 13, "Unsupported action")
            return
        if not tickers:
            self._send_error(sock, cmd_id, 14, "Market ticker required")
            return
        if any(self.universe.market_index(t) is None for t in tickers):
            self._send_error(sock, cmd_id, 16, "Market not found")
            return
        current = sub.tickers if sub.tickers is not None else set()
        if action == "add_markets":
            new = [t for t in tickers if t not in current]
            current.update(new)
            sub.tickers = current
            if sub.channel == "orderbook_delta":
                self._snapshots(sock, sub, new)
        else:
            current.difference_update(tickers)
            sub.tickers = current
        reply = {
            "id": cmd_id,
            "sid": sub.sid,
            "seq": sub.seq,
            "type": "ok",
            "msg": {"market_tickers": sorted(current)},
        }
        self._reply(sock, reply)

    # -- market activity ---------------------------------------------------------

    def _step_any(self) -> None:
        self.step(self.rng.choice(self.trading))

    def step(self, ticker: str) -> None:
        """One book event on ``ticker``: add, cancel, or a trade that takes liquidity."""
        book = self._book(ticker)
        rng = self.rng
        roll = rng.random()
        side = "yes" if rng.random() < 0.5 else "no"
        levels = book.yes if side == "yes" else book.no
        if roll < 0.2 and (book.yes or book.no):
            self._trade(ticker, book)
            return
        if roll < 0.55 and levels:
            price = rng.choice(sorted(levels))
            size = levels[price]
            cut = size if rng.random() < 0.3 else rng.randrange(1, size + 1)
            self._change(ticker, book, side, price, -cut)
            return
        other = book.best("no" if side == "yes" else "yes")
        ceiling = 999 - (other or 0)
        best = book.best(side)
        anchor_price = best if best is not None else min(500, ceiling)
        price = anchor_price + rng.choice((-30, -20, -10, -10, -1, 0, 0, 1, 10))
        price = min(price, ceiling)
        if not valid_tick(book.structure, price):
            price = price // 10 * 10
        if not valid_tick(book.structure, price) or price > ceiling:
            return
        self._change(
            ticker, book, side, price, rng.randrange(1, 200) * 100 + rng.choice((0, 0, 50))
        )

    def _change(self, ticker: str, book: SimBook, side: str, price: int, delta: int) -> None:
        levels = book.yes if side == "yes" else book.no
        top_before = _top(book)
        new = levels.get(price, 0) + delta
        if new < 0:
            raise AssertionError("simulator produced a negative level")
        if new == 0:
            levels.pop(price, None)
        else:
            levels[price] = new
        now_ms = time.time_ns() // 1_000_000
        market_id = _market_uuid(ticker)
        for sock in self.sockets:
            for sub in sock.state.subs.values():
                if (
                    sub.channel != "orderbook_delta"
                    or sub.tickers is None
                    or ticker not in sub.tickers
                ):
                    continue
                sub.seq += 1
                if self.chance(self.faults.skip_update_rate):
                    self.truth.record("sequence_skip", instrument=ticker, conn=sock.number,
                                      sid=sub.sid, seq=sub.seq)  # fmt: skip
                    continue
                frame = {
                    "type": "orderbook_delta",
                    "sid": sub.sid,
                    "seq": sub.seq,
                    "msg": {
                        "market_ticker": ticker,
                        "market_id": market_id,
                        "price_dollars": dollars(price, 3),
                        "delta_fp": fp(delta),
                        "side": side,
                        "ts": iso(now_ms // 1000),
                        "ts_ms": now_ms,
                    },
                }
                self.sockets.publish(sock, _encode(frame).decode())
        top = _top(book)
        if top != top_before:
            self._ticker_v2(ticker, _top_fields(top, top_before))

    def _ticker_v2(self, ticker: str, fields: dict[str, Any]) -> None:
        """``ticker_v2`` to its subscribers: only ``fields``, the ones that changed."""
        now_ms = time.time_ns() // 1_000_000
        msg = {"market_ticker": ticker, **fields, "ts": now_ms // 1000, "ts_ms": now_ms}
        self._publish("ticker_v2", "ticker_v2", ticker, msg)

    def _trade(self, ticker: str, book: SimBook) -> None:
        """A taker lifts the best opposite bid; the book and tape move together."""
        rng = self.rng
        taker_yes = rng.random() < 0.5 if (book.yes and book.no) else bool(book.no)
        maker_side = "no" if taker_yes else "yes"
        levels = book.no if taker_yes else book.yes
        best = max(levels)
        count = min(levels[best], rng.randrange(1, 50) * 100)
        yes_price = 1000 - best if taker_yes else best
        self._change(ticker, book, maker_side, best, -count)
        now_ns = time.time_ns()
        trade = _trade_payload(
            str(uuid.UUID(int=rng.getrandbits(128))),
            ticker,
            yes_price,
            count,
            taker_yes,
            now_ns // 1_000_000,
        )
        self.live_trades.setdefault(ticker, []).append(trade)
        self.truth.record_trade({"instrument": ticker, **trade, "sent_ns": now_ns})
        self._ticker_v2(
            ticker, {"price_dollars": dollars(yes_price, 3), "volume_delta_fp": fp(count)}
        )
        self._account_trades += 1
        if self.account_every and self._account_trades % self.account_every == 0:
            self._own_fill(ticker, trade, taker_yes, yes_price, count)
        ws_trade = {
            **{
                k: v
                for k, v in trade.items()
                if k not in _INTERNAL and k not in ("ticker", "created_time")
            },
            "ts_ms": trade["ts_ms"],
            "market_ticker": ticker,
            "yes_price_dollars": dollars(yes_price, 3),
            "no_price_dollars": dollars(1000 - yes_price, 3),
            "ts": now_ns // 1_000_000_000,
        }
        for sock in self.sockets:
            for sub in sock.state.subs.values():
                if sub.tickers is not None and ticker not in sub.tickers:
                    continue
                if sub.channel == "trade":
                    frame = {"type": "trade", "sid": sub.sid, "msg": ws_trade}
                elif sub.channel == "ticker":
                    frame = self._ticker_frame(sub.sid, ticker, book, yes_price, count)
                else:
                    continue
                self.sockets.publish(sock, _encode(frame).decode())

    def _own_fill(
        self, ticker: str, trade: dict[str, Any], taker_yes: bool, yes_price: int, count: int
    ) -> None:
        """The account was this trade's taker: its order executed in full in one fill."""
        order_id = str(uuid.uuid5(uuid.NAMESPACE_URL, "kalshi-sim-order:" + trade["trade_id"]))
        side = "yes" if taker_yes else "no"
        now_ms = time.time_ns() // 1_000_000
        self.truth.record("account_fill", instrument=ticker, trade_id=trade["trade_id"],
                          order_id=order_id, side=side, count=count)  # fmt: skip
        fill = {
            "trade_id": trade["trade_id"],
            "order_id": order_id,
            "market_ticker": ticker,
            "is_taker": True,
            "side": side,
            "action": "buy",
            "yes_price_dollars": dollars(yes_price),
            "no_price_dollars": dollars(1000 - yes_price),
            "count_fp": fp(count),
            "post_position_fp": fp(count),
            "ts": now_ms // 1000,
        }
        order = {
            "order_id": order_id,
            "user_id": DEMO_KEY_ID,
            "ticker": ticker,
            "status": "executed",
            "side": side,
            "action": "buy",
            "yes_price_dollars": dollars(yes_price),
            "fill_count_fp": fp(count),
            "remaining_count_fp": "0.00",
            "initial_count_fp": fp(count),
            "client_order_id": "",
            "created_time": iso(now_ms // 1000),
            "last_update_time": iso(now_ms // 1000),
        }
        self._publish("fill", "fill", ticker, fill, signed=True)
        self._publish("user_orders", "user_order", ticker, order, signed=True)

    def _ticker_frame(
        self, sid: int, ticker: str, book: SimBook, last: int, last_size: int
    ) -> dict[str, Any]:
        by, bn = book.best("yes"), book.best("no")
        now_ms = time.time_ns() // 1_000_000
        return {
            "type": "ticker",
            "sid": sid,
            "msg": {
                "market_ticker": ticker,
                "market_id": _market_uuid(ticker),
                "price_dollars": dollars(last, 3),
                "yes_bid_dollars": dollars(by or 0, 3),
                "yes_ask_dollars": dollars(1000 - bn if bn else 1000, 3),
                "yes_bid_size_fp": fp(book.yes[by] if by else 0),
                "yes_ask_size_fp": fp(book.no[bn] if bn else 0),
                "last_trade_size_fp": fp(last_size),
                "volume_fp": fp(sum(t["count"] for t in self.live_trades.get(ticker, ()))),
                "open_interest_fp": "0.00",
                "dollar_volume": 0,
                "dollar_open_interest": 0,
                "ts": now_ms // 1000,
                "ts_ms": now_ms,
                "time": iso(now_ms // 1000),
            },
        }


Top = tuple[int | None, int, int | None, int]
"""Best YES bid (mills) and its size, best NO bid and its size (hundredths)."""


def _top(book: SimBook) -> Top:
    by, bn = book.best("yes"), book.best("no")
    return by, book.yes[by] if by else 0, bn, book.no[bn] if bn else 0


def _top_fields(top: Top, before: Top) -> dict[str, str]:
    """The ``ticker_v2`` fields of the YES quote that differ between ``before`` and ``top``
    (an empty side is price 0 / 1 with size 0, as Kalshi sends it)."""
    by, bys, bn, bns = top
    fields: dict[str, str] = {}
    if (by, bys) != before[:2]:
        fields["yes_bid_dollars"] = dollars(by or 0, 3)
        fields["yes_bid_size_fp"] = fp(bys)
    if (bn, bns) != before[2:]:
        fields["yes_ask_dollars"] = dollars(1000 - bn if bn else 1000, 3)
        fields["yes_ask_size_fp"] = fp(bns)
    return fields


def _market_uuid(ticker: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "kalshi-sim:" + ticker))


def _trade_payload(
    trade_id: str, ticker: str, yes_price: int, count: int, taker_yes: bool, ts_ms: int
) -> dict[str, Any]:
    """Internal trade record (REST and WS views are derived from it)."""
    return {
        "trade_id": trade_id,
        "ticker": ticker,
        "count": count,
        "yes_mills": yes_price,
        "count_fp": fp(count),
        "yes_price_dollars": dollars(yes_price),
        "no_price_dollars": dollars(1000 - yes_price),
        "taker_side": "yes" if taker_yes else "no",
        "taker_outcome_side": "yes" if taker_yes else "no",
        "taker_book_side": "bid" if taker_yes else "ask",
        "is_block_trade": False,
        "ts_ms": ts_ms,
        "created_time": iso(ts_ms // 1000),
    }


def _rest_trade(t: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in t.items() if k not in _INTERNAL}


def _candle(period_end: int, bucket: list[dict[str, Any]], previous: str | None) -> dict[str, Any]:
    if bucket:
        prices = [t["yes_price_dollars"] for t in bucket]
        mills = [t["yes_mills"] for t in bucket]
        price: dict[str, Any] = {
            "open_dollars": prices[0],
            "low_dollars": dollars(min(mills)),
            "high_dollars": dollars(max(mills)),
            "close_dollars": prices[-1],
            "mean_dollars": dollars(sum(mills) // len(mills)),
            "previous_dollars": previous,
            "min_dollars": dollars(min(mills)),
            "max_dollars": dollars(max(mills)),
        }
    else:
        price = dict.fromkeys(
            ("open_dollars", "low_dollars", "high_dollars", "close_dollars", "mean_dollars"), None
        )
        price.update(previous_dollars=previous, min_dollars=None, max_dollars=None)
    volume = sum(t["count"] for t in bucket)
    quote = {
        "open_dollars": "0.0000",
        "low_dollars": "0.0000",
        "high_dollars": "0.0000",
        "close_dollars": "0.0000",
    }
    return {
        "end_period_ts": period_end,
        "yes_bid": quote,
        "yes_ask": quote,
        "price": price,
        "volume_fp": fp(volume),
        "open_interest_fp": "0.00",
    }
