"""A token bucket per venue: the request rate a venue allows, enforced before sending.

Waiting here is cheaper than a 429: a 429 costs a round trip and often a
penalty window. The bucket is also where a venue's ``Retry-After`` lands
(:meth:`TokenBucket.penalize`), so every caller sharing the venue pauses, not
only the one that was told off.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

__all__ = ["TokenBucket"]

_EPSILON = 1e-9
"""Float slack: ``(now - stamp) * rate`` can land a hair under a whole token, and a
wait of 1e-15 s does not move a clock reading of ~1e5 s -- without slack it spins."""


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; starts full.

    Callers are served strictly in arrival order: an ``asyncio.Lock`` (FIFO)
    is held while the head of the line waits, so a small request cannot
    overtake a large one and nobody starves. ``clock`` and ``sleep`` are
    injectable so tests can drive the bucket with a fake clock.
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("token bucket needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._stamp = clock()
        self._blocked_until = float("-inf")
        self._lock = asyncio.Lock()

    @property
    def tokens(self) -> float:
        """Tokens available right now (for status views and tests)."""
        self._refill(self._clock())
        return self._tokens

    def _refill(self, now: float) -> None:
        if now > self._stamp:
            self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now

    async def acquire(self, tokens: float = 1.0) -> float:
        """Take ``tokens``, waiting as long as needed; returns the seconds waited."""
        if tokens > self.burst:
            raise ValueError(f"cannot take {tokens} tokens from a bucket of {self.burst}")
        start = self._clock()
        async with self._lock:
            while True:
                now = self._clock()
                blocked = self._blocked_until - now
                if blocked > 0:
                    await self._sleep(blocked)
                    continue
                self._refill(now)
                if self._tokens + _EPSILON >= tokens:
                    self._tokens = max(0.0, self._tokens - tokens)
                    return self._clock() - start
                await self._sleep((tokens - self._tokens) / self.rate)

    def penalize(self, seconds: float) -> None:
        """Nobody gets a token before ``now + seconds`` (a 429's ``Retry-After``).

        When the window ends exactly one token is ready, so the first retry
        goes out on time and the rest follow at the configured rate instead
        of a burst that would earn another 429.
        """
        until = self._clock() + max(0.0, seconds)
        if until > self._blocked_until:
            self._blocked_until = until
            self._tokens = 1.0
            self._stamp = until
