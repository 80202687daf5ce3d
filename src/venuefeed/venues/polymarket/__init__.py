"""Polymarket: Gamma discovery, CLOB books and prices, Data-API trades, the market WebSocket.

The package exposes the names the registry looks for (``venues/base.py``).
"""

from venuefeed.venues.polymarket.adapter import PolymarketAdapter as Adapter
from venuefeed.venues.polymarket.options import Options
from venuefeed.venues.polymarket.sim import Simulator

__all__ = ["Adapter", "Options", "Simulator"]
