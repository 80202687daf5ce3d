"""``venues.polygon.options``: what a user may tune, checked when the adapter starts.

WebSocket tuning is not here: idle timeout and reconnect backoff are the
``venues.polygon.websocket`` section every venue shares.
"""

from __future__ import annotations

from venuefeed.venues.options import VenueOptions
from venuefeed.venues.polygon.rest import MAX_LIMIT

__all__ = ["Options"]


class Options(VenueOptions, frozen=True):
    """Polygon/Massive adapter options."""

    page_limit: int = MAX_LIMIT
    """Rows per REST page (1..50000): smaller pages cost more requests, each one smaller."""

    def problems(self) -> dict[str, str]:
        if not 1 <= self.page_limit <= MAX_LIMIT:
            return {"page_limit": f"must be between 1 and {MAX_LIMIT}"}
        return {}
