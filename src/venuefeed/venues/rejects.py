"""Bad venue input: counted per reason, logged once per reason, never raised.

Every venue and every parser shares this one mechanism, so that a malformed
frame, an unknown message type, a missing field or a number that fails its
check (:mod:`venuefeed.venues.checks`) is handled the same way everywhere: the
counter (``venue_frames_rejected_total{venue,reason}``) shows the rate, the
log shows the first example of each kind -- a venue that suddenly sends
thousands of frames of a new type a second must not flood the log -- and
ingestion goes on. A :class:`Rejects` is injected into every parser call; no
parser keeps its own counter or a module-level one.

It also carries the :class:`~venuefeed.venues.checks.TimeWindow` a venue time
must fall in: the parsers need exactly these two things to decide what to
refuse, and the window is configuration (``ingestion.venue_time_*``), so it
travels with the object the caller already injects.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import msgspec

from venuefeed import metrics
from venuefeed.log import get_logger
from venuefeed.transport import HttpError
from venuefeed.venues.checks import DECODE_ERRORS, Invalid, TimeWindow

__all__ = ["Rejects", "UnusableBody", "usable"]

T = TypeVar("T")
P = ParamSpec("P")

_MAX_LOGGED = 64
"""Distinct (reason, detail) pairs logged per venue; beyond it only counters move."""

_log = get_logger("venuefeed.rejects")


class Rejects:
    __slots__ = ("_counters", "_logged", "counts", "venue", "window")

    def __init__(self, venue: str, window: TimeWindow | None = None) -> None:
        self.venue = venue
        self.window = window if window is not None else TimeWindow()
        self.counts: dict[str, int] = {}
        self._logged: set[str] = set()
        self._counters: dict[str, Any] = {}

    def reject(self, reason: str, detail: str = "", sample: bytes | str = b"") -> None:
        """Count one rejection; log it if this reason (and detail) is new."""
        self.counts[reason] = self.counts.get(reason, 0) + 1
        counter = self._counters.get(reason)
        if counter is None:
            counter = self._counters[reason] = metrics.REJECTED_FRAMES.labels(self.venue, reason)
        counter.inc()
        key = f"{reason}:{detail}"
        if key not in self._logged and len(self._logged) < _MAX_LOGGED:
            self._logged.add(key)
            shown = sample[:200]
            _log.warning(
                "frame rejected",
                venue=self.venue,
                reason=reason,
                detail=detail[:300],
                sample=bytes(shown) if isinstance(shown, bytes | bytearray) else shown,
            )

    def invalid(self, exc: Invalid, where: str, sample: bytes | str = b"") -> None:
        """Count a failed boundary check of one item (``where`` names the message or row)."""
        self.reject(exc.reason, f"{where}: {exc.detail}", sample)

    def bug(self, exc: Exception, where: str) -> None:
        """Count an exception a parser did not expect (``parser_bug``), with its traceback once.

        Parsers catch everything at the item boundary so that a bug costs one
        item, not the stream or the page; the fuzzer counts ``parser_bug`` as a
        failure, so this never hides a bug from the tests.
        """
        key = f"parser_bug:{where}:{type(exc).__name__}"
        if key not in self._logged and len(self._logged) < _MAX_LOGGED:
            _log.error("parser bug", venue=self.venue, where=where, exc_info=exc)
        self.reject("parser_bug", f"{where}: {type(exc).__name__}")

    def guard(
        self, where: str, convert: Callable[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> T | None:
        """``convert(*args)``, or ``None`` when it fails a check (counted) or has a bug."""
        try:
            return convert(*args, **kwargs)
        except Invalid as exc:
            self.invalid(exc, where)
        except Exception as exc:  # the item boundary: a bug costs this item only
            self.bug(exc, where)
        return None

    def decode_each(
        self, decoder: msgspec.json.Decoder[T], raws: list[msgspec.Raw], reason: str
    ) -> list[T | None]:
        """Decode the items of a list one by one (the slow path after a whole-list decode
        failed): a bad item is ``None``, counted under ``reason``, and the others survive."""
        out: list[T | None] = []
        for raw in raws:
            try:
                out.append(decoder.decode(raw))
            except DECODE_ERRORS as exc:
                self.reject(reason, str(exc)[:200], bytes(raw))
                out.append(None)
        return out

    def decode(self, decoder: msgspec.json.Decoder[T], data: bytes | str, reason: str) -> T | None:
        """``decoder.decode(data)``, or ``None`` counted under ``reason``."""
        try:
            return decoder.decode(data)
        except DECODE_ERRORS as exc:
            self.reject(reason, str(exc)[:200], data)
            return None

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class UnusableBody(HttpError):
    """A REST answer whose body a page parser refused as a whole (already counted)."""


def usable(parsed: T | None, venue: str, what: str) -> T:
    """``parsed``, or :class:`UnusableBody` when the page parser refused the whole body.

    A body that is not the documented shape at all (a truncated read, an HTML
    error page behind a proxy) is a failed request, not an empty page: the
    callers already retry or report an :class:`~venuefeed.transport.HttpError`,
    and a backfill must not end early and call the range complete.
    """
    if parsed is None:
        raise UnusableBody(
            f"{venue}: {what} body is not the documented shape", venue=venue, url=what
        )
    return parsed
