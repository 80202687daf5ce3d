"""``venuefeed replay``: a recording rebuilds the store, the same on every run and as live.

One live run against the Polymarket and Kalshi simulators is recorded (with a
reconnect of every socket); it is then replayed twice into fresh SQLite
stores. The two replays must hold byte-identical canonical rows, their trades
must be the live run's stream trades on every field (the gap healer's REST
back-fill is a service job, not replayed), and every book snapshot the live
run stored must be a state the replayed books went through, on every field.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from venuefeed.config import load_config
from venuefeed.lake.book_states import BookStates
from venuefeed.lake.compare import (
    canonical_digest,
    compare_rows,
    frame_times,
    stored_snapshots,
    stored_trades,
)
from venuefeed.lake.replay import replay

from .conftest import Cli
from .recorded import DEPTH, LiveRun, live_extra


async def replay_into(live: LiveRun, db: Path, states: BookStates | None = None) -> None:
    settings = load_config(overrides=live_extra(db), environ={})
    hooks = [states.hook] if states is not None else []
    result = await replay(live.recording, settings, hooks=hooks)
    assert result.damaged_blocks == 0
    assert all(v.frames > 60 and v.reconnects >= 1 for v in result.venues.values())


async def test_replay_is_deterministic_and_equals_the_live_run(
    live: LiveRun, tmp_path: Path
) -> None:
    states = BookStates(DEPTH)
    await replay_into(live, tmp_path / "one.db", states)
    await replay_into(live, tmp_path / "two.db")

    assert canonical_digest(tmp_path / "one.db") == canonical_digest(tmp_path / "two.db")

    # Every trade the live stream delivered (stamped with a recorded frame's time) is
    # replayed, equal on every field.
    from_stream = frame_times(live.recording)
    live_trades = stored_trades(live.db)
    streamed = {k: row for k, row in live_trades.items() if row["ts_recv"] in from_stream}
    replayed_trades = stored_trades(tmp_path / "one.db")
    trades = compare_rows(streamed, replayed_trades)
    assert len(streamed) > 10 and trades.only_left == [] and trades.different == []
    # The replay may have more: a trade the live run stored first from the gap healer's
    # REST back-fill (the same trade, stamped when the REST answer came), or one received
    # while the live run was shutting down (recorded, never processed).
    last_processed = max(row["ts_recv"] for row in streamed.values())
    for key in trades.only_right:
        if key in live_trades:  # the venue's REST history may round the trade's time
            assert live_trades[key]["ts_recv"] not in from_stream
            assert compare_rows({key: live_trades[key]}, {key: replayed_trades[key]},
                                ignore=("ts_recv", "ts_venue")).identical  # fmt: skip
        else:
            assert replayed_trades[key]["ts_recv"] > last_processed

    live_snapshots = stored_snapshots(live.db)
    assert len(live_snapshots) > 50
    wrong = [key for key, row in live_snapshots.items() if not states.holds(key, row)]
    assert wrong == []
    replayed = stored_snapshots(tmp_path / "one.db")
    assert all(states.holds(key, row) for key, row in replayed.items())
    # Every book the live run stored, the replay stored too (not necessarily the same states:
    # which ones the persist interval picks depends on the live run's timing).
    assert {k[:2] for k in live_snapshots} == {k[:2] for k in replayed}


def test_replay_command_fills_the_configured_store(
    live: LiveRun, tmp_path: Path, capsys: pytest.CaptureFixture[str], cli: Cli
) -> None:
    db = tmp_path / "cli.db"
    assert cli("--db", str(db), "replay", str(live.recording), "--venue", "kalshi") == 0
    out = capsys.readouterr().out
    assert "kalshi:" in out and "polymarket" not in out
    from_stream = frame_times(live.recording)
    kalshi_live = {k: r for k, r in stored_trades(live.db).items()
                   if k[0] == "kalshi" and r["ts_recv"] in from_stream}  # fmt: skip
    got = compare_rows(kalshi_live, stored_trades(db), ignore=())
    assert got.left > 0 and got.identical, got.summary()


def test_replay_of_a_folder_that_is_no_recording_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cli: Cli
) -> None:
    assert cli("replay", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"error: {tmp_path}: not a recording (no venue=<name> folders)"
