"""Whale sources: trades by watched wallets, and any trade above a notional threshold.

Polymarket publishes no real-time per-wallet feed on the public CLOB (RTDS
``activity`` is market-wide), so wallets are polled on the Data API. This
module only *finds* those trades; deciding which are whale trades, and
shaping the ``whale_trade`` event, is the pipeline's job
(:mod:`venuefeed.pipeline.whales`), the same for every venue. Each
source (one per wallet, plus ``"*"`` for market-wide large trades) keeps a
:class:`Watermark` -- the newest timestamp seen and the trade ids seen at that
timestamp -- which goes in and out of :meth:`WalletWatcher.poll`, so the
service can persist it and nothing is reported twice, even across restarts.
Trades sharing the watermark second are told apart by id, not dropped.

Positions (seed 001's "position open/close" events) come from the Data API's
``/positions``: each poll gives every watched wallet's holdings, and
:func:`position_changes` compares them with the previous poll's -- a token
that appears was ``opened``, one that grew ``increased``, shrank ``reduced``,
vanished (the endpoint lists sizes of at least ``sizeThreshold``, 1 share by
default) ``closed``. The holdings go in and out of
:meth:`WalletWatcher.poll_positions` like the trade marks, so a restart does
not report positions again; a wallet seen for the first time is a baseline
(its positions were opened before we looked, and when is unknown).

:func:`advance` and :func:`position_changes` are pure; only the ``poll``
methods do I/O.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

import msgspec

from venuefeed.exact import from_decimal
from venuefeed.models import Trade, WhalePosition
from venuefeed.venues.checks import PROBABILITIES, SIZES

if TYPE_CHECKING:
    from venuefeed.venues.polymarket.rest import PolymarketRest
    from venuefeed.venues.rejects import Rejects

VENUE = "polymarket"

__all__ = [
    "MARKET_WIDE",
    "Held",
    "WalletWatcher",
    "Watermark",
    "advance",
    "parse_positions",
    "position_changes",
]

MARKET_WIDE = "*"
"""Watermark key of the market-wide large-trade source."""


class Watermark(msgspec.Struct, frozen=True):
    """Newest trade time seen (ns) and the ids seen at exactly that time."""

    last_ts: int = 0
    ids: tuple[str, ...] = ()


def advance(trades: Iterable[Trade], mark: Watermark) -> tuple[list[Trade], Watermark]:
    """The trades newer than ``mark`` (oldest first) and the watermark after them."""
    fresh = sorted(
        (
            t
            for t in trades
            if t.ts_venue > mark.last_ts
            or (t.ts_venue == mark.last_ts and t.trade_id not in mark.ids)
        ),
        key=lambda t: t.ts_venue,
    )
    unique: dict[str, Trade] = {}
    for trade in fresh:
        unique.setdefault(trade.trade_id, trade)
    if not unique:
        return [], mark
    newest = max(t.ts_venue for t in unique.values())
    ids = {t.trade_id for t in unique.values() if t.ts_venue == newest}
    if newest == mark.last_ts:
        ids.update(mark.ids)
    return list(unique.values()), Watermark(newest, tuple(sorted(ids)))


class Held(msgspec.Struct, frozen=True):
    """One token a wallet holds: size in shares (canonical text) and what it is."""

    size: str
    avg_price: str | None = None
    market_id: str | None = None
    title: str | None = None
    outcome: str | None = None


PositionAction = Literal["opened", "increased", "reduced", "closed"]

Holdings = dict[str, Held]
"""A wallet's positions by token id."""


class _Position(msgspec.Struct, rename="camel", frozen=True, gc=False):
    """A ``/positions`` row: the fields a position event needs (numbers are JSON numbers)."""

    asset: str
    size: Decimal
    condition_id: str = ""
    avg_price: Decimal | None = None
    title: str = ""
    outcome: str = ""


_positions = msgspec.json.Decoder(list[_Position])


def parse_positions(body: bytes, rejects: Rejects) -> Holdings | None:
    """A ``/positions`` page as holdings; ``None`` (counted) for a body that is not one.

    A row with a bad number is refused (counted) and left out; the rest stand.
    """
    rows = rejects.decode(_positions, body, "malformed_positions")
    if rows is None:
        return None
    out: Holdings = {}
    for row in rows:
        held = rejects.guard("position", _held, row)
        if held is not None:
            out[row.asset] = held
    return out


def _held(row: _Position) -> Held:
    return Held(
        size=SIZES.decimal(row.size),
        avg_price=PROBABILITIES.decimal(row.avg_price) if row.avg_price is not None else None,
        market_id=row.condition_id or None, title=row.title or None, outcome=row.outcome or None,
    )  # fmt: skip


def position_changes(
    wallet: str, before: Holdings, after: Holdings, now_ns: int, venue: str
) -> list[WhalePosition]:
    """What changed between two polls of one wallet's holdings, token by token."""
    out: list[WhalePosition] = []
    for token in sorted(before.keys() | after.keys()):
        old, new = before.get(token), after.get(token)
        old_size = Decimal(old.size) if old is not None else Decimal(0)
        new_size = Decimal(new.size) if new is not None else Decimal(0)
        if old_size == new_size:
            continue
        action: PositionAction
        if old_size == 0:
            action = "opened"
        elif new_size == 0:
            action = "closed"
        else:
            action = "increased" if new_size > old_size else "reduced"
        about = new or old
        assert about is not None
        out.append(WhalePosition(
            venue=venue, instrument=token, ts_venue=now_ns, ts_recv=now_ns,
            trader_address=wallet, action=action, size=from_decimal(new_size),
            previous=from_decimal(old_size), change=from_decimal(new_size - old_size),
            avg_price=about.avg_price, market_id=about.market_id, title=about.title,
            outcome=about.outcome,
        ))  # fmt: skip
    return out


class WalletWatcher:
    """Polls the Data API for watched wallets and market-wide large trades."""

    mark_type = Watermark

    def __init__(
        self,
        rest: PolymarketRest,
        wallets: Iterable[str],
        threshold: Decimal,
        *,
        lookback_seconds: float = 3600.0,
    ) -> None:
        self.rest = rest
        self.wallets = tuple(dict.fromkeys(w.lower() for w in wallets))
        self.threshold = threshold
        self.lookback_ns = int(lookback_seconds * 1e9)

    async def poll(
        self, marks: Mapping[str, Watermark]
    ) -> tuple[list[Trade], dict[str, Watermark]]:
        """One round: new trades of the sources since ``marks``, and the advanced marks.

        A source seen for the first time starts ``lookback_seconds`` back. An
        HTTP failure propagates (the transport has already retried); marks of
        sources polled before it are not returned, so the next round repeats
        them and deduplication by watermark keeps the output exact.
        """
        now = time.time_ns()
        out_marks = dict(marks)
        found: list[Trade] = []
        seen: set[str] = set()
        sources: list[tuple[str, list[Trade]]] = []
        for wallet in self.wallets:
            mark = marks.get(wallet, Watermark())
            start = mark.last_ts or now - self.lookback_ns
            sources.append((wallet, await self.rest.wallet_trades(wallet, start, now)))
        large = await self.rest.large_trades(self.threshold)
        sources.append((MARKET_WIDE, [t for t in large if t.ts_venue >= now - self.lookback_ns]))
        for key, trades in sources:
            fresh, out_marks[key] = advance(trades, marks.get(key, Watermark()))
            fresh = [t for t in fresh if t.trade_id not in seen]
            seen.update(t.trade_id for t in fresh)
            found.extend(fresh)
        return found, out_marks

    holdings_type = Holdings

    async def poll_positions(
        self, held: Mapping[str, Holdings]
    ) -> tuple[list[WhalePosition], dict[str, Holdings]]:
        """One round of every watched wallet's positions: the changes, and the holdings now.

        A wallet without previous holdings is a baseline (no events). A page the
        venue garbles leaves that wallet's holdings as they were (counted).
        """
        now = time.time_ns()
        events: list[WhalePosition] = []
        out = {w: h for w, h in held.items() if w in self.wallets}
        for wallet in self.wallets:
            body = await self.rest.data.get(
                "/positions", {"user": wallet, "limit": 500}, endpoint="positions"
            )
            current = parse_positions(body, self.rest.rejects)
            if current is None:
                continue
            if wallet in held:
                events.extend(position_changes(wallet, held[wallet], current, now, VENUE))
            out[wallet] = current
        return events, out
