"""A loopback TCP proxy that passes, refuses or stalls on command.

A store or a bus that *refuses* connections is the easy outage: the client
sees an error at once. The hard one is a peer that accepted the connection
and then stops answering -- a hung server, a full network buffer, a firewall
that drops instead of rejecting: nothing arrives, nothing fails, only time
passes. ``stall`` produces exactly that: existing and new connections stay
open, and not one byte moves in either direction until ``pass_through``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum

__all__ = ["Mode", "StallingProxy"]

_CHUNK = 64 * 1024


class Mode(enum.StrEnum):
    PASS = "pass"
    REFUSE = "refuse"
    STALL = "stall"


class StallingProxy:
    """Listen on 127.0.0.1:``port`` (0 = any) and forward to ``target_host:target_port``."""

    def __init__(self, target_host: str, target_port: int, port: int = 0) -> None:
        self.target = (target_host, target_port)
        self.port = port
        self.mode = Mode.PASS
        self.connections = 0
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self._drop_all()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def url(self, url: str, port: int) -> str:
        """``url`` with ``127.0.0.1:<port>`` pointed at this proxy instead."""
        return url.replace(f"127.0.0.1:{port}", f"127.0.0.1:{self.port}")

    def pass_through(self) -> None:
        self.mode = Mode.PASS
        self._flowing.set()

    def stall(self) -> None:
        """Keep every connection open and move no byte (new connections are accepted too)."""
        self.mode = Mode.STALL
        self._flowing.clear()

    def refuse(self) -> None:
        """Close every connection and every new one at once."""
        self.mode = Mode.REFUSE
        self._flowing.set()
        self._drop_all()

    def _drop_all(self) -> None:
        for a, b in list(self._pairs):
            a.close()
            b.close()
        self._pairs.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode is Mode.REFUSE:
            writer.close()
            return
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        pair = (writer, up_writer)
        self._pairs.add(pair)
        pumps = [
            asyncio.ensure_future(self._pump(reader, up_writer)),
            asyncio.ensure_future(self._pump(up_reader, writer)),
        ]
        for task in pumps:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pumps:
                task.cancel()
            self._pairs.discard(pair)
            writer.close()
            up_writer.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy bytes while flowing; while stalled, read nothing (the peer's buffers fill)."""
        with contextlib.suppress(ConnectionError, OSError):
            while True:
                await self._flowing.wait()
                data = await reader.read(_CHUNK)
                if not data:
                    return
                # Stalled while this chunk was in hand: hold it until flowing again.
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
