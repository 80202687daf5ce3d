"""``venuefeed replay-server``: a recorded session served as the venues served it.

One port serves every recorded venue under its own prefix
(``http://127.0.0.1:P/<venue>/...``): its WebSocket speaks the venue's native
protocol -- it sends the very frames the venue sent, in order, paced by the
recorded receive times (``speed`` times faster) -- and its REST endpoints
answer what the venue answered at that time
(:class:`~venuefeed.lake.recorded_rest.RecordedRest`). ``venuefeed run``, or
any bot, points its venue URLs there (:meth:`ReplayServer.client_urls`) and
cannot tell it from the venue.

The server side is the shared simulator server (:mod:`venuefeed.sim`): the
HTTP server and its lifecycle, the socket registry with its bounded outboxes
and protocol pings. Nothing in it is venue-specific except where a venue's
own simulator already knows the answer: the endpoint layout of its URLs and
the test keys a client needs to build its signer.

How connections map: the recording keeps each connection's frames apart
(``conn``) and where it was replaced. A client's connection takes the next
recorded connection that has frames left and no client, and is sent them from
its first message on (its subscribe); where the recorded connection was
replaced, the server closes the client's, so the client reconnects and
resubscribes as it did live, and its new connection continues from there.
The client's subscribe is not interpreted: what is sent is what the venue
sent to the recorded client, which subscribed the same way -- a client
configured differently gets the recorded session all the same. A text
``PING`` is answered ``PONG`` (the application heartbeat the recorder does not
keep). Frames received as binary are sent as text.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from aiohttp import web

from venuefeed.lake.format import ConnEvent, HttpExchange
from venuefeed.lake.reader import iter_frames, venues
from venuefeed.lake.recorded_rest import RecordedRest
from venuefeed.log import get_logger
from venuefeed.sim.base import SimulatorBase
from venuefeed.sim.sockets import Heartbeat, SimSocket, Sockets
from venuefeed.transport.websocket import Frame
from venuefeed.venues.base import known_venues, simulator_class

__all__ = ["ReplayServer"]

log = get_logger("venuefeed.lake.replay_server")

_OUTBOX_HIGH = 5_000
"""Frames waiting in a client's outbox before the sender waits for it to read."""


@dataclass
class _Segment:
    """One recorded connection's frames until it was replaced."""

    conn: int
    frames: deque[tuple[int, str]] = field(default_factory=deque)


@dataclass
class _Client:
    venue: str
    segment: _Segment | None = None
    sender: asyncio.Task[None] | None = None


class ReplayServer(SimulatorBase):
    """Serves the recording at ``root`` at ``speed`` times the pace, from ``start`` (ns).

    From ``start``: what each connection received before it is sent at once when
    a client subscribes -- acknowledgements, the books' snapshots and every
    change since, so the client's state at ``start`` is the recorded one --
    and what came after, paced.
    """

    venue = "replay"

    def __init__(
        self,
        root: str | Path,
        *,
        speed: float = 1.0,
        start: int | None = None,
        only: Iterable[str] | None = None,
    ) -> None:
        super().__init__()
        self.sockets: Sockets[_Client] = Sockets(self, heartbeat=Heartbeat(5.0))
        self.root = Path(root)
        self.speed = speed
        wanted = set(only) if only is not None else None
        self.venues = [v for v in venues(root) if v in known_venues()
                       and (wanted is None or v in wanted)]  # fmt: skip
        self._segments: dict[str, list[_Segment]] = {}
        self._rest: dict[str, RecordedRest] = {}
        self.origin: int | None = start
        """Where the recording's clock starts: ``start``, else the first record."""
        self._started: float | None = None
        self.frames_sent = 0
        self._sent_ts = 0
        self._attached: set[tuple[str, int]] = set()
        self._twins: dict[str, SimulatorBase] = {}
        self.binary_as_text = 0
        for venue in self.venues:
            self._load(venue, start is None)
            if start is not None:
                self._skip_replaced_before(venue, start)

    def _load(self, venue: str, from_first: bool) -> None:
        """Read a venue's recording into per-connection segments and REST answers."""
        segments: list[_Segment] = []
        current: dict[int, _Segment] = {}
        exchanges: list[HttpExchange] = []
        for record in iter_frames(self.root, venue):
            if from_first and (self.origin is None or record.ts_recv < self.origin):
                self.origin = record.ts_recv
            if type(record) is Frame:
                segment = current.get(record.conn)
                if segment is None:
                    segment = current[record.conn] = _Segment(record.conn)
                    segments.append(segment)
                data = record.data
                if isinstance(data, bytes):
                    self.binary_as_text += 1
                    data = data.decode("utf-8", "replace")
                segment.frames.append((record.ts_recv, data))
            elif type(record) is ConnEvent and record.kind == "connected":
                old = current.pop(record.conn, None)
                if old is not None and not old.frames:
                    segments.remove(old)
            elif type(record) is HttpExchange:
                exchanges.append(record)
        self._segments[venue] = segments
        self._rest[venue] = RecordedRest(exchanges, self.clock)

    def _skip_replaced_before(self, venue: str, start: int) -> None:
        """A connection replaced before ``start`` is not served: its successor starts afresh."""
        segments = self._segments[venue]
        kept = []
        for n, segment in enumerate(segments):
            ended_before = segment.frames[-1][0] < start
            if ended_before and any(s.conn == segment.conn for s in segments[n + 1 :]):
                continue
            kept.append(segment)
        self._segments[venue] = kept

    # -- the recording's clock -----------------------------------------------------

    def clock(self) -> int:
        """The recorded time being served now (the origin until the first client subscribes;
        at speed 0, the newest frame sent)."""
        origin = self.origin or 0
        if self._started is None:
            return origin
        if self.speed <= 0:
            return max(origin, self._sent_ts)
        return origin + int((time.monotonic() - self._started) * self.speed * 1e9)

    def _due(self, ts: int) -> float:
        """Seconds until the frame received at ``ts`` is due (speed 0: at once)."""
        assert self._started is not None
        if self.speed <= 0:
            return 0.0
        origin = self.origin or ts
        if ts <= origin:  # before --from: at once
            return 0.0
        return self._started + (ts - origin) / 1e9 / self.speed - time.monotonic()

    # -- SimulatorBase -------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/{venue}/{tail:.*}", self._handle)

    def urls(self) -> dict[str, str]:
        """The first venue's endpoints (see :meth:`client_urls` for each venue)."""
        return self.client_urls(self.venues[0]) if self.venues else {}

    def client_urls(self, venue: str) -> dict[str, str]:
        """Where a client's ``venues.<venue>.urls`` point to be served this recording.

        The venue's simulator lays out its endpoints as the venue does; the
        same layout under ``/<venue>`` here.
        """
        twin = self._twin(venue)
        twin.host, twin.port = self.host, self.port
        out = {}
        for name, url in twin.urls().items():
            parts = urlsplit(url)
            out[name] = urlunsplit((parts.scheme, parts.netloc, f"/{venue}{parts.path}",
                                    parts.query, ""))  # fmt: skip
        return out

    def client_credentials_of(self, venue: str) -> dict[str, str]:
        """Test keys a client needs to build its signer (the server checks no signature)."""
        return self._twin(venue).client_credentials()

    def _twin(self, venue: str) -> SimulatorBase:
        twin = self._twins.get(venue)
        if twin is None:  # made once: a venue's test keys take a while to generate
            twin = self._twins[venue] = simulator_class(venue).for_demo(seed=0, events_per_second=0)
        return twin

    def client_settings(self) -> dict[str, object]:
        """Config overrides that point every recorded venue at this server (and only them)."""
        out: dict[str, object] = {}
        for venue in known_venues():
            out[f"venues.{venue}.enabled"] = venue in self.venues
        for venue in self.venues:
            out[f"venues.{venue}.urls"] = self.client_urls(venue)
            for key, value in self.client_credentials_of(venue).items():
                out[f"venues.{venue}.credentials.{key}"] = value
        return out

    def control_state(self) -> dict[str, object]:
        state = super().control_state()
        state.update(frames_sent=self.frames_sent, clock=self.clock(),
                     rest={v: {"served": r.served, "unknown": r.unknown}
                           for v, r in self._rest.items()})  # fmt: skip
        return state

    # -- serving -------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        venue = request.match_info["venue"]
        if venue not in self._rest:
            return web.json_response({"error": f"no recording of venue {venue!r} here"},
                                     status=404)  # fmt: skip
        path = "/" + request.match_info["tail"]
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self.sockets.serve(request, _Client(venue), self._on_text,
                                            on_binary=self._on_binary,
                                            on_close=self._on_close)  # fmt: skip
        return await self._rest[venue].handle(request, path)

    async def _on_text(self, sock: SimSocket[_Client], text: str) -> None:
        if text == "PING":
            self.sockets.reply(sock, "PONG")
            return
        self._begin(sock)

    async def _on_binary(self, sock: SimSocket[_Client], data: bytes) -> None:
        self._begin(sock)

    def _begin(self, sock: SimSocket[_Client]) -> None:
        """The client spoke (its subscribe): start sending it a recorded connection."""
        client = sock.state
        if client.sender is not None:
            return
        if self._started is None:
            self._started = time.monotonic()
        segments = self._segments[client.venue]
        free = [s for s in segments if (client.venue, s.conn) not in self._attached]
        if free:
            client.segment = free[0]
            segments.remove(free[0])
            self._attached.add((client.venue, free[0].conn))
            client.sender = asyncio.ensure_future(self._send(sock, client.segment))

    def _on_close(self, sock: SimSocket[_Client]) -> None:
        client = sock.state
        if client.sender is not None:
            client.sender.cancel()
        segment = client.segment
        if segment is None:
            return
        self._attached.discard((client.venue, segment.conn))
        if segment.frames:  # cut short: the next client of that connection takes the rest
            self._segments[client.venue].insert(0, segment)

    async def _send(self, sock: SimSocket[_Client], segment: _Segment) -> None:
        frames = segment.frames
        while frames:
            ts, data = frames[0]
            delay = self._due(ts)
            if delay > 0:
                await asyncio.sleep(delay)
            await _outbox_below(sock, _OUTBOX_HIGH)
            if sock.closed:
                return
            frames.popleft()
            self.sockets.reply(sock, data)
            self.frames_sent += 1
            self._sent_ts = max(self._sent_ts, ts)
        if any(s.conn == segment.conn for s in self._segments[sock.state.venue]):
            # The recorded connection was replaced here: so is the client's.
            await _outbox_below(sock, 1)
            await self.sockets.cut(sock, "recorded_reconnect")


async def _outbox_below(sock: SimSocket[_Client], frames: int) -> None:
    """Wait until fewer than ``frames`` wait in the outbox (or the socket closed).

    Polled: the shared socket writer drains the outbox and signals nothing.
    """
    while sock.outbox.qsize() >= frames and not sock.closed:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
