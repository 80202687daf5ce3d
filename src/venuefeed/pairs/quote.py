"""One confirmed pair's books -> a :class:`~venuefeed.models.PairQuote` (pure).

Both books are turned into the probability of the *same* outcome, the Kalshi
market's YES: a Kalshi book already is one; a Polymarket YES-token book is
used as it is for a ``yes_yes`` pair and mirrored (bid = 1 - ask) for
``yes_no``. A cross is then a buy at one venue's ask and a sale at the other's
bid -- on a binary contract, selling YES is buying NO at 1 - bid, so the two
legs pay 1 whatever happens. Each leg pays its venue's taker fee
(:mod:`venuefeed.pairs.fees`); the fee is symmetric in P and 1 - P, so the
NO leg's fee is the fee at the YES price.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from venuefeed.exact import from_decimal
from venuefeed.models import PairQuote
from venuefeed.pairs.fees import kalshi_fee, polymarket_fee
from venuefeed.pairs.store import ConfirmedPair

__all__ = ["VENUE", "FeeSchedule", "Top", "pair_quote"]

VENUE = "arb"
"""The ``venue`` of a pair quote: derived from two venues, recorded by neither."""

_EDGE_PLACES = Decimal("0.000001")

Top = tuple[str | None, str | None]
"""Best bid and best ask price text of one book (``None`` for an empty side)."""


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    kalshi_rate: Decimal
    polymarket_rate: Decimal
    contracts: int

    def kalshi(self, price: Decimal) -> Decimal:
        return kalshi_fee(price, rate=self.kalshi_rate, contracts=self.contracts)

    def polymarket(self, price: Decimal) -> Decimal:
        return polymarket_fee(price, rate=self.polymarket_rate)


def _dec(text: str | None) -> Decimal | None:
    return Decimal(text) if text is not None else None


def _text(value: Decimal | None) -> str | None:
    return from_decimal(value.quantize(_EDGE_PLACES).normalize() + 0) if value is not None else None


def pair_quote(
    pair: ConfirmedPair, kalshi: Top, polymarket_yes: Top, fees: FeeSchedule, now_ns: int
) -> PairQuote:
    """The pair's quote now: both venues' best prices for Kalshi's YES, and the net edges."""
    k_bid, k_ask = _dec(kalshi[0]), _dec(kalshi[1])
    p_bid, p_ask = _dec(polymarket_yes[0]), _dec(polymarket_yes[1])
    if pair.mapping == "yes_no":
        p_bid, p_ask = (1 - p_ask if p_ask is not None else None,
                        1 - p_bid if p_bid is not None else None)  # fmt: skip
    buy_k = (
        p_bid - k_ask - fees.kalshi(k_ask) - fees.polymarket(p_bid)
        if k_ask is not None and p_bid is not None
        else None
    )
    buy_p = (
        k_bid - p_ask - fees.polymarket(p_ask) - fees.kalshi(k_bid)
        if p_ask is not None and k_bid is not None
        else None
    )
    edges = [e for e in (buy_k, buy_p) if e is not None]
    return PairQuote(
        venue=VENUE, instrument=pair.pair_id, ts_venue=now_ns, ts_recv=now_ns,
        kalshi_market=pair.kalshi_market, polymarket_token=pair.polymarket_token,
        mapping=pair.mapping, kalshi_bid=_text(k_bid), kalshi_ask=_text(k_ask),
        polymarket_bid=_text(p_bid), polymarket_ask=_text(p_ask),
        edge_buy_kalshi=_text(buy_k), edge_buy_polymarket=_text(buy_p),
        best_edge=_text(max(edges)) if edges else None,
    )  # fmt: skip
