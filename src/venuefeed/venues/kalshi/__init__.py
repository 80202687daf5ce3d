"""Kalshi (Trade API v2): markets, bids-only books, trades, the signed stream, bulk archive."""

from venuefeed.venues.kalshi.sim import Simulator

__all__ = ["Simulator"]
