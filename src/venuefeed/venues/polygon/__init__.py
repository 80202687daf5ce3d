"""Polygon.io, now Massive: US stocks trades, NBBO quotes and aggregates.

``Adapter`` is the client (hosts, key, rate limit and options are described
in :mod:`venuefeed.venues.polygon.adapter`); ``Simulator`` is the venue's
local twin; ``Options`` are the keys of ``venues.polygon.options``.
"""

from .adapter import Adapter
from .options import Options
from .sim import Simulator

__all__ = ["Adapter", "Options", "Simulator"]
