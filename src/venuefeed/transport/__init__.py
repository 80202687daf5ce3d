"""Resilient transport shared by every venue: HTTP client and WebSocket session.

Venue modules never carry their own retry, reconnect, backoff or heartbeat
loop (ARCHITECTURE rule 2); they describe requests and wire frames and use
these classes.
"""

from venuefeed.transport.backoff import Backoff, parse_retry_after
from venuefeed.transport.http import (
    CircuitOpenError,
    HttpClient,
    HttpError,
    HttpPolicy,
    HttpRetryExhausted,
    HttpStatusError,
    Response,
)
from venuefeed.transport.pagination import Page, paginate_cursor, paginate_offset
from venuefeed.transport.ratelimit import TokenBucket
from venuefeed.transport.websocket import (
    Frame,
    Note,
    Reconnected,
    WsNotConnectedError,
    WsPolicy,
    WsProtocol,
    WsProtocolBase,
    WsSession,
    WsState,
)

__all__ = [
    "Backoff",
    "CircuitOpenError",
    "Frame",
    "HttpClient",
    "HttpError",
    "HttpPolicy",
    "HttpRetryExhausted",
    "HttpStatusError",
    "Note",
    "Page",
    "Reconnected",
    "Response",
    "TokenBucket",
    "WsNotConnectedError",
    "WsPolicy",
    "WsProtocol",
    "WsProtocolBase",
    "WsSession",
    "WsState",
    "paginate_cursor",
    "paginate_offset",
    "parse_retry_after",
]
