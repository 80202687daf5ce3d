"""The boundary checks every venue parser applies (ARCHITECTURE rule 3).

A number or a time that enters venuefeed is checked where it enters, once:

* prices and sizes are plain finite ASCII decimals (:func:`venuefeed.exact.checked`),
  in canonical form; sizes are >= 0; prices are >= 0, and prediction-market
  prices (a probability: Polymarket, Kalshi) lie in [0, 1];
* a venue time lies in the :class:`TimeWindow` around the receive time.

A failed check raises :class:`Invalid`, which never leaves a parser: each
parser catches it at the boundary of the item it was reading (a message, a
page row) and counts it through :class:`~venuefeed.venues.rejects.Rejects`
with the check's reason. An exception is the right tool *inside* a parser
because a check deep in a conversion stops the item in one line and cannot be
forgotten by the caller; it is never the interface between modules.

The number tables (:class:`Numbers`) are what keeps this cheap on the hot
path: prices and sizes repeat, so ``PRICES[text]`` is a dict hit for every
text seen before, and only a new string is checked (then remembered, bounded).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

import msgspec

from venuefeed import exact
from venuefeed.book import COMPILED, KERNEL
from venuefeed.models import BookLevel

if COMPILED:
    from venuefeed import _kernel

__all__ = [
    "DECODE_ERRORS",
    "EARLIEST_NS",
    "PRICES",
    "PROBABILITIES",
    "SIGNED",
    "SIZES",
    "Invalid",
    "Numbers",
    "TimeWindow",
    "in_window",
    "levels",
    "ms_text",
]


DECODE_ERRORS: Final = (msgspec.DecodeError, UnicodeError, RecursionError)
"""What decoding venue bytes can raise: msgspec raises ``UnicodeDecodeError`` (not a
``DecodeError``) for invalid UTF-8 and ``RecursionError`` for very deep nesting."""


class Invalid(ValueError):
    """A value that failed a boundary check; ``reason`` is the rejection's metric label."""

    def __init__(self, reason: str, detail: object = "") -> None:
        text = repr(detail)[:120] if not isinstance(detail, str) else detail[:120]
        super().__init__(f"{reason}: {text}")
        self.reason = reason
        self.detail = text


def _non_negative(text: str) -> bool:
    return text[0] != "-"


def _probability(text: str) -> bool:
    # Canonical text has no leading zeros, so it lies in [0, 1) exactly when it starts with "0".
    return text[0] == "0" or text == "1"


def _any(text: str) -> bool:
    return True


class Numbers:
    """Venue text -> canonical text, for the numbers that pass one rule.

    ``table[text]`` is the canonical text or raises :class:`Invalid`; a text
    seen before costs one dict lookup. Invalid text is never stored, and the
    memo is dropped and rebuilt at ``limit`` entries, so hostile input can
    neither grow it nor poison it. The hottest loops read :attr:`known`, a
    plain dict (CPython's fastest subscript), and fall back to ``table[text]``
    only on a miss (see :func:`levels`).
    """

    __slots__ = ("known", "known_decimals", "limit", "reason", "rule")

    def __init__(self, reason: str, rule: Callable[[str], bool], limit: int = 1 << 16) -> None:
        self.known: dict[str, str] = {}
        self.known_decimals: dict[str, str] = {}
        """``str()`` of a checked ``Decimal`` -> canonical text. Kept apart from
        :attr:`known`: ``"1E+2"`` is a fine JSON number but not decimal text."""
        self.reason = reason
        self.rule = rule
        self.limit = limit

    def __getitem__(self, text: str) -> str:
        canonical = self.known.get(text)
        return canonical if canonical is not None else self.learn(text)

    def learn(self, text: str) -> str:
        """Check a text not seen before; remember it if it passes."""
        canonical = exact.checked(text) if isinstance(text, str) else None
        if canonical is None or not self.rule(canonical):
            raise Invalid(self.reason, text)
        known = self.known
        if len(known) >= self.limit:
            known.clear()
        known[text] = canonical
        return canonical

    def optional(self, text: str | None) -> str | None:
        """``None`` stays ``None`` (a field the venue may omit)."""
        return None if text is None else self[text]

    def decimal(self, value: Decimal) -> str:
        """A JSON number decoded as ``Decimal`` (Polygon, the Data API, Gamma).

        Memoized by its text (``str()`` of a decoded ``Decimal`` is cheap and
        short for any value; hashing the ``Decimal`` itself would cost more).
        """
        canonical = self.known_decimals.get(str(value))
        return canonical if canonical is not None else self.learn_decimal(value)

    def learn_decimal(self, value: Decimal) -> str:
        """Check a ``Decimal`` whose text was not seen before; remember it if it passes."""
        canonical = exact.checked_decimal(value) if isinstance(value, Decimal) else None
        if canonical is None or not self.rule(canonical):
            raise Invalid(self.reason, value)
        known = self.known_decimals
        if len(known) >= self.limit:
            known.clear()
        known[str(value)] = canonical
        return canonical


PRICES: Final = Numbers("invalid_price", _non_negative)
"""Prices of venues whose prices are not probabilities (Binance, Polygon): >= 0."""
PROBABILITIES: Final = Numbers("invalid_price", _probability)
"""Prediction-market prices (Polymarket, Kalshi): in [0, 1]."""
SIZES: Final = Numbers("invalid_size", _non_negative)
"""Sizes, counts and volumes: >= 0."""
SIGNED: Final = Numbers("invalid_size", _any)
"""Signed increments (Kalshi book deltas); the book refuses a level going negative."""


if COMPILED:
    _kernel.setup_numbers(Numbers.learn, _non_negative)
_COMPILED: Final = KERNEL == "c"
""":func:`levels` runs its loop in C (:data:`venuefeed.book.KERNEL`); a number not
seen before is checked there too when its table's rule is :func:`_non_negative`."""


def levels(
    pairs: Iterable[tuple[str, str]], prices: Numbers = PRICES, sizes: Numbers = SIZES
) -> list[BookLevel]:
    """``[price, size]`` pairs as checked canonical levels (the book hot path).

    A number seen before costs a dict lookup (in C when the kernel runs: see
    :mod:`venuefeed.book`); one not seen before is checked and remembered on the
    spot (sizes in a depth stream are mostly new, so a whole-list retry after the
    first miss would check them twice).
    """
    known_prices, known_sizes, new_price, new_size = (
        prices.known, sizes.known, prices.learn, sizes.learn,
    )  # fmt: skip
    if _COMPILED:
        return _kernel.levels(pairs, known_prices, known_sizes, new_price, new_size)
    return [
        BookLevel(known_prices.get(p) or new_price(p), known_sizes.get(q) or new_size(q))
        for p, q in pairs
    ]


EARLIEST_NS: Final = 631_152_000_000_000_000
"""1990-01-01 UTC: no venue history we read is older. A time before it is a unit
mistake (seconds read as milliseconds lands in January 1970) or garbage."""

_MS_DIGITS: Final = 15


def ms_text(text: str) -> int:
    """A millisecond timestamp sent as a string of ASCII digits (Polymarket), in ns.

    ``"1.5"``, ``"-1"``, ``" 1"``, ``""`` and full-width digits are :class:`Invalid`.
    """
    if not (0 < len(text) <= _MS_DIGITS and text.isascii() and text.isdigit()):
        raise Invalid("invalid_timestamp", text)
    return int(text) * 1_000_000


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """How far a venue's time may lie from our receive time and still be believed.

    Defaults, and why:

    * ``future_seconds = 300``: a venue cannot describe an event after we
      received it; five minutes absorbs a badly drifted host clock, while a
      time in the wrong unit (ms read as s, ns as ms) is off by years.
    * ``past_seconds = 7 days``, for live frames: feeds are real time, and a
      week absorbs replays of recorded sessions, delayed feeds (Polygon's is
      15 minutes behind) and a long outage's catch-up, while garbage and unit
      mistakes are off by years. Staleness of trades is the pipeline's concern
      (``quality.max_trade_age_seconds``), not the boundary's. A book
      snapshot's time is its *last change* (Polymarket), which for a quiet
      market may be weeks old: snapshots get the history bounds.
    * REST history (trades, candles) has no past limit beyond
      :data:`EARLIEST_NS`: a backfill legitimately reads years back.

    Configured by ``ingestion.venue_time_past_seconds`` and
    ``ingestion.venue_time_future_seconds``.
    """

    past_seconds: float = 7 * 86_400.0
    future_seconds: float = 300.0
    _past_ns: int = field(init=False, repr=False, compare=False)
    _future_ns: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not (self.past_seconds > 0 and self.future_seconds > 0):
            raise ValueError("venue time window: past and future must be > 0 seconds")
        # Computed once: bounds are asked for on every frame.
        object.__setattr__(self, "_past_ns", int(self.past_seconds * 1e9))
        object.__setattr__(self, "_future_ns", int(self.future_seconds * 1e9))

    def live(self, ts_recv: int) -> tuple[int, int]:
        """``(earliest, latest)`` ns for a live frame received at ``ts_recv``."""
        lo = ts_recv - self._past_ns
        return (lo if lo > EARLIEST_NS else EARLIEST_NS), ts_recv + self._future_ns

    def history(self, ts_recv: int) -> tuple[int, int]:
        """``(earliest, latest)`` ns for a REST history page received at ``ts_recv``."""
        return EARLIEST_NS, ts_recv + self._future_ns


def in_window(ts: int, bounds: tuple[int, int]) -> int:
    """``ts`` if it lies within ``bounds``, else :class:`Invalid`."""
    if not bounds[0] <= ts <= bounds[1]:
        raise Invalid("timestamp_out_of_window", ts)
    return ts
