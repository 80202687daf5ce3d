"""Trade and price checks G1, G3 and G5 as pure functions (the adapter supplies the data).

* G1 -- staleness: a trade older than the limit is history, not a live print.
* G3 -- missing size: a print without size takes the size of a recent REST
  trade at (about) the same price, the closest in time.
* G5 -- price sanity: a price is checked against the current book's mid.

They take canonical events and return plain answers, so the pipeline can use
them for any venue; Decimal is built only here, at the edge.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from venuefeed import exact
from venuefeed.models import BookSnapshot, Trade

__all__ = ["is_stale", "size_at_price", "verify_price"]


def is_stale(ts_venue: int, now_ns: int, max_age_seconds: float) -> bool:
    """G1: True when the event is older than ``max_age_seconds`` (not to be reported live)."""
    return now_ns - ts_venue > max_age_seconds * 1e9


def size_at_price(
    trades: Iterable[Trade],
    price: str,
    ts_ns: int,
    *,
    tolerance: Decimal,
    max_age_seconds: float,
) -> str | None:
    """G3: the size of the trade nearest in time to ``ts_ns`` within ``tolerance`` of ``price``.

    Only trades within ``max_age_seconds`` of ``ts_ns`` count; None when none qualify.
    """
    target = exact.to_decimal(price)
    window = max_age_seconds * 1e9
    best: tuple[float, str] | None = None
    for trade in trades:
        distance = abs(trade.ts_venue - ts_ns)
        if distance > window:
            continue
        if abs(exact.to_decimal(trade.price) - target) > tolerance:
            continue
        if best is None or distance < best[0]:
            best = (distance, trade.size)
    return best[1] if best is not None else None


def verify_price(
    price: str, book: BookSnapshot | None, max_deviation: Decimal
) -> tuple[bool, str | None, str]:
    """G5: ``(ok, reference price, reason)`` for ``price`` against ``book``'s mid.

    With one side empty the reference is that side's best price; with no book
    or an empty book the price cannot be verified (``ok`` False, reason says so).
    """
    if book is None:
        return False, None, "no_book"
    bid = exact.to_decimal(book.bids[0].price) if book.bids else None
    ask = exact.to_decimal(book.asks[0].price) if book.asks else None
    if bid is not None and ask is not None:
        reference = (bid + ask) / 2
    elif bid is not None:
        reference = bid
    elif ask is not None:
        reference = ask
    else:
        return False, None, "empty_book"
    ref_text = exact.from_decimal(reference)
    deviation = abs(exact.to_decimal(price) - reference)
    if deviation > max_deviation:
        dev_text = exact.from_decimal(deviation)
        return False, ref_text, f"deviation {dev_text} > {exact.from_decimal(max_deviation)}"
    return True, ref_text, ""
