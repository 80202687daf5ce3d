"""Structured logging: JSON when not on a terminal, readable on one.

Secrets never reach the output. Every configured credential is registered
with :func:`register_secret` at start, and a processor replaces any occurrence
of it in any log field -- so a key that slips into an exception text or a URL
is masked too, not only fields we remembered to leave out. The password of any
``scheme://user:password@host`` URL is masked whether registered or not.

Libraries log through the standard ``logging`` module (uvicorn, asyncio,
aiohttp, database drivers); their records go through the same processors, so
they are rendered alike and redacted alike instead of reaching stderr raw.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog

__all__ = [
    "configure",
    "get_logger",
    "mask_url_passwords",
    "redact",
    "register_secret",
    "url_passwords",
]

_MASK = "********"
_secrets: set[str] = set()
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]*:)(?P<pw>[^\s@/]+)@")
_handler: logging.Handler | None = None


def mask_url_passwords(text: str) -> str:
    """``postgresql://app:hunter2@db/x`` -> ``postgresql://app:********@db/x``, anywhere in text."""
    if "://" not in text:
        return text
    return _URL_PASSWORD.sub(lambda m: f"{m['head']}{_MASK}@", text)


def url_passwords(text: str) -> list[str]:
    """The passwords of the ``scheme://user:password@host`` URLs in ``text``."""
    return [m["pw"] for m in _URL_PASSWORD.finditer(text)] if "://" in text else []


def register_secret(value: str | None) -> None:
    """Mask ``value`` wherever it would appear in a log line (ignored if short)."""
    if value and len(value) >= 4:
        _secrets.add(value)
        # A PEM key may be logged line by line in a traceback; mask each line too.
        for line in value.splitlines():
            line = line.strip()
            if len(line) >= 16 and not line.startswith("-----"):
                _secrets.add(line)
        # A URL's password alone may show up in a driver's message.
        _secrets.update(p for p in url_passwords(value) if len(p) >= 4)


def redact(text: str) -> str:
    """``text`` with every registered secret and every URL password masked."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, _MASK)
    return mask_url_passwords(text)


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact(v) for v in value)
    return value


def _redact_processor(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in list(event_dict.items()):
        if not isinstance(value, int | float | bool) and value is not None:
            event_dict[key] = _redact(
                value if isinstance(value, str | dict | list | tuple) else str(value)
            )
    return event_dict


def configure(
    level: str = "INFO",
    fmt: str = "auto",
    stream: TextIO | None = None,
    secrets: Iterable[str | None] = (),
) -> None:
    """Set up structlog, and the stdlib root logger so library records render the same way."""
    global _handler
    for secret in secrets:
        register_secret(secret)
    out = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    stamp: list[Any] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    render: list[Any] = [structlog.processors.format_exc_info, _redact_processor, renderer]
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, *stamp, *render],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *stamp],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *render],
        )
    )
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    root.addHandler(handler)
    root.setLevel(level)
    _handler = handler


def get_logger(name: str, **context: Any) -> Any:
    """A bound logger; ``name`` is the module or component."""
    return structlog.get_logger(name).bind(**context) if context else structlog.get_logger(name)
