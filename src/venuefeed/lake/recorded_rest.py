"""The REST answers of a recorded session, served again over HTTP.

A recording holds every REST exchange a venue's client made (the HTTP tap),
so a replay -- or a bot pointed at the replay server -- can be answered what
the venue answered *at that time*: a request is matched on method, path and
query to the recorded exchanges, and the newest one received at or before the
replay's clock is served (before its first, the first). Hosts are not
matched: one venue's endpoints are served from one place.

Query values the recorder masked (credential-like keys, see
:mod:`venuefeed.transport.http`) match any value. A request asked again later
often differs only in a time it carries (a discovery window ending "now", a
history page "since"): when nothing matches exactly, values that look like
times (ISO date-times, 10- to 19-digit unix times) match any time. A request
the recording never saw gets a 404 naming the problem, and is counted.
"""

from __future__ import annotations

import bisect
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from urllib.parse import parse_qsl, urlsplit

from aiohttp import web

from venuefeed.lake.format import HttpExchange

__all__ = ["RecordedRest"]

_MASK = "********"
_KEPT_HEADERS = frozenset({"content-type", "retry-after", "link"})
"""Response headers worth replaying: how to read the body, and paging/backoff hints."""

_TIME = "<time>"
_TIME_LIKE = re.compile(r"\d{4}-\d{2}-\d{2}[T ].*|\d{10,19}")

Key = tuple[str, str, tuple[tuple[str, str], ...]]


class RecordedRest:
    """One venue's recorded exchanges, answerable by request and replay time."""

    def __init__(self, exchanges: Iterable[HttpExchange], clock: Callable[[], int]) -> None:
        self._clock = clock
        self._masked: set[str] = set()
        rows: list[HttpExchange] = []
        for exchange in exchanges:
            if exchange.status == 0:  # nothing came back: nothing to replay
                continue
            rows.append(exchange)
            query = urlsplit(exchange.url).query
            self._masked.update(k for k, v in parse_qsl(query, keep_blank_values=True)
                                if v == _MASK)  # fmt: skip
        self._by_key: dict[Key, list[HttpExchange]] = defaultdict(list)
        self._by_shape: dict[Key, list[HttpExchange]] = defaultdict(list)
        for exchange in sorted(rows, key=lambda e: e.ts_recv):
            parts = urlsplit(exchange.url)
            key = self._key(exchange.method, parts.path, parts.query)
            self._by_key[key].append(exchange)
            self._by_shape[_shape(key)].append(exchange)
        self.served = 0
        self.unknown = 0

    def __len__(self) -> int:
        return sum(len(found) for found in self._by_key.values())

    def _key(self, method: str, path: str, query: str) -> Key:
        pairs = parse_qsl(query, keep_blank_values=True)
        masked = tuple(sorted((k, _MASK if k in self._masked else v) for k, v in pairs))
        return method.upper(), path.rstrip("/") or "/", masked

    def answer(self, method: str, path: str, query: str) -> HttpExchange | None:
        """The recorded answer to this request at the replay's current time (None: never seen)."""
        key = self._key(method, path, query)
        found = self._by_key.get(key) or self._by_shape.get(_shape(key))
        if not found:
            return None
        at = bisect.bisect_right(found, self._clock(), key=lambda e: e.ts_recv)
        return found[max(0, at - 1)]

    async def handle(self, request: web.Request, path: str) -> web.Response:
        """Serve ``request`` (its path already stripped of any prefix) from the recording."""
        exchange = self.answer(request.method, path, request.query_string)
        if exchange is None:
            self.unknown += 1
            return web.json_response(
                {"error": f"not in the recording: {request.method} {path}"}, status=404
            )
        self.served += 1
        headers = {k: v for k, v in exchange.headers if k.lower() in _KEPT_HEADERS}
        return web.Response(status=exchange.status, body=exchange.body, headers=headers)


def _shape(key: Key) -> Key:
    """The key with time-like query values made alike."""
    method, path, query = key
    return method, path, tuple((k, _TIME if _TIME_LIKE.fullmatch(v) else v) for k, v in query)
