"""Prometheus metrics on a port of their own (``metrics.port``, seed: ``PROMETHEUS_PORT``).

The API serves ``/metrics`` already; deployments built from the seed documents
scrape a dedicated port instead, and a scraper should not need the API (its
token, its host checks) to read counters. prometheus-client's own server runs
in a daemon thread and serves the same process-wide registry.
"""

from __future__ import annotations

import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server

__all__ = ["MetricsPort"]


class MetricsPort:
    """A running metrics endpoint; :meth:`close` stops it."""

    def __init__(self, host: str, port: int) -> None:
        server, thread = start_http_server(port, addr=host)
        self._server: WSGIServer = server
        self._thread: threading.Thread = thread
        self.host = host
        self.port = int(server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
