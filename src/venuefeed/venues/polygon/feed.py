"""The Polygon.io (Massive) live state, sans-IO: ``/stocks`` frames in, events out.

Trades (``T``), NBBO quotes (``Q``) and minute bars (``AM``) come out as
parsed; Polygon keeps no book and no sequence to check, so the feed's state is
the connection's standing with the venue, read from its status messages:

* ``auth_failed`` / ``auth_timeout`` and ``max_connections`` put the feed in an
  error state (:meth:`PolygonFeed.state`, :attr:`PolygonFeed.error`), are
  logged as errors and counted in
  ``market_data_ingestion_errors_total{venue="polygon",kind="ws_<status>"}``.
  The server closes such a connection; the transport's growing backoff paces
  the retries, so a wrong key never turns into a hot reconnect loop. The
  state clears on the next ``auth_success`` ("nothing dies silently").
* ``force_disconnect`` and ``slow_consumer`` are counted and logged as warnings.

Polygon does not replay missed messages: the pump's ``disconnect`` gap after a
reconnect is healed from ``/v3/trades``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

from venuefeed import metrics
from venuefeed.log import get_logger
from venuefeed.models import Event
from venuefeed.transport import Frame
from venuefeed.venues.base import Channel
from venuefeed.venues.feed import Output, VenueFeed
from venuefeed.venues.rejects import Rejects

from .parse import VENUE, parse_frame
from .protocol import WsStatus

__all__ = ["CHANNEL_PREFIXES", "PolygonFeed"]

CHANNEL_PREFIXES: Final[dict[Channel, str]] = {"trades": "T", "quotes": "Q", "candles": "AM"}
"""Canonical channel -> Polygon stocks event prefix."""

_FATAL: Final = frozenset({"auth_failed", "auth_timeout", "max_connections"})
_WARN: Final = frozenset({"force_disconnect", "slow_consumer", "error", "auth_required"})
_HINTS: Final = {
    "auth_failed": "check venues.polygon.credentials.api_key",
    "auth_timeout": "the auth frame did not arrive in time",
    "max_connections": (
        "another client uses this key on the same cluster (one connection per asset class "
        "by default); stop it or raise the limit with the venue"
    ),
}
_log = get_logger(__name__)


class PolygonFeed(VenueFeed):
    """Polygon stocks' feed for the channels asked for (see the module docstring)."""

    venue = VENUE

    def __init__(self, channels: Iterable[Channel], rejects: Rejects | None = None) -> None:
        super().__init__()
        self.rejects = rejects or Rejects(VENUE)
        wanted = frozenset(channels)
        self._prefixes = tuple(p for name, p in CHANNEL_PREFIXES.items() if name in wanted)
        self.error: str | None = None
        """The venue's last refusal (``"auth_failed: authentication failed"``), until cleared."""
        self._error_status: str | None = None

    def subscriptions(self, instruments: Iterable[str]) -> list[str]:
        return [f"{prefix}.{ticker}" for ticker in instruments for prefix in self._prefixes]

    def instruments(self, subscriptions: Iterable[str]) -> list[str]:
        return list(dict.fromkeys(s.partition(".")[2] for s in subscriptions))

    def on_frames(self, frames: Sequence[Frame]) -> Output:
        events: list[Event] = []
        rejects = self.rejects
        for frame in frames:
            for item in parse_frame(frame.data, frame.ts_recv, rejects):
                if isinstance(item, WsStatus):
                    self._on_status(item)
                else:
                    events.append(item)
        return Output(events, [])

    def state(self) -> str | None:
        return self._error_status

    def _on_status(self, status: WsStatus) -> None:
        kind = status.status
        if kind == "auth_success":
            if self._error_status is not None:
                _log.info("polygon websocket authenticated again", previous=self.error)
            self._error_status = self.error = None
            return
        if kind in _FATAL:
            metrics.INGESTION_ERRORS.labels(VENUE, f"ws_{kind}").inc()
            self._error_status = kind
            self.error = f"{kind}: {status.message}"
            _log.error("polygon websocket refused", status=kind, message=status.message,
                       hint=_HINTS[kind])  # fmt: skip
        elif kind in _WARN:
            metrics.INGESTION_ERRORS.labels(VENUE, f"ws_{kind}").inc()
            _log.warning("polygon websocket status", status=kind, message=status.message)
