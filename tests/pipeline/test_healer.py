"""The gap healer against a real SQLite store: a gap is healed only once its trades are stored.

The venue here is a small :class:`VenueAdapter` whose trade history is a list
(and which can fail on purpose): the healer's contract with venues is exactly
``fetch_trade_window``, so this exercises it end to end without a network.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import ClassVar

import pytest

from venuefeed.config import Settings, load_config
from venuefeed.models import DataGap, Trade
from venuefeed.pipeline.healer import ALL_INSTRUMENTS, GapHealer
from venuefeed.pipeline.router import Pipeline
from venuefeed.pipeline.writer import SinkWriter
from venuefeed.sinks.sqlite import SqliteStore, open_reader
from venuefeed.stats import ErrorLog
from venuefeed.transport import CircuitOpenError
from venuefeed.venues.base import Capability, CheckResult, HistoryLimit, VenueAdapter

S = 1_000_000_000
NOW = time.time_ns()


def trade(instrument: str, n: int, at: int) -> Trade:
    return Trade(venue="hv", instrument=instrument, ts_venue=at, ts_recv=at,
                 trade_id=f"{instrument}-{n}", price="0.5", size="1", side="buy")  # fmt: skip


class HistoryVenue(VenueAdapter):
    """A venue whose REST history is a list; ``failures`` requests fail first."""

    name = "hv"
    default_urls: ClassVar[Mapping[str, str]] = {}
    capabilities: ClassVar[frozenset[Capability]] = frozenset({"trades", "stream"})

    def __init__(self, settings: Settings, history: list[Trade]) -> None:
        super().__init__(settings.venues["polymarket"], settings)
        self.history = history
        self.failures = 0
        self.refusals = 0
        """Requests refused by an open circuit breaker that lets a probe through now."""
        self.requests: list[tuple[str, int, int]] = []
        self.keeps_from: int | None = None
        """Trades before this are gone from the venue (a history limit)."""

    async def fetch_trades(
        self, instrument: str, start_ns: int, end_ns: int
    ) -> AsyncIterator[Trade]:
        self.requests.append((instrument, start_ns, end_ns))
        if self.failures:
            self.failures -= 1
            raise ConnectionError("venue says 503")
        if self.refusals:
            self.refusals -= 1
            raise CircuitOpenError("circuit open", venue="hv", url="/trades", retry_in=0.0)
        for t in self.history:
            if t.instrument == instrument and start_ns <= t.ts_venue <= end_ns:
                yield t
        if self.keeps_from is not None and start_ns < self.keeps_from:
            raise HistoryLimit("history starts later than the window")

    async def check(self) -> CheckResult:
        return CheckResult(self.name, reachable=True)


class Rig:
    def __init__(self, tmp_path: Path, history: list[Trade]) -> None:
        self.settings = load_config(
            overrides={"ingestion.heal_delay_seconds": 0, "ingestion.gap_margin_seconds": 1},
            environ={},
        )
        self.store = SqliteStore(tmp_path / "h.db")
        self.writer = SinkWriter(self.store)
        self.pipeline = Pipeline(self.settings, self.writer)
        self.venue = HistoryVenue(self.settings, history)
        self.live = True
        self.healer = GapHealer(
            self.venue, self.pipeline, self.settings.ingestion, ErrorLog(),
            instruments=lambda: {"A", "B"}, live=lambda: self.live,
        )  # fmt: skip

    def rows(self, sql: str) -> list[tuple[object, ...]]:
        return [tuple(r) for r in open_reader(self.store.path).execute(sql).fetchall()]

    async def settle(self, predicate: object, within: float = 5.0) -> None:
        deadline = time.monotonic() + within
        while not predicate():  # type: ignore[operator]
            assert time.monotonic() < deadline, "condition not reached in time"
            await asyncio.sleep(0.02)
        await self.writer.drain()


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    history = [trade("A", n, NOW - 60 * S + n * S) for n in range(60)]
    history += [trade("B", n, NOW - 60 * S + n * S) for n in range(60)]
    rig = Rig(tmp_path, history)
    await rig.store.start()
    rig.writer.start()
    task = asyncio.create_task(rig.healer.run())
    yield rig
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await rig.writer.close()
    await rig.store.close()


def gap(start: int, end: int, instruments: tuple[str, ...] = ("A",), **kw: object) -> DataGap:
    return DataGap(venue="hv", instrument="conn:0", ts_venue=0, ts_recv=end, cause="disconnect",
                   start=start, end=end, instruments=instruments, **kw)  # type: ignore[arg-type]  # fmt: skip


async def test_a_gap_is_healed_only_after_its_trades_are_stored(rig: Rig) -> None:
    opened = gap(NOW - 30 * S, NOW - 20 * S)
    await rig.pipeline.process(opened)
    rig.healer.note(opened)
    await rig.settle(lambda: rig.healer.healed == 1)
    # The window, widened by the 1 s margin on both sides: trades 29..41 of A.
    stored = {r[0] for r in rig.rows("SELECT trade_id FROM trades")}
    assert stored == {f"A-{n}" for n in range(29, 42)}
    [(healed, end, detail)] = rig.rows("SELECT healed, end_ns, detail FROM data_gaps")
    assert healed == 1 and end == opened.end and "back-filled" in str(detail)
    assert rig.healer.oldest_open() is None


async def test_a_failing_venue_is_retried_and_the_gap_stays_open_meanwhile(rig: Rig) -> None:
    # The venue fails until told otherwise, so "meanwhile" does not depend on how
    # quickly the retries come round on a loaded machine.
    rig.venue.failures = 1_000_000
    opened = gap(NOW - 30 * S, NOW - 29 * S)
    await rig.pipeline.process(opened)
    rig.healer.note(opened)
    await rig.settle(lambda: len(rig.venue.requests) >= 2)  # failed, then retried
    assert rig.healer.oldest_open() == opened.start  # the watermark may not pass it
    assert rig.rows("SELECT healed FROM data_gaps") == [(0,)]
    assert rig.healer.healed == 0
    failed = len(rig.venue.requests)
    rig.venue.failures = 0
    await rig.settle(lambda: rig.healer.healed == 1, within=10)
    assert len(rig.venue.requests) == failed + 1  # one more try, and it succeeded
    assert rig.rows("SELECT healed FROM data_gaps") == [(1,)]
    assert len(rig.rows("SELECT 1 FROM trades")) == 4  # 30, 29 +/- the 1 s margin


async def test_a_window_the_venue_no_longer_has_stays_open_and_says_why(rig: Rig) -> None:
    rig.venue.keeps_from = NOW - 25 * S
    opened = gap(NOW - 30 * S, NOW - 20 * S)
    rig.healer.note(opened)
    await rig.settle(lambda: rig.healer.given_up == 1)
    [(healed, detail)] = rig.rows("SELECT healed, detail FROM data_gaps")
    assert healed == 0 and str(detail).startswith("not healable: history starts later")
    assert rig.healer.oldest_open() is None  # no longer holds the watermark back
    # What the venue still had was stored all the same.
    assert len(rig.rows("SELECT 1 FROM trades")) == 13


async def test_gaps_due_together_are_healed_by_one_fetch_per_instrument(rig: Rig) -> None:
    first, second = gap(NOW - 40 * S, NOW - 39 * S), gap(NOW - 20 * S, NOW - 19 * S, ("A", "B"))
    rig.healer.note(first)
    rig.healer.note(second)
    await rig.settle(lambda: rig.healer.healed == 2)
    assert sorted(r[0] for r in rig.venue.requests) == ["A", "B"]
    assert rig.rows("SELECT count(*) FROM data_gaps WHERE healed") == [(2,)]


async def test_a_restart_gap_waits_for_the_stream_and_covers_every_instrument(rig: Rig) -> None:
    rig.live = False
    opened = DataGap(venue="hv", instrument=ALL_INSTRUMENTS, ts_venue=0, ts_recv=NOW,
                     cause="restart", start=NOW - 10 * S)  # fmt: skip
    rig.healer.note(opened)
    await asyncio.sleep(0.3)
    assert rig.venue.requests == []  # not live yet: its end is unknown
    rig.live = True
    await rig.settle(lambda: rig.healer.healed == 1)
    assert {r[0] for r in rig.venue.requests} == {"A", "B"}
    [(healed, end)] = rig.rows("SELECT healed, end_ns FROM data_gaps WHERE cause = 'restart'")
    assert healed == 1 and int(end) > NOW  # type: ignore[call-overload]


async def test_refusals_by_an_open_circuit_do_not_lengthen_the_backoff(rig: Rig) -> None:
    """A fetch the breaker refused sent nothing: retried when the breaker allows, at once here.

    Found by the chaos suite: every refusal during a 30 s cooldown counted as a
    failure, so the next try came up to 60 s after the venue was back and the
    run ended with gaps still open. Eight failures in a row that reached the
    venue would wait about 90 s in all (full jitter, 1 s doubling to 60 s).
    """
    rig.venue.refusals = 8
    opened = gap(NOW - 30 * S, NOW - 29 * S)
    rig.healer.note(opened)
    await rig.settle(lambda: rig.healer.healed == 1, within=10)
    assert len(rig.venue.requests) == 9  # eight refused, the ninth healed it
    assert rig.rows("SELECT healed FROM data_gaps") == [(1,)]
