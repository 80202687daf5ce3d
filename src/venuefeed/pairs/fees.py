"""Each venue's published taker fee, per contract, at a price.

Both venues charge takers in proportion to ``P x (1 - P)``: the fee is
largest on a coin-flip contract and vanishes near certainty.

* **Kalshi** (fee schedule, docs.kalshi.com "Fees"; the series' ``fee_type``
  ``quadratic``): ``fee = ceil_to_cent(rate x C x P x (1 - P))`` for an
  order of ``C`` contracts at price ``P``, ``rate`` 0.07 for takers. The
  rounding is per order, so the fee *per contract* depends on the order size
  (one contract at 0.50 pays 0.02; a hundred pay 1.75, 0.0175 each).
* **Polymarket** (docs.polymarket.com "Trading fees"):
  ``fee = C x rate x P x (1 - P)``, ``rate`` the market's fee-schedule rate,
  makers pay nothing; many markets have no fee (rate 0).

Arbitrage crosses the book, so both legs are taker orders and pay these fees.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal

__all__ = ["kalshi_fee", "polymarket_fee"]

_CENT = Decimal("0.01")


def kalshi_fee(price: Decimal, *, rate: Decimal, contracts: int) -> Decimal:
    """Kalshi's taker fee per contract for an order of ``contracts`` at ``price``."""
    order = (rate * contracts * price * (1 - price)).quantize(_CENT, rounding=ROUND_CEILING)
    return order / contracts


def polymarket_fee(price: Decimal, *, rate: Decimal) -> Decimal:
    """Polymarket's taker fee per share at ``price``."""
    return rate * price * (1 - price)
