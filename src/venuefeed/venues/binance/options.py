"""``venues.binance.options``: what a user may tune, checked when the adapter starts."""

from __future__ import annotations

from typing import Any

import msgspec

from venuefeed.venues.binance.protocol import KLINE_INTERVALS

__all__ = ["Options"]


class Options(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Binance adapter options; a typo is an error, not a silent default."""

    trade_stream: str = "trade"
    """``trade`` (every execution) or ``aggTrade`` (fills aggregated per taker order)."""
    kline_interval: str = "1m"
    depth_speed: str = "100ms"
    """``100ms`` or ``1000ms`` diff-depth updates."""
    depth_limit: int = 1000
    """Levels per REST depth snapshot: 1000 costs weight 50, 5000 costs 250."""
    weight_per_minute: int = 6000
    """The venue's REQUEST_WEIGHT limit per IP (``exchangeInfo.rateLimits``)."""
    weight_window_seconds: float = 60.0
    max_pending: int = 10_000
    """Events waiting for the consumer before the stream stops reading frames."""

    @classmethod
    def from_mapping(cls, raw: dict[str, Any]) -> Options:
        try:
            options = msgspec.convert(raw, cls)
        except msgspec.ValidationError as exc:
            raise ValueError(f"venues.binance.options: {exc}") from None
        checks = {
            "trade_stream": options.trade_stream in ("trade", "aggTrade"),
            "kline_interval": options.kline_interval in KLINE_INTERVALS,
            "depth_speed": options.depth_speed in ("100ms", "1000ms"),
            "depth_limit": 1 <= options.depth_limit <= 5000,
            "weight_per_minute": options.weight_per_minute > 0,
            "weight_window_seconds": options.weight_window_seconds > 0,
            "max_pending": options.max_pending > 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            values = {name: getattr(options, name) for name in bad}
            raise ValueError(f"venues.binance.options: invalid value(s) {values}")
        return options
