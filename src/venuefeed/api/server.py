"""Serve the API from inside the running service: uvicorn on the service's event loop.

One process, one loop: the API reads the service's state directly (no
locks, no copies) and the live socket is fed straight from the pipeline's hub.
The socket is bound here, before uvicorn starts -- by :func:`open_listener`,
which the CLI calls before it starts the service -- so "port in use" or "exposed
without a token" stops the program before ingestion begins instead of after,
and ``port=0`` gives an ephemeral port (tests) readable from :attr:`ApiServer.port`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import socket
from collections.abc import Iterator

import uvicorn

from venuefeed.api.app import create_app
from venuefeed.api.deps import ApiState
from venuefeed.config import ApiSettings, ConfigError
from venuefeed.log import get_logger
from venuefeed.service import Service

__all__ = ["ApiConfigError", "ApiServer", "PortInUse", "is_loopback", "open_listener"]

log = get_logger("venuefeed.api")


class ApiConfigError(ConfigError):
    """The API cannot start as configured (exposed without a token, port in use)."""


class PortInUse(ApiConfigError):
    """Another process listens on the configured port."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(f"port {port} is in use (api.host {host})")
        self.host, self.port = host, port


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def open_listener(settings: ApiSettings) -> socket.socket:
    """Check the API settings and take the port, before the caller starts anything else.

    Raises :class:`ApiConfigError` (or :class:`PortInUse`) with a one-line reason.
    """
    host, port = settings.host, settings.port
    token = settings.token
    if not is_loopback(host) and (token is None or not token.get_secret_value()):
        raise ApiConfigError(
            f"refusing to serve the API on non-loopback address {host!r} without a token: "
            "set api.token (VENUEFEED_API__TOKEN) or bind to 127.0.0.1"
        )
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.create_server((host, port), family=family)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(host, port) from None
        raise ApiConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own SIGINT/SIGTERM handlers: the host process owns signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ApiServer:
    """``await ApiServer(service, settings).start()`` ... ``await server.stop()``."""

    def __init__(
        self,
        service: Service,
        settings: ApiSettings,
        *,
        sock: socket.socket | None = None,
        shutdown_timeout: int = 5,
    ) -> None:
        """``sock``: a listener from :func:`open_listener` (else opened by :meth:`start`)."""
        self.service = service
        self.settings = settings
        self.app = create_app(service, settings)
        self.port: int | None = None
        self._shutdown_timeout = shutdown_timeout
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._sock = sock

    @property
    def url(self) -> str:
        host = self.settings.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("the API server is already running")
        sock = self._sock if self._sock is not None else open_listener(self.settings)
        self._sock = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            lifespan="off",  # the service's owner runs its lifecycle
            ws="wsproto",
            log_config=None,
            log_level="warning",  # no line per connection: anyone reaching the API could flood it
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=self._shutdown_timeout,
        )
        server = self._server = _EmbeddedServer(config)
        self._task = asyncio.create_task(server.serve(sockets=[sock]), name="api-server")
        while not server.started:
            if self._task.done():
                self._release()
                self._task.result()  # raises what stopped it
                raise ApiConfigError("the API server stopped during start-up")
            await asyncio.sleep(0.01)
        log.info("api listening", url=self.url, allowed_hosts=sorted(self.app.state.hosts))

    def _release(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    async def stop(self) -> None:
        """Close live sockets and jobs, then the listener; waits at most the shutdown timeout."""
        server, task = self._server, self._task
        if server is None or task is None:
            self._release()  # bound but never started
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
            self._release()

    async def __aenter__(self) -> ApiServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
