"""Binance spot: trades, best bid/ask, klines and a synced L2 book per symbol.

``Adapter`` is the client (REST through the weight-aware limiter, combined
WebSocket streams through the generic pump and :class:`BinanceFeed`'s
diff-depth book procedure); ``Simulator`` is the venue's local twin with
switchable faults; ``Options`` are the keys of ``venues.binance.options``.
"""

from venuefeed.venues.binance.adapter import Adapter
from venuefeed.venues.binance.options import Options
from venuefeed.venues.binance.sim import Simulator

__all__ = ["Adapter", "Options", "Simulator"]
