"""``venues.binance.options``: what a user may tune, checked when the adapter starts.

Every key below is read by the adapter or its feed; an unknown key or a value
out of range is an error naming ``venues.binance.options.<key>``, never a
silent default.
"""

from __future__ import annotations

from venuefeed.venues.binance.protocol import KLINE_INTERVALS
from venuefeed.venues.options import VenueOptions

__all__ = ["Options"]


class Options(VenueOptions, frozen=True):
    """Binance adapter options."""

    trade_stream: str = "trade"
    """``trade`` (every execution) or ``aggTrade`` (fills aggregated per taker order)."""
    kline_interval: str = "1m"
    """The ``@kline_<interval>`` stream of the candles channel."""
    depth_speed: str = "100ms"
    """``100ms`` or ``1000ms`` diff-depth updates."""
    depth_limit: int = 1000
    """Levels per REST depth snapshot: 1000 costs weight 50, 5000 costs 250."""
    weight_per_minute: int = 6000
    """The venue's REQUEST_WEIGHT limit per IP (``exchangeInfo.rateLimits``)."""
    weight_window_seconds: float = 60.0
    """The length of the venue's weight window (``X-MBX-USED-WEIGHT-1M``: one minute)."""

    def problems(self) -> dict[str, str]:
        checks = {
            "trade_stream": (
                self.trade_stream in ("trade", "aggTrade"),
                "must be trade or aggTrade",
            ),
            "kline_interval": (
                self.kline_interval in KLINE_INTERVALS,
                f"must be one of {', '.join(KLINE_INTERVALS)}",
            ),
            "depth_speed": (self.depth_speed in ("100ms", "1000ms"), "must be 100ms or 1000ms"),
            "depth_limit": (1 <= self.depth_limit <= 5000, "must be between 1 and 5000"),
            "weight_per_minute": (self.weight_per_minute > 0, "must be > 0"),
            "weight_window_seconds": (self.weight_window_seconds > 0, "must be > 0"),
        }
        return {key: why for key, (ok, why) in checks.items() if not ok}
