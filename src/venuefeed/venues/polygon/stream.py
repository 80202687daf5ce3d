"""Polygon.io (Massive) live stream: what to say on ``/stocks`` and how to read the answers.

The conversation (docs/venue-protocols.md §4.4): the server greets with
``[{"ev":"status","status":"connected"}]``; the client sends
``{"action":"auth","params":KEY}`` and gets ``auth_success``; then
``{"action":"subscribe","params":"T.AAPL,Q.AAPL,AM.AAPL"}`` -- one
comma-separated string -- acknowledged per channel. The auth frame goes out in
:meth:`PolygonProtocol.on_open`, before the transport replays subscriptions,
and the server handles a connection's frames in order, so every reconnect
re-authenticates before it resubscribes.

Reconnecting, backoff and liveness are the transport's (:class:`WsSession`).
This module turns status messages into something an operator can act on:

* ``auth_failed`` / ``auth_timeout`` and ``max_connections`` put the stream in
  an error state (:attr:`PolygonStream.state`, :attr:`PolygonStream.error`),
  are logged as errors and counted in
  ``market_data_ingestion_errors_total{venue="polygon",kind="ws_<status>"}``.
  The server closes such a connection; the transport's growing backoff paces
  the retries, so a wrong key never turns into a hot reconnect loop. The
  state clears on the next ``auth_success``.
* ``force_disconnect`` and ``slow_consumer`` are counted and logged as warnings.

After every reconnect a :class:`~venuefeed.models.DataGap` (cause
``disconnect``) is emitted per subscribed ticker: Polygon does not replay
missed messages, and the gap can be healed from ``/v3/trades``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Final

import msgspec

from venuefeed import metrics
from venuefeed.log import get_logger
from venuefeed.models import Event
from venuefeed.transport import Reconnected, WsPolicy, WsProtocolBase, WsSession
from venuefeed.venues.base import VenueStream, disconnect_gap
from venuefeed.venues.rejects import Rejects

from .parse import VENUE, parse_frame
from .protocol import ClientAction, WsStatus

__all__ = ["CHANNEL_PREFIXES", "PolygonProtocol", "PolygonStream"]

CHANNEL_PREFIXES: Final = {"trades": "T", "quotes": "Q", "candles": "AM"}
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
_encoder = msgspec.json.Encoder()
_log = get_logger(__name__)


class PolygonProtocol(WsProtocolBase):
    """The :class:`~venuefeed.transport.WsProtocol` of the stocks cluster."""

    def __init__(self, url: str, api_key: str) -> None:
        self._url = url
        self._api_key = api_key

    def url(self) -> str:
        return self._url

    def on_open(self) -> Sequence[str | bytes]:
        return [_encoder.encode(ClientAction("auth", self._api_key)).decode()]

    def subscribe(self, subs: Sequence[str], initial: bool) -> Sequence[str | bytes]:
        return self._action("subscribe", subs)

    def unsubscribe(self, subs: Sequence[str]) -> Sequence[str | bytes]:
        return self._action("unsubscribe", subs)

    @staticmethod
    def _action(action: str, subs: Sequence[str]) -> list[str | bytes]:
        if not subs:
            return []
        return [_encoder.encode(ClientAction(action, ",".join(subs))).decode()]


class PolygonStream(VenueStream):
    """Trades (``T``), NBBO quotes (``Q``) and minute bars (``AM``) as canonical events."""

    def __init__(
        self,
        url: str,
        api_key: str,
        prefixes: Iterable[str],
        policy: WsPolicy | None = None,
        rejects: Rejects | None = None,
    ) -> None:
        self._prefixes = tuple(prefixes)
        self._rejects = rejects or Rejects(VENUE)
        self.session: WsSession = WsSession(
            VENUE, PolygonProtocol(url, api_key), policy or WsPolicy()
        )
        self._instruments: dict[str, None] = {}
        self.error: str | None = None
        """The venue's last refusal (``"auth_failed: authentication failed"``), until cleared."""
        self._error_status: str | None = None

    @property
    def state(self) -> str:
        return self._error_status or self.session.state.value

    def _channels(self, instruments: Iterable[str]) -> list[str]:
        return [f"{prefix}.{ticker}" for ticker in instruments for prefix in self._prefixes]

    async def subscribe(self, instruments: Iterable[str]) -> None:
        tickers = list(dict.fromkeys(instruments))
        self._instruments.update(dict.fromkeys(tickers))
        await self.session.subscribe(self._channels(tickers))
        await self.session.start()

    async def unsubscribe(self, instruments: Iterable[str]) -> None:
        tickers = [t for t in dict.fromkeys(instruments) if t in self._instruments]
        for ticker in tickers:
            del self._instruments[ticker]
        await self.session.unsubscribe(self._channels(tickers))

    def tap_raw(self, tap: Callable[[bytes | str, int], None]) -> None:
        self.session.raw_tap = tap

    async def close(self) -> None:
        await self.session.stop()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._events()

    async def _events(self) -> AsyncIterator[Event]:
        async for item in self.session:
            if isinstance(item, Reconnected):
                yield self.open_gap(
                    disconnect_gap(
                        VENUE, item.conn, list(self._instruments), item.down_since, item.ts_recv,
                        "websocket reconnected; Polygon does not replay missed messages",
                    )
                )  # fmt: skip
                continue
            for event in parse_frame(item.data, item.ts_recv, self._rejects):
                if isinstance(event, WsStatus):
                    self._on_status(event)
                else:
                    yield event

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
            _log.error(
                "polygon websocket refused",
                status=kind,
                message=status.message,
                hint=_HINTS[kind],
                transport_state=self.session.state.value,
            )
        elif kind in _WARN:
            metrics.INGESTION_ERRORS.labels(VENUE, f"ws_{kind}").inc()
            _log.warning("polygon websocket status", status=kind, message=status.message)
