"""``venues.kalshi.options``: what a user may tune, checked once when the adapter starts.

Loaded with :func:`~venuefeed.venues.options.load_options`, so a misspelt key
is a one-line error naming ``venues.kalshi.options.<key>`` instead of a
setting silently ignored (nothing dies silently -- nor is anything ignored
silently).
"""

from __future__ import annotations

from venuefeed.venues.kalshi.feed import QUOTE_CHANNELS
from venuefeed.venues.options import VenueOptions

__all__ = ["Options"]


class Options(VenueOptions, frozen=True):
    """Kalshi adapter options; every one is read by the adapter or the archive."""

    markets_per_connection: int = 1000
    """Markets one WebSocket carries before another is opened (Kalshi error 26 guards a cap)."""
    quote_channel: str = "ticker"
    """``ticker`` (every message a full quote) or ``ticker_v2`` (only what changed; the feed
    keeps each market's quote and publishes it whole)."""
    account_channels: bool = True
    """Also subscribe ``fill`` and ``user_orders``: the configured key's own fills and orders,
    stored and published as ``account_fill`` / ``account_order`` events."""
    historical_tier: bool = True
    """Back-fill windows older than ``GET /historical/cutoff`` from ``/historical/trades``;
    off, they are asked of the live tier (which no longer has them)."""
    cutoff_refresh_seconds: float = 3600.0
    """How long an answer of ``GET /historical/cutoff`` is trusted (the cutoffs advance daily)."""

    def problems(self) -> dict[str, str]:
        bad: dict[str, str] = {}
        if not 1 <= self.markets_per_connection <= 1000:
            bad["markets_per_connection"] = "must be between 1 and 1000"
        if self.quote_channel not in QUOTE_CHANNELS:
            bad["quote_channel"] = f"must be one of {', '.join(QUOTE_CHANNELS)}"
        if self.cutoff_refresh_seconds <= 0:
            bad["cutoff_refresh_seconds"] = "must be positive"
        return bad
