"""Polymarket's user channel: the configured account's own orders and trades.

The channel (``/ws/user``) is a socket of its own, authenticated by the API key,
secret and passphrase in the subscribe message and filtered by market (condition
id). :func:`parse_user_frame` turns its frames into
:class:`~venuefeed.models.AccountOrder` / :class:`~venuefeed.models.AccountFill`
under the same rules as the market channel -- pure, never raising, every refusal
counted in :class:`~venuefeed.venues.rejects.Rejects`, every number checked --
and :class:`UserFeed` is the sans-IO feed the generic pump drives beside the
market feed.

Mapping:

* ``order`` PLACEMENT is ``resting``; UPDATE is ``executed`` once the matched
  size reaches the original size, else ``resting``; CANCELLATION is ``canceled``.
* ``trade`` is a fill of the account's order: the taker order when
  ``trader_side`` is TAKER, else each maker order the account owns (its side is
  the taker's opposite on the same token, the same side on the complementary
  token). A trade is reported again as it moves MATCHED -> MINED -> CONFIRMED;
  it is one fill, emitted the first time it is seen, and a FAILED trade is
  counted, not emitted.
* A text ``UNAUTHORIZED`` refusal (the credentials are wrong) is counted as
  ``auth_failed`` and puts the feed in that state until a message arrives again
  ("nothing dies silently": status names the settings to check).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Final

import msgspec

from venuefeed.models import AccountFill, AccountOrder, Event, Market, Side
from venuefeed.transport import Frame
from venuefeed.venues.checks import DECODE_ERRORS, PROBABILITIES, SIZES, Invalid, in_window
from venuefeed.venues.feed import NOTHING, Output, VenueFeed
from venuefeed.venues.polymarket.protocol import (
    MakerOrder,
    UserMessage,
    UserOrderMsg,
    UserTradeMsg,
)
from venuefeed.venues.rejects import Rejects

__all__ = ["AUTH_FAILED", "UserFeed", "parse_user_frame"]

VENUE: Final = "polymarket"
AUTH_FAILED: Final = "UNAUTHORIZED"
"""The text the user channel answers a subscribe with bad credentials with."""
_AUTH_HINT: Final = (
    "auth_failed: check venues.polymarket.credentials api_key, api_secret and api_passphrase"
)
_NOTICES: Final = frozenset({"PONG", "NO NEW ASSETS"})
_SIDES: Final[dict[str, Side]] = {"BUY": "buy", "SELL": "sell"}
_FLIP: Final[dict[Side, Side]] = {"buy": "sell", "sell": "buy"}
_NO_FILL_STATUSES: Final = frozenset({"FAILED"})
_SEEN_MAX: Final = 50_000

_decode = msgspec.json.Decoder(list[UserMessage] | UserMessage)

Account = AccountFill | AccountOrder


def parse_user_frame(
    data: bytes | str, ts_recv: int, rejects: Rejects, owner: str = ""
) -> list[Account]:
    """Every order state and fill in one user-channel frame; bad ones counted. Never raises.

    ``owner`` is the account's API key: which maker orders of a trade are its own.
    """
    if not data:
        return []
    text = data.strip()
    if text in _NOTICES or text in (b"PONG", b"NO NEW ASSETS"):
        return []
    try:
        decoded = _decode.decode(text)
    except DECODE_ERRORS as exc:
        rejects.reject("invalid_fields", f"user channel: {exc}", data)
        return []
    bounds = rejects.window.live(ts_recv)
    out: list[Account] = []
    for msg in decoded if isinstance(decoded, list) else [decoded]:
        try:
            if type(msg) is UserOrderMsg:
                out.append(_order(msg, ts_recv, bounds))
            else:
                assert isinstance(msg, UserTradeMsg)
                out.extend(_fills(msg, ts_recv, bounds, owner))
        except Invalid as exc:
            rejects.invalid(exc, type(msg).__name__)
        except Exception as exc:  # a parser bug must not end the stream: counted, logged once
            rejects.bug(exc, type(msg).__name__)
    return out


def _side(text: str) -> Side:
    side = _SIDES.get(text.upper())
    if side is None:
        raise Invalid("invalid_fields", f"side {text[:10]!r}")
    return side


def _unix(text: str, unit: int, bounds: tuple[int, int]) -> int:
    """A unix time string in ``unit`` nanoseconds each (seconds or milliseconds), in window."""
    if not text.isdigit() or len(text) > 16:
        raise Invalid("invalid_fields", f"time {text[:20]!r}")
    return in_window(int(text) * unit, bounds)


def _order(msg: UserOrderMsg, ts_recv: int, bounds: tuple[int, int]) -> AccountOrder:
    original, matched = SIZES[msg.original_size], SIZES[msg.size_matched]
    left = Decimal(original) - Decimal(matched)
    if left < 0:
        raise Invalid("invalid_fields", f"matched {matched} above original {original}")
    kind = msg.type.upper()
    if kind == "CANCELLATION":
        status = "canceled"
    elif kind in ("PLACEMENT", "UPDATE"):
        status = "executed" if left == 0 and kind == "UPDATE" else "resting"
    else:
        raise Invalid("invalid_fields", f"order type {msg.type[:20]!r}")
    return AccountOrder(
        venue=VENUE,
        instrument=msg.asset_id,
        ts_venue=_unix(msg.timestamp, 1_000_000, bounds),
        ts_recv=ts_recv,
        order_id=msg.id,
        status=status,
        side=_side(msg.side),
        price=PROBABILITIES[msg.price],
        remaining_size=SIZES.decimal(left),
        filled_size=matched,
    )


def _fills(
    msg: UserTradeMsg, ts_recv: int, bounds: tuple[int, int], owner: str
) -> list[AccountFill]:
    if msg.status.upper() in _NO_FILL_STATUSES:
        raise Invalid("trade_failed", msg.id[:80])
    ts = _unix(msg.match_time, 1_000_000_000, bounds)
    taker_side = _side(msg.side)
    trader = msg.trader_side.upper()
    if trader == "TAKER":
        taker = MakerOrder(msg.taker_order_id, owner, msg.size, msg.price, msg.asset_id)
        return [_fill(msg, taker, taker_side, True, ts, ts_recv)]
    if trader != "MAKER":
        raise Invalid("invalid_fields", f"trader_side {msg.trader_side[:10]!r}")
    # A maker order on the same token took the other side; on the complement, the same side.
    flipped = _FLIP[taker_side]
    return [
        _fill(msg, m, flipped if m.asset_id == msg.asset_id else taker_side, False, ts, ts_recv)
        for m in msg.maker_orders
        if m.owner == owner
    ]


def _fill(
    msg: UserTradeMsg, order: MakerOrder, side: Side, taker: bool, ts: int, ts_recv: int
) -> AccountFill:
    """One order's share of a trade (the taker order is given in a maker order's shape);
    the trade id and order id together name it."""
    return AccountFill(
        venue=VENUE,
        instrument=order.asset_id,
        ts_venue=ts,
        ts_recv=ts_recv,
        fill_id=f"{msg.id}:{order.order_id}",
        order_id=order.order_id,
        trade_id=msg.id,
        side=side,
        price=PROBABILITIES[order.price],
        size=SIZES[order.matched_amount],
        is_taker=taker,
    )


class UserFeed(VenueFeed):
    """The user channel's sans-IO feed: subscriptions are markets, events the account's own.

    ``markets`` (token -> market, the adapter's discovery cache) turns the tokens
    the service subscribes into the condition ids the channel filters by.
    """

    venue = VENUE

    def __init__(
        self, markets: Mapping[str, Market], rejects: Rejects | None = None, owner: str = ""
    ) -> None:
        super().__init__()
        self.rejects = rejects if rejects is not None else Rejects(VENUE)
        self.markets = markets
        self.owner = owner
        self.auth_error: str | None = None
        """Set by a refused subscribe, cleared by the next message the channel sends."""
        self._seen: set[str] = set()
        self._seen_order: deque[str] = deque()

    def subscriptions(self, instruments: Iterable[str]) -> list[str]:
        """The condition ids of the tokens' markets (a token of no known market is counted)."""
        out: dict[str, None] = {}
        for token in instruments:
            market = self.markets.get(token)
            if market is None:
                self.rejects.reject("account_market_unknown", token[:80])
            else:
                out[market.market_id] = None
        return list(out)

    def instruments(self, subscriptions: Iterable[str]) -> list[str]:
        wanted = set(subscriptions)
        return sorted({t for t, m in self.markets.items() if m.market_id in wanted})

    def on_frames(self, frames: Sequence[Frame]) -> Output:
        events: list[Event] = []
        for frame in frames:
            data = frame.data
            if data == AUTH_FAILED or data == AUTH_FAILED.encode():
                self.auth_error = _AUTH_HINT
                self.rejects.reject("auth_failed", "user channel refused the credentials")
                continue
            items = parse_user_frame(data, frame.ts_recv, self.rejects, self.owner)
            if data not in _NOTICES:
                self.auth_error = None
            events.extend(item for item in items if self._first(item))
        return Output(events, []) if events else NOTHING

    def _first(self, item: Account) -> bool:
        """Orders always; a fill only the first time its trade status is reported."""
        if type(item) is not AccountFill:
            return True
        if item.fill_id in self._seen:
            return False
        self._seen.add(item.fill_id)
        self._seen_order.append(item.fill_id)
        if len(self._seen_order) > _SEEN_MAX:
            self._seen.discard(self._seen_order.popleft())
        return True

    def state(self) -> str | None:
        return self.auth_error
