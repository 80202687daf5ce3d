"""Retry delays: exponential backoff with full jitter, and ``Retry-After`` parsing.

Full jitter (a uniform draw between zero and the exponential ceiling) spreads
the clients that failed together -- every socket of a venue drops at the same
instant when the venue restarts -- so they do not all come back in lockstep
and knock it over again.
"""

from __future__ import annotations

import math
import random
import time
from datetime import UTC
from email.utils import parsedate_to_datetime

__all__ = ["Backoff", "parse_retry_after"]

_MAX_EXPONENT = 64
"""Beyond this the ceiling is the cap anyway; stops ``factor ** n`` overflowing."""


class Backoff:
    """Delays ``uniform(0, min(cap, base * factor**n))`` for the n-th retry (n from 0).

    ``attempts`` counts the delays handed out since the last :meth:`reset`.
    Without jitter the delay is the ceiling itself (useful where a caller
    wants a predictable schedule).
    """

    def __init__(
        self,
        base: float,
        cap: float,
        factor: float = 2.0,
        *,
        jitter: bool = True,
        rng: random.Random | None = None,
    ) -> None:
        if base < 0 or cap < 0 or factor < 1:
            raise ValueError("backoff needs base >= 0, cap >= 0 and factor >= 1")
        self.base = base
        self.cap = cap
        self.factor = factor
        self.jitter = jitter
        self.attempts = 0
        self._rng = rng or random.Random()

    def ceiling(self) -> float:
        """The upper bound of the next delay."""
        return min(self.cap, self.base * self.factor ** min(self.attempts, _MAX_EXPONENT))

    def next_delay(self) -> float:
        ceiling = self.ceiling()
        self.attempts += 1
        return self._rng.uniform(0.0, ceiling) if self.jitter else ceiling

    def reset(self) -> None:
        self.attempts = 0


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value, or None when absent or unreadable.

    The header is either delay-seconds (``"120"``; decimals are accepted because
    some venues send them) or an HTTP-date, converted against ``now`` (Unix
    seconds, default the wall clock). A date in the past means "retry now": 0.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" dates: RFC 9110 dates are always GMT
        when = when.replace(tzinfo=UTC)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)
