"""Read-only views the API builds on top of the service.

Kept apart from the routes so the REST endpoints, the live socket and the
dashboard show the same numbers computed the same way.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from venuefeed.log import mask_url_passwords, url_passwords
from venuefeed.metrics import TRADE_LATENCY
from venuefeed.models import Market

if TYPE_CHECKING:
    from venuefeed.service import Service

__all__ = ["Catalog", "LatencySampler", "Redactor", "dashboard_stats", "metrics_view"]

NS = 1_000_000_000
MIN_SECRET_LEN = 8
"""Shorter values are not searched for: masking 'abc' everywhere would corrupt output."""


class Catalog:
    """Instrument -> (market title, outcome name), so the events table can say what traded.

    Rebuilt per venue only when discovery replaced that venue's market map.
    """

    def __init__(self, service: Service) -> None:
        self._service = service
        self._index: dict[str, tuple[dict[str, Market], dict[str, tuple[str, str]]]] = {}

    def label(self, venue: str, instrument: str) -> tuple[str, str] | None:
        runner = self._service.runners.get(venue)
        if runner is None:
            return None
        markets = runner.markets
        cached = self._index.get(venue)
        if cached is None or cached[0] is not markets:
            index = {o.token_id: (m.title, o.name) for m in markets.values() for o in m.outcomes}
            cached = self._index[venue] = (markets, index)
        return cached[1].get(instrument)

    def enrich(self, event: dict[str, Any]) -> dict[str, Any]:
        """Add ``title`` and ``outcome`` to an event dict when the instrument is known."""
        label = self.label(event.get("venue", ""), event.get("instrument", ""))
        if label is not None:
            event["title"], event["outcome"] = label
        return event


def _latency_totals() -> tuple[float, float]:
    total = count = 0.0
    for family in TRADE_LATENCY.collect():
        for sample in family.samples:
            if sample.name.endswith("_sum"):
                total = sample.value
            elif sample.name.endswith("_count"):
                count = sample.value
    return total, count


class LatencySampler:
    """Per-second mean of ``trade_processing_latency_seconds``, for the dashboard chart.

    Sampled lazily (at most once a second, whenever a live client asks) from
    the histogram's running sum and count, so it costs nothing while nobody
    watches; seconds nobody sampled show as gaps.
    """

    def __init__(
        self,
        seconds: int = 120,
        clock: Callable[[], float] = time.time,
        totals: Callable[[], tuple[float, float]] = _latency_totals,
    ) -> None:
        self._clock = clock
        self._totals = totals
        self._points: deque[tuple[int, float | None]] = deque(maxlen=seconds)
        self._last: tuple[int, float, float] | None = None

    def sample(self) -> None:
        now = int(self._clock())
        last = self._last
        if last is not None and last[0] == now:
            return
        total, count = self._totals()
        if last is not None:
            d_count = count - last[2]
            mean_ms = (total - last[1]) / d_count * 1000 if d_count > 0 else None
            self._points.append((now, mean_ms))
        self._last = (now, total, count)

    def series(self, seconds: int = 60) -> list[float | None]:
        """Values for the last ``seconds`` seconds, oldest first, None where unknown."""
        now = int(self._clock())
        by_ts = dict(self._points)
        return [by_ts.get(ts) for ts in range(now - seconds + 1, now + 1)]


def metrics_view(service: Service) -> dict[str, Any]:
    """The service's 5-minute window plus freshness and coverage (data-quality panel).

    Freshness is the share of live trades that passed the G1 age limit; coverage
    the share of subscribed instruments that produced any event in the window.
    """
    view = service.metrics_window()
    totals = service.stats.totals()
    fresh, stale = totals.get("trade_age.count", 0), totals.get("g1_stale", 0)
    now = time.time_ns()
    horizon = service.stats.window * NS
    subscribed = covered = 0
    for runner in service.runners.values():
        seen = runner.last_seen
        subscribed += len(runner.instruments)
        covered += sum(1 for i in runner.instruments if now - seen.get(i, 0) <= horizon)
    view["freshness_pct"] = round(100 * fresh / (fresh + stale), 1) if fresh + stale else None
    view["instruments_subscribed"] = subscribed
    view["instruments_with_data"] = covered
    view["coverage_pct"] = round(100 * covered / subscribed, 1) if subscribed else None
    view["latency_ms"] = service.latency_ms()
    return view


def dashboard_stats(
    service: Service, latency: LatencySampler, seconds: int = 60, errors: int = 20
) -> dict[str, Any]:
    """One ``stats`` message of the live socket: everything the dashboard panels show."""
    latency.sample()
    events = service.stats.series("events", seconds)
    return {
        "kind": "stats",
        "ts": time.time(),
        "status": service.status(),
        "metrics": metrics_view(service),
        "series": {
            "ts": [ts for ts, _ in events],
            "events": [n for _, n in events],
            "latency_ms": latency.series(seconds),
        },
        "errors": service.errors.recent(3600)[:errors],
    }


class Redactor:
    """Replaces configured secrets in outgoing text: the last guard of "no secret in a response".

    Config views already mask ``SecretStr`` values; this also catches a secret
    that slipped into an error message (a URL with a key in it, say), and the
    password of any ``scheme://user:password@host`` URL, configured or not.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        forms: set[str] = set()
        for secret in secrets:
            for part in (secret, *url_passwords(secret)):
                if len(part) >= MIN_SECRET_LEN:
                    forms.add(part)
                    forms.add(json.dumps(part)[1:-1])  # as it appears inside a JSON string
        self._forms = sorted(forms, key=len, reverse=True)

    def text(self, text: str) -> str:
        for form in self._forms:
            if form in text:
                text = text.replace(form, "********")
        return mask_url_passwords(text)

    @classmethod
    def for_service(cls, service: Service, *extra: SecretStr | None) -> Redactor:
        """Every configured secret; a key file's path is not one (errors may name the file)."""
        settings = service.settings
        found = [secret.get_secret_value() for venue in settings.venues.values()
                 for name, secret in venue.credentials.items()
                 if not name.endswith("_path")]  # fmt: skip
        others = (settings.api.token, settings.storage.database_url, *extra)
        found.extend(s.get_secret_value() for s in others if s is not None)
        found.extend(v for v in (os.environ.get("DATABASE_URL"), settings.bus.nats_url) if v)
        return cls(found)
