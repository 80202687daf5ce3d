"""Kalshi (Trade API v2): markets, bids-only books, trades, the signed stream, bulk archive.

The package exposes what the registry needs (``Adapter``, ``Simulator``,
``Options``); ``archive.run_archive`` is the ``venuefeed archive kalshi`` job.
"""

from venuefeed.venues.kalshi.adapter import Adapter
from venuefeed.venues.kalshi.options import Options
from venuefeed.venues.kalshi.sim import Simulator

__all__ = ["Adapter", "Options", "Simulator"]
