"""Structured logging: JSON when not on a terminal, readable on one.

Secrets never reach the output. Every configured credential is registered
with :func:`register_secret` at start, and a processor replaces any occurrence
of it in any log field -- so a key that slips into an exception text or a URL
is masked too, not only fields we remembered to leave out.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog

__all__ = ["configure", "get_logger", "register_secret"]

_MASK = "********"
_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Mask ``value`` wherever it would appear in a log line (ignored if short)."""
    if value and len(value) >= 4:
        _secrets.add(value)
        # A PEM key may be logged line by line in a traceback; mask each line too.
        for line in value.splitlines():
            line = line.strip()
            if len(line) >= 16 and not line.startswith("-----"):
                _secrets.add(line)


def _redact_text(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, _MASK)
    return text


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return _redact_text(value)
    if isinstance(value, dict):
        return {k: _redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact(v) for v in value)
    return value


def _redact_processor(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    if not _secrets:
        return event_dict
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
    """Set up structlog (and the stdlib root logger it renders through)."""
    for secret in secrets:
        register_secret(secret)
    out = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        _redact_processor,
        renderer,
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str, **context: Any) -> Any:
    """A bound logger; ``name`` is the module or component."""
    return structlog.get_logger(name).bind(**context) if context else structlog.get_logger(name)
