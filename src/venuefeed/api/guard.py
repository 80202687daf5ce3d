"""What a browser on another site must not be able to do to a loopback API.

Binding to 127.0.0.1 keeps the network out, not the operator's own browser:
any page it opens can send requests to ``http://127.0.0.1:8080``. Two attacks
follow, and this middleware refuses both, for HTTP and the live WebSocket:

* **DNS rebinding.** ``evil.example`` first resolves to the attacker's server,
  then to 127.0.0.1; the page is then *same-origin* with our API and can read
  and write everything. The browser still sends ``Host: evil.example``, so
  only hosts on a list are served: the loopback names, ``api.host``, and
  ``api.allowed_hosts`` (``*`` turns the check off, for a proxy that checks).
* **Cross-site requests (CSRF).** A form on ``evil.example`` can POST to
  ``stop-continuous`` without reading the answer. Modern browsers label every
  request with ``Sec-Fetch-Site`` and, cross-origin, ``Origin``; a
  state-changing request (any method but GET/HEAD/OPTIONS) and every
  WebSocket handshake must be same-origin by those headers, or come from an
  origin listed in ``api.cors_origins``. A request with neither header is not
  from a browser (curl, scripts, Prometheus) and cannot be forged by a page,
  so it passes -- the same rule as Go's ``http.CrossOriginProtection``.

The dashboard is served by the API itself, so its requests are same-origin
and pass unchanged.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["LOOPBACK_NAMES", "RequestGuard", "allowed_hosts"]

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::"})
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def allowed_hosts(host: str, extra: Iterable[str]) -> frozenset[str]:
    """Loopback names, the bound host (unless a wildcard) and the configured names."""
    names = set(LOOPBACK_NAMES) | {_normal(h) for h in extra}
    if host not in _WILDCARD_BINDS:
        names.add(_normal(host))
    return frozenset(names)


def _normal(name: str) -> str:
    return name.strip().strip("[]").rstrip(".").lower()


def _split_host(value: str) -> tuple[str, int | None]:
    """``Host`` header -> (name, port); ``[::1]:8080`` and ``localhost`` alike."""
    value = value.strip()
    if value.startswith("["):
        name, _, rest = value[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif value.count(":") == 1:
        name, _, port_text = value.partition(":")
    else:
        name, port_text = value, ""
    port = int(port_text) if port_text.isdigit() else None
    return _normal(name), port


def _is_loopback_ip(name: str) -> bool:
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class RequestGuard:
    """ASGI middleware: refuse foreign ``Host`` headers and cross-site state changes."""

    def __init__(self, app: ASGIApp, hosts: frozenset[str], trusted_origins: Iterable[str]) -> None:
        self.app = app
        self.any_host = "*" in hosts
        self.hosts = hosts
        self.trusted_origins = frozenset(o.rstrip("/").lower() for o in trusted_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = self._host_refusal(headers) or self._origin_refusal(scope, headers)
        if refusal is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # uvicorn answers 403
        else:
            await _refuse(send, *refusal)

    def _host_refusal(self, headers: Headers) -> tuple[int, str] | None:
        if self.any_host:
            return None
        name, _ = _split_host(headers.get("host", ""))
        if name in self.hosts or _is_loopback_ip(name):
            return None
        shown = name[:64] if name.isascii() and name.isprintable() else "(not printable)"
        return 400, f"host {shown!r} is not allowed: add it to api.allowed_hosts"

    def _origin_refusal(self, scope: Scope, headers: Headers) -> tuple[int, str] | None:
        if scope["type"] == "http" and scope["method"] in SAFE_METHODS:
            return None
        origin = headers.get("origin")
        site = headers.get("sec-fetch-site")
        if origin is not None and origin.rstrip("/").lower() in self.trusted_origins:
            return None
        if site is not None:
            if site in ("same-origin", "none"):
                return None
        elif origin is None or self._same_origin(origin, headers.get("host", "")):
            return None  # no browser marker at all: not a request a page can forge
        return 403, "cross-origin request refused: send it from the dashboard's own origin"

    @staticmethod
    def _same_origin(origin: str, host: str) -> bool:
        try:
            parts = urlsplit(origin)
            origin_port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
        except ValueError:
            return False
        name, port = _split_host(host)
        default = _DEFAULT_PORTS.get(parts.scheme)
        return _normal(parts.hostname or "") == name and origin_port == (port or default)


async def _refuse(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())],
    })  # fmt: skip
    await send({"type": "http.response.body", "body": body})
