"""The live side of the pipeline: recent events and subscribers (API, dashboard).

Recent events are kept as objects in a bounded ring and encoded only when
asked for. Each live subscriber has its own bounded queue; a subscriber that
does not keep up loses its oldest events (counted) instead of slowing the
pipeline down.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from venuefeed.models import Event

__all__ = ["LiveHub", "Subscription"]

_to_builtins = msgspec.to_builtins


def event_dict(event: Event) -> dict[str, Any]:
    data: dict[str, Any] = _to_builtins(event)
    return data


@dataclass(eq=False)
class Subscription:
    venues: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=lambda: asyncio.Queue(1000))
    dropped: int = 0

    def wants(self, venue: str, type_: str) -> bool:
        return (not self.venues or venue in self.venues) and (not self.types or type_ in self.types)


class LiveHub:
    def __init__(self, recent_capacity: int = 2000) -> None:
        self._recent: deque[Event] = deque(maxlen=recent_capacity)
        self._subscribers: set[Subscription] = set()
        self.observer: Callable[[Event], None] | None = None
        """Sees every published event object (the instrument history); must not block."""

    def publish_many(self, events: Sequence[Event]) -> None:
        """Publish a batch's events in order: one call per batch on the pipeline's hot path."""
        self._recent.extend(events)
        observer = self.observer
        if observer is not None:
            for event in events:
                observer(event)
        if self._subscribers:
            for event in events:
                self._send(event)

    def _send(self, event: Event) -> None:
        data = event_dict(event)
        for sub in self._subscribers:
            if sub.wants(event.venue, data["type"]):
                if sub.queue.full():
                    sub.queue.get_nowait()
                    sub.dropped += 1
                sub.queue.put_nowait(data)

    def recent(
        self, limit: int = 50, offset: int = 0, types: Collection[str] = ()
    ) -> list[dict[str, Any]]:
        """Newest first."""
        out: list[dict[str, Any]] = []
        skipped = 0
        for event in reversed(self._recent):
            data = event_dict(event)
            if types and data["type"] not in types:
                continue
            if skipped < offset:
                skipped += 1
                continue
            out.append(data)
            if len(out) >= limit:
                break
        return out

    def subscribe(self, venues: Collection[str] = (), types: Collection[str] = ()) -> Subscription:
        sub = Subscription(frozenset(venues), frozenset(types))
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)

    async def stream(self, sub: Subscription) -> AsyncIterator[dict[str, Any]]:
        try:
            while True:
                yield await sub.queue.get()
        finally:
            self.unsubscribe(sub)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)
