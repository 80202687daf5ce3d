"""Binance spot: trades, best bid/ask, klines and a synced L2 book per symbol.

``Adapter`` is the client (REST through the weight-aware limiter, combined
WebSocket streams, the diff-depth book procedure); ``Simulator`` is the
venue's local twin with switchable faults.
"""

from venuefeed.venues.binance.adapter import Adapter
from venuefeed.venues.binance.sim import Simulator

__all__ = ["Adapter", "Simulator"]
