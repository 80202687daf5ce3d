"""The Kalshi simulator's universe: series, events, markets and books, derived lazily.

Nothing is built up front. Market ``i`` is a pure function of ``(seed, i,
anchor)``: its tickers come from its index, its times and quotes from a
``random.Random`` seeded with ``"seed:i"``. A cursor is therefore just an
encoded index and a simulator can serve 200,000+ markets in constant memory.
Only books that trading touched (an order-book request or a subscription)
are materialised, in :class:`SimBook`.

Prices are integer thousandths of a dollar ("mills") and sizes integer
hundredths of a contract, the venue's own granularity, so the simulator never
does float arithmetic on money and formats exactly what Kalshi would send.
"""

from __future__ import annotations

import base64
import hashlib
import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from venuefeed.sim.shared_events import SHARED_EVENTS, SharedEvent, shared_close_ts

__all__ = [
    "EVENTS_PER_SERIES",
    "MARKETS_PER_EVENT",
    "MarketCore",
    "SimBook",
    "Universe",
    "decode_cursor",
    "dollars",
    "encode_cursor",
    "fp",
    "iso",
]

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
        close_ts = self.anchor - 20 * DAY + close_off * 60
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
