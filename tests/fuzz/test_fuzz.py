"""A short run of the parser fuzzer inside ``make test``; ``make fuzz`` runs a million inputs.

Every venue's entry points and frame consumers get mutated captures (and, via
hypothesis, arbitrary bytes and arbitrary JSON); nothing may escape and no
accepted event may break an invariant (:mod:`venuefeed.testing.invariants`).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.venues.captures import ROOT
from venuefeed.testing import entries
from venuefeed.testing.fuzz import Target, fuzz, generate
from venuefeed.testing.invariants import violations
from venuefeed.venues.rejects import Rejects

TARGETS = entries.targets(ROOT)
ARGS = {"symbol": "BTCUSDT", "instrument": "X", "interval": "1m", "interval_s": 60,
        "period_minutes": 60}  # fmt: skip
RECV = 1_700_000_000_000_000_000


def test_every_registered_venue_has_frame_page_and_consumer_targets() -> None:
    names = {t.name for t in TARGETS}
    for venue in entries.ENTRIES:
        assert {f"{venue}:frame", f"{venue}:consumer"} <= names
    assert len(TARGETS) >= 25


def test_inputs_are_reproducible_from_seed_and_index() -> None:
    target = TARGETS[0]
    assert generate(target, 7, 123) == generate(target, 7, 123)
    assert generate(target, 7, 123) != generate(target, 7, 124)


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
def test_mutated_captures_never_escape_nor_pass_invalid(target: Target) -> None:
    (tally,) = fuzz([target], frames=120, seed=20261130)
    assert tally.escapes == {} and tally.invalid == {}
    assert tally.mutated == 120 and tally.inputs >= 120


def _call(venue: str, entry: str, data: bytes) -> list[object]:
    rejects = Rejects(venue)
    result = entries.ENTRIES[venue][entry](data, RECV, rejects, ARGS)
    events = entries.events_of(result)
    window = rejects.window.history(RECV) if entry in entries.HISTORY else rejects.window.live(RECV)
    assert [v for e in events for v in violations(e, window)] == []
    assert "parser_bug" not in rejects.counts
    return events


ALL_ENTRIES = [(v, e) for v, table in entries.ENTRIES.items() for e in table]


@pytest.mark.parametrize(("venue", "entry"), ALL_ENTRIES)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes(venue: str, entry: str, data: bytes) -> None:
    _call(venue, entry, data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
    | st.sampled_from(["0.5", "-1", "NaN", "1e999", "BUY", "book", "trade", "T", "btcusdt@trade"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["event_type", "type", "ev", "stream", "data", "msg", "price", "size",
                         "p", "q", "s", "t", "timestamp", "bids", "asks", "results", "sid"]),
        inner, max_size=6),
    max_leaves=25,
)  # fmt: skip


@pytest.mark.parametrize(("venue", "entry"), ALL_ENTRIES)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=json_values)
def test_arbitrary_json(venue: str, entry: str, doc: Any) -> None:
    _call(venue, entry, json.dumps(doc, allow_nan=True).encode())
