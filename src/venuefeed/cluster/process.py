"""Running a worker or a writer as a process: SIGTERM and Ctrl+C ask it to leave cleanly.

Not a cancellation: a worker told to stop still has to publish what it
holds, write its marks and release its leases, and a writer to finish the
batch in hand -- a cancelled task would skip exactly that. A second signal
cancels (the operator insists).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["run_until_signalled"]


def run_until_signalled(body: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> None:
    """Run ``body(stop)``; the first SIGTERM/SIGINT sets ``stop``, the second cancels."""

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.ensure_future(body(stop))
        loop = asyncio.get_running_loop()

        def on_signal() -> None:
            if stop.is_set():
                task.cancel()
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, on_signal)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(main())
