"""``/ws/live``: the real-time event stream behind the dashboard.

Protocol (JSON text frames):

* server -> client ``{"kind": "hello", "venues": [...], "types": [...], "stats": bool}``
  once, then ``{"kind": "events", "events": [...], "dropped": n}`` batches
  (oldest first; ``dropped`` counts events this client lost by not keeping up),
  and with stats on, a ``{"kind": "stats", ...}`` snapshot every second
  (see :func:`~venuefeed.api.views.dashboard_stats`).
* client -> server ``{"action": "subscribe", "venues": [...], "types": [...]}``
  replaces the filter (empty = everything); ``{"action": "stats", "enabled": bool}``
  switches the stats snapshots. A bad message gets ``{"kind": "error", ...}``.

The filter can also be given when connecting: ``/ws/live?venues=kalshi&types=trade&stats=1``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketDisconnected

from venuefeed.api.deps import ApiState
from venuefeed.api.routes_monitor import EVENT_TYPE_NAMES
from venuefeed.api.views import dashboard_stats
from venuefeed.pipeline.live import Subscription
from venuefeed.venues.base import known_venues

__all__ = ["STATS_INTERVAL", "router"]

router = APIRouter()

STATS_INTERVAL = 1.0
MAX_BATCH = 200
"""Events per frame: a burst goes out in a few frames instead of hundreds."""

CLIENT_GONE = (WebSocketDisconnect, WebSocketDisconnected)
"""How Starlette says the client left: ``WebSocketDisconnect`` from the send or
receive that noticed, ``WebSocketDisconnected`` (a ``RuntimeError``) from any
later send or receive -- e.g. the stats sender waiting on the lock while the
events sender found the socket closed. Both are the client's doing, not ours."""


class BadFilter(ValueError):
    pass


def _names(value: Any, known: tuple[str, ...] | list[str], what: str) -> frozenset[str]:
    if value is None or value == "":
        return frozenset()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise BadFilter(f"{what} must be a list of names")
    names = frozenset(i.strip() for i in items if i.strip())
    unknown = sorted(names - set(known))
    if unknown:
        raise BadFilter(f"unknown {what} {unknown}; known: {sorted(known)}")
    return names


class LiveSession:
    """One connected client: a hub subscription, a sender and a receiver."""

    def __init__(self, ws: WebSocket, state: ApiState, sub: Subscription, stats: bool) -> None:
        self.ws = ws
        self.state = state
        self.sub = sub
        self.stats = asyncio.Event()
        if stats:
            self.stats.set()
        self._send_lock = asyncio.Lock()

    async def send(self, message: dict[str, Any]) -> None:
        text = json.dumps(message, separators=(",", ":"), default=str)
        text = self.state.redactor.text(text)
        async with self._send_lock:
            await self.ws.send_text(text)

    async def run(self) -> None:
        sub = self.sub
        hello = {"kind": "hello", "venues": sorted(sub.venues), "types": sorted(sub.types)}
        await self.send({**hello, "stats": self.stats.is_set()})
        tasks = [asyncio.create_task(c) for c in (self._events(), self._stats(), self._receive())]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:  # what ended the session: the client leaving, or a bug to surface
            error = task.exception()
            if error is not None and not isinstance(error, CLIENT_GONE):
                raise error

    async def _events(self) -> None:
        queue = self.sub.queue
        enrich = self.state.catalog.enrich
        while True:
            batch = [enrich(await queue.get())]
            while len(batch) < MAX_BATCH and not queue.empty():
                batch.append(enrich(queue.get_nowait()))
            await self.send({"kind": "events", "events": batch, "dropped": self.sub.dropped})

    async def _stats(self) -> None:
        state = self.state
        while True:
            await self.stats.wait()
            await self.send(dashboard_stats(state.service, state.latency))
            await asyncio.sleep(STATS_INTERVAL)

    async def _receive(self) -> None:
        while True:
            text = await self.ws.receive_text()
            try:
                self._apply(json.loads(text))
            except (ValueError, TypeError, KeyError) as exc:
                await self.send({"kind": "error", "detail": str(exc)})

    def _apply(self, message: Any) -> None:
        if not isinstance(message, dict):
            raise BadFilter("a message is a JSON object with an 'action'")
        action = message.get("action")
        if action == "subscribe":
            venues = _names(message.get("venues"), known_venues(), "venues")
            types = _names(message.get("types"), EVENT_TYPE_NAMES, "types")
            self.sub.venues, self.sub.types = venues, types
        elif action == "stats":
            if message.get("enabled", True):
                self.stats.set()
            else:
                self.stats.clear()
        else:
            raise BadFilter(f"unknown action {action!r}; use 'subscribe' or 'stats'")


@router.websocket("/ws/live")
async def live(ws: WebSocket) -> None:
    state: ApiState = ws.app.state.api
    params = ws.query_params
    try:
        venues = _names(params.get("venues"), known_venues(), "venues")
        types = _names(params.get("types"), EVENT_TYPE_NAMES, "types")
    except BadFilter as exc:
        await ws.accept()
        await ws.send_text(json.dumps({"kind": "error", "detail": str(exc)}))
        await ws.close(code=1008)
        return
    stats = params.get("stats", "").lower() in ("1", "true", "yes")
    await ws.accept()
    hub = state.service.hub
    sub = hub.subscribe(venues, types)
    try:
        await LiveSession(ws, state, sub, stats).run()
    except CLIENT_GONE:
        pass
    finally:
        hub.unsubscribe(sub)
        with contextlib.suppress(RuntimeError, *CLIENT_GONE):  # client already gone
            await ws.close()
