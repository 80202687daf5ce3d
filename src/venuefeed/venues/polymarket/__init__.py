"""Polymarket: Gamma discovery, CLOB books and prices, Data-API trades, the market WebSocket.

The package exposes the two names the registry looks for (``venues/base.py``).
"""

from venuefeed.venues.polymarket.adapter import PolymarketAdapter as Adapter
from venuefeed.venues.polymarket.sim import Simulator

__all__ = ["Adapter", "Simulator"]
