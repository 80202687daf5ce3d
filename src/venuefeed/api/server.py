"""Serve the API from inside the running service: uvicorn on the service's event loop.

One process, one loop: the API reads the service's state directly (no
locks, no copies) and the live socket is fed straight from the pipeline's hub.
The socket is bound here, before uvicorn starts, so "port in use" is a clear
exception for the caller instead of uvicorn's ``sys.exit`` inside a task, and
``port=0`` gives an ephemeral port (tests) readable from :attr:`ApiServer.port`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import Iterator

import uvicorn

from venuefeed.api.app import create_app
from venuefeed.api.deps import ApiState
from venuefeed.config import ApiSettings
from venuefeed.log import get_logger
from venuefeed.service import Service

__all__ = ["ApiConfigError", "ApiServer", "is_loopback"]

log = get_logger("venuefeed.api")


class ApiConfigError(Exception):
    """The API cannot start as configured (exposed without a token, port in use)."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own SIGINT/SIGTERM handlers: the host process owns signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ApiServer:
    """``await ApiServer(service, settings).start()`` ... ``await server.stop()``."""

    def __init__(
        self, service: Service, settings: ApiSettings, *, shutdown_timeout: int = 5
    ) -> None:
        self.service = service
        self.settings = settings
        self.app = create_app(service, settings)
        self.port: int | None = None
        self._shutdown_timeout = shutdown_timeout
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        host = self.settings.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    def _bind(self) -> socket.socket:
        host, port = self.settings.host, self.settings.port
        token = self.settings.token
        if not is_loopback(host) and (token is None or not token.get_secret_value()):
            raise ApiConfigError(
                f"refusing to serve the API on non-loopback address {host!r} without a token: "
                "set api.token (VENUEFEED_API__TOKEN) or bind to 127.0.0.1"
            )
        try:
            family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
            sock = socket.create_server((host, port), family=family)
        except OSError as exc:
            raise ApiConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        sock.setblocking(False)
        return sock

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("the API server is already running")
        sock = self._bind()
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            lifespan="off",  # the service's owner runs its lifecycle
            ws="wsproto",
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=self._shutdown_timeout,
        )
        server = self._server = _EmbeddedServer(config)
        self._task = asyncio.create_task(server.serve(sockets=[sock]), name="api-server")
        while not server.started:
            if self._task.done():
                sock.close()
                self._task.result()  # raises what stopped it
                raise ApiConfigError("the API server stopped during start-up")
            await asyncio.sleep(0.01)
        log.info("api listening", url=self.url)

    async def stop(self) -> None:
        """Close live sockets and jobs, then the listener; waits at most the shutdown timeout."""
        server, task = self._server, self._task
        if server is None or task is None:
            return
        state: ApiState = self.app.state.api
        await state.jobs.close()
        server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), self._shutdown_timeout + 1)
        except TimeoutError:
            server.force_exit = True
            await task
        finally:
            self._server = self._task = None

    async def __aenter__(self) -> ApiServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
