"""The processes of a chaos run: simulators (``venuefeed sim``) and the service (``venuefeed run``).

Each is a real separate process, so a SIGKILL is a real crash: nothing in the
service gets to flush, close or say goodbye. Output goes to a log file per
process (kept with the run's other files), never to a pipe that could fill.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

__all__ = ["ServiceProcess", "SimProcess", "free_port"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _spawn(args: list[str], log: Path, env: dict[str, str] | None = None) -> Any:
    handle = log.open("ab")
    try:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "venuefeed.cli", *args,
            stdin=asyncio.subprocess.DEVNULL, stdout=handle, stderr=handle,
            env={**os.environ, **(env or {})},
        )  # fmt: skip
    finally:
        handle.close()


class SimProcess:
    """One venue simulator on a known port, its ground truth appended to ``truth``."""

    def __init__(
        self,
        venue: str,
        folder: Path,
        *,
        seed: int,
        events_per_second: float,
        settings: dict[str, str],
    ) -> None:
        self.venue = venue
        self.port = free_port()
        self.truth = folder / f"truth-{venue}.jsonl"
        self.log = folder / f"sim-{venue}.log"
        self.seed = seed
        self.events_per_second = events_per_second
        self.settings = settings
        self.proc: Any = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        args = ["sim", self.venue, "--port", str(self.port), "--seed", str(self.seed),
                "--events-per-second", str(self.events_per_second),
                "--truth", str(self.truth)]  # fmt: skip
        for key, value in self.settings.items():
            args += ["--set", f"{key}={value}"]
        self.proc = await _spawn(args, self.log)
        await self._wait_ready()

    async def _wait_ready(self, within: float = 30.0) -> None:
        deadline = time.monotonic() + within
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.proc.returncode is not None:
                    raise RuntimeError(f"{self.venue} simulator exited: see {self.log}")
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with session.get(self.base + "/__sim/state") as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.venue} simulator not ready in {within:.0f} s: see {self.log}")

    async def control(self, action: str, body: dict[str, Any] | None = None) -> Any:
        """``POST /__sim/<action>`` (``faults``, ``pause``, ``resume``, ``cut``, ``silence``)."""
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
            session.post(f"{self.base}/__sim/{action}", json=body or {}) as resp,
        ):
            resp.raise_for_status()
            return await resp.json()

    async def stop(self) -> int | None:
        """SIGTERM (the simulator records its final books), then wait; SIGKILL if it hangs."""
        if self.proc is None or self.proc.returncode is not None:
            return None if self.proc is None else int(self.proc.returncode)
        self.proc.send_signal(signal.SIGTERM)
        try:
            return int(await asyncio.wait_for(self.proc.wait(), 20))
        except TimeoutError:
            self.proc.kill()
            return int(await self.proc.wait())


class ServiceProcess:
    """``venuefeed --config FILE run``, started, killed and restarted by a scenario."""

    def __init__(self, config: Path, folder: Path, api_port: int) -> None:
        self.config = config
        self.log = folder / "service.log"
        self.api_port = api_port
        self.proc: Any = None
        self.exit_codes: list[int] = []
        """Every exit of this service, in order (-9 for a SIGKILL)."""

    async def start(self, env: dict[str, str]) -> None:
        """Start ``venuefeed run``; ``env`` carries the secrets (never the config file)."""
        self.proc = await _spawn(["--config", str(self.config), "run"], self.log, env)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def kill(self) -> None:
        """SIGKILL: a crash, nothing flushed."""
        if self.running:
            self.proc.kill()
            self.exit_codes.append(int(await self.proc.wait()))

    async def terminate(self, within: float = 60.0) -> int:
        """SIGTERM and wait for a clean exit (it must flush everything accepted and exit 0)."""
        if not self.running:
            return int(self.proc.returncode) if self.proc is not None else -1
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = int(await asyncio.wait_for(self.proc.wait(), within))
        except TimeoutError:  # hung on the way out: killed, and its -9 is the verdict
            self.proc.kill()
            code = int(await self.proc.wait())
        self.exit_codes.append(code)
        return code

    async def status(self) -> dict[str, Any] | None:
        """``GET /api/status`` (None while the service is down or not answering)."""
        with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError, ValueError):
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session,
                session.get(f"http://127.0.0.1:{self.api_port}/api/status") as resp,
            ):
                body: dict[str, Any] = await resp.json()
                return body
        return None
