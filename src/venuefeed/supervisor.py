"""Keeps components running: restart with backoff, mark failed, never take the service down.

A component is a coroutine factory (a venue stream, a poller, a writer). When
it raises, it is restarted after an exponential, jittered delay; after
``max_failures`` failures within ``window`` seconds it is marked ``failed``
in status with its last error -- and still retried at the slowest pace, so a
venue that comes back after an outage is picked up again without a restart.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from venuefeed.log import get_logger
from venuefeed.metrics import COMPONENT_RESTARTS
from venuefeed.stats import ErrorLog
from venuefeed.transport.backoff import Backoff

__all__ = ["Component", "Supervisor"]

log = get_logger("venuefeed.supervisor")


@dataclass(eq=False)
class Component:
    name: str
    state: str = "starting"
    restarts: int = 0
    last_error: str | None = None
    started_at: float = field(default_factory=time.time)
    task: asyncio.Task[None] | None = None
    _failures: deque[float] = field(default_factory=deque)

    def view(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "restarts": self.restarts,
            "last_error": self.last_error,
        }


class Supervisor:
    def __init__(
        self,
        *,
        errors: ErrorLog | None = None,
        max_failures: int = 5,
        window: float = 300.0,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        stable_after: float = 60.0,
    ) -> None:
        self.components: dict[str, Component] = {}
        self.errors = errors or ErrorLog()
        self._max_failures = max_failures
        self._window = window
        self._backoff = (backoff_base, backoff_cap)
        self._stable_after = stable_after

    def start(self, name: str, factory: Callable[[], Awaitable[None]]) -> Component:
        """Run ``factory()`` under supervision; a second start of a running name is refused."""
        existing = self.components.get(name)
        if existing is not None and existing.task is not None and not existing.task.done():
            raise RuntimeError(f"component {name!r} is already running")
        component = Component(name)
        self.components[name] = component
        component.task = asyncio.create_task(self._run(component, factory), name=name)
        return component

    async def _run(self, component: Component, factory: Callable[[], Awaitable[None]]) -> None:
        backoff = Backoff(*self._backoff)
        while True:
            component.state = "running"
            started = time.monotonic()
            try:
                await factory()
            except asyncio.CancelledError:
                component.state = "stopped"
                raise
            except Exception as exc:  # a component failure must not stop the others
                component.last_error = f"{type(exc).__name__}: {exc}"
                component.restarts += 1
                COMPONENT_RESTARTS.labels(component.name).inc()
                self.errors.add(component.name, type(exc).__name__, str(exc))
                now = time.monotonic()
                if now - started > self._stable_after:
                    backoff.reset()
                failures = component._failures
                failures.append(now)
                while failures and failures[0] < now - self._window:
                    failures.popleft()
                failed = len(failures) >= self._max_failures
                component.state = "failed" if failed else "backoff"
                delay = backoff.next_delay()
                log.warning("component failed", component=component.name,
                            error=component.last_error, retry_in=round(delay, 2),
                            state=component.state)  # fmt: skip
                await asyncio.sleep(delay)
                continue
            component.state = "done"
            return

    async def stop(self, name: str) -> None:
        component = self.components.get(name)
        if component is None or component.task is None:
            return
        component.task.cancel()
        await asyncio.gather(component.task, return_exceptions=True)
        component.state = "stopped"

    async def stop_all(self, prefix: str = "") -> None:
        names = [n for n in self.components if n.startswith(prefix)]
        await asyncio.gather(*(self.stop(n) for n in names))

    def view(self) -> dict[str, dict[str, Any]]:
        return {name: c.view() for name, c in self.components.items()}
