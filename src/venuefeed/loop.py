"""The event loop the service runs on: uvloop where it is installed, asyncio otherwise.

uvloop (libuv, in C) spends less CPU per wake-up, timer and socket read than
asyncio's pure-Python loop -- the hot path is measured (bench/bench_e2e.py).
It is a dependency on every platform it supports; where it is missing,
asyncio's own loop runs, with the same behaviour (benchmarks compare both).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["loop_factory", "run"]

T = TypeVar("T")


def loop_factory(uvloop_wanted: bool = True) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop constructor, or None for asyncio's default."""
    if not uvloop_wanted:
        return None
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run(main: Coroutine[Any, Any, T], *, uvloop_wanted: bool = True) -> T:
    """``asyncio.run`` on the loop :func:`loop_factory` picks."""
    with asyncio.Runner(loop_factory=loop_factory(uvloop_wanted)) as runner:
        return runner.run(main)
