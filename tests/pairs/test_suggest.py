"""Suggesting pairs finds exactly the events both simulators list, with the right mapping."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from venuefeed.config import PairsSettings
from venuefeed.pairs.store import PairStore
from venuefeed.pairs.suggestions import suggest_from_store

from .conftest import Venues


def cli(venues: Venues, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "venuefeed.cli", "--db", str(venues.db), "pairs", *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


async def test_suggestions_are_the_cross_listed_events(venues: Venues) -> None:
    store = PairStore(venues.db)
    found = suggest_from_store(store, PairsSettings())
    truth = venues.true_pairs()
    # Every event listed on both venues is found, nothing else is, and the question
    # asked the other way round ("3.0% or below") maps Kalshi's YES to Polymarket's NO.
    assert {c.pair_id: c.mapping for c in found} == truth
    assert {p["pair_id"] for p in store.all("suggested")} == set(truth)
    # Look-alikes (a Kalshi "above N" against Polymarket "close above $N") are not.
    loose = suggest_from_store(store, PairsSettings(), min_score=0, limit=500)
    assert max(c.score for c in loose if c.pair_id not in truth) < min(c.score for c in found)


async def test_a_decision_survives_suggesting_again(venues: Venues) -> None:
    store = PairStore(venues.db)
    first, second, *_ = sorted(venues.true_pairs())
    assert cli(venues, "suggest").returncode == 0
    done = cli(venues, "confirm", first, "--mapping", "yes_no")
    assert done.returncode == 0, done.stderr
    assert cli(venues, "reject", second).returncode == 0
    assert cli(venues, "suggest").returncode == 0
    rows = {p["pair_id"]: p for p in store.all()}
    assert (rows[first]["status"], rows[first]["mapping"]) == ("confirmed", "yes_no")
    assert rows[second]["status"] == "rejected"
    assert [p.pair_id for p in store.confirmed()] == [first]
    listed = cli(venues, "list", "--status", "confirmed")
    assert first in listed.stdout and second not in listed.stdout


async def test_unknown_pair_and_bad_mapping_are_one_line(venues: Venues) -> None:
    unknown = cli(venues, "confirm", "NOPE~0x1")
    assert unknown.returncode == 1 and "no pair NOPE~0x1" in unknown.stderr
    bad = cli(venues, "confirm", "NOPE~0x1", "--mapping", "no_no")
    assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1, bad.stderr
    assert "Traceback" not in bad.stderr


def test_suggest_before_discovery_says_what_to_run(tmp_path: Path) -> None:
    db = tmp_path / "empty.db"
    result = subprocess.run(
        [sys.executable, "-m", "venuefeed.cli", "--db", str(db), "pairs", "suggest"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    expected = "error: no open kalshi markets stored: run `venuefeed discover`"
    assert result.stderr.startswith(expected)
