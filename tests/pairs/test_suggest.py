"""Suggesting pairs finds exactly the events both simulators list, with the right mapping."""

from __future__ import annotations

import sys
from pathlib import Path
from unittest import mock

import pytest

from venuefeed.cli import main
from venuefeed.config import PairsSettings
from venuefeed.pairs.store import PairStore
from venuefeed.pairs.suggestions import suggest_from_store

from .conftest import Venues


def cli(db: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``venuefeed --db DB pairs ARGS`` in this process (the entry point, its exit code).

    The process-wide logging set-up is left alone: pointed at pytest's captured
    stream, it would outlive this test.
    """
    capsys.readouterr()
    argv = ["venuefeed", "--db", str(db), "pairs", *args]
    with mock.patch.object(sys, "argv", argv), mock.patch("venuefeed.cli.configure_logging"):
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


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


async def test_a_decision_survives_suggesting_again(
    venues: Venues, capsys: pytest.CaptureFixture[str]
) -> None:
    store = PairStore(venues.db)
    first, second, *_ = sorted(venues.true_pairs())
    code, out, _ = cli(venues.db, capsys, "suggest")
    assert code == 0 and out.count("  suggested  ") == 5
    assert cli(venues.db, capsys, "confirm", first, "--mapping", "yes_no")[0] == 0
    assert cli(venues.db, capsys, "reject", second)[0] == 0
    assert cli(venues.db, capsys, "suggest")[0] == 0
    rows = {p["pair_id"]: p for p in store.all()}
    assert (rows[first]["status"], rows[first]["mapping"]) == ("confirmed", "yes_no")
    assert rows[second]["status"] == "rejected"
    assert [p.pair_id for p in store.confirmed()] == [first]
    code, out, _ = cli(venues.db, capsys, "list", "--status", "confirmed")
    assert code == 0 and out.splitlines()[0].startswith(f"{first}  confirmed  ")
    assert len(out.splitlines()) == 1


async def test_unknown_pair_and_bad_mapping_are_one_line(
    venues: Venues, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(venues.db, capsys, "confirm", "NOPE~0x1")
    assert code == 1 and "no pair NOPE~0x1" in err
    code, _, err = cli(venues.db, capsys, "confirm", "NOPE~0x1", "--mapping", "no_no")
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("error: "), err


def test_suggest_before_discovery_says_what_to_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(tmp_path / "empty.db", capsys, "suggest")
    assert code == 2
    assert err.startswith("error: no open kalshi markets stored: run `venuefeed discover`")
