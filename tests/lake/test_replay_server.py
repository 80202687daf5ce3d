"""``venuefeed replay-server``: ``venuefeed run`` against a recording gets the live run's data.

The recorded live run (Polymarket and Kalshi, every socket cut once) is
served by the replay server; the ordinary service connects to it as to the
venues -- its own WebSocket sessions, subscribe frames, heartbeats and REST
clients -- and reconnects where the recorded session did. Its trades must be
the live stream's on every field but the receive time (its own clock), and
every book snapshot it stores must be a state the recorded books went
through, ending where the live books ended -- served whole, or from an
instant after the reconnect (``--from``: what came before is sent at once).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from venuefeed.config import load_config
from venuefeed.lake.book_states import BookStates
from venuefeed.lake.compare import compare_rows, frame_times, stored_snapshots, stored_trades
from venuefeed.lake.format import ConnEvent
from venuefeed.lake.reader import iter_frames, venues
from venuefeed.lake.replay import replay
from venuefeed.lake.replay_server import ReplayServer
from venuefeed.service import Service

from ..service.helpers import wait_for
from .recorded import DEPTH, LiveRun, live_extra


@pytest.mark.parametrize("from_middle", [False, True], ids=["whole", "from-after-reconnect"])
async def test_a_run_against_the_replay_server_stores_what_the_live_run_stored(
    live: LiveRun, tmp_path: Path, from_middle: bool
) -> None:
    states = BookStates(DEPTH)
    await replay(live.recording, load_config(overrides=live_extra(tmp_path / "r.db"),
                                             environ={}), hooks=[states.hook])  # fmt: skip
    start = None
    if from_middle:  # after every venue's reconnect: the first connections are not served
        rec = live.recording
        events = [r for v in venues(rec) for r in iter_frames(rec, v) if type(r) is ConnEvent]
        reconnects = [e.ts_recv for e in events if e.kind == "connected" and e.down_since]
        start = max(reconnects) + 200_000_000
    server = ReplayServer(live.recording, speed=0 if start is None else 50, start=start)
    recorded = {v: sum(len(s.frames) for s in segments) for v, segments in server._segments.items()}
    await server.start()
    db = tmp_path / "run.db"
    overrides = {**live_extra(db), **server.client_settings(),
                 "ingestion.backfill_lookback_seconds": 0}  # fmt: skip
    for venue in server.venues:
        overrides[f"venues.{venue}.websocket"] = {"backoff_base_seconds": 0.05,
                                                  "backoff_cap_seconds": 0.2}  # fmt: skip
    service = Service(load_config(overrides=overrides, environ={}))
    try:
        await service.start()
        runners = service.runners

        def received(venue: str) -> int:
            stream = runners[venue].stream
            return stream.session.frames if stream is not None and stream.session else 0

        # Every recorded frame reached the client (across the reconnect), and was consumed.
        await wait_for(lambda: all(received(v) == n for v, n in recorded.items()), 30)
        await wait_for(lambda: all(r.stream is not None and r.stream.backlog() == 0
                                   and r.stream.reconnects >= (start is None)
                                   for r in runners.values()), 20)  # fmt: skip
    finally:
        await service.stop()
        await server.stop()

    from_stream = frame_times(live.recording)
    streamed = {k: r for k, r in stored_trades(live.db).items() if r["ts_recv"] in from_stream
                and (start is None or r["ts_recv"] >= start)}  # fmt: skip
    trades = compare_rows(streamed, stored_trades(db), ignore=("ts_recv",))
    assert streamed and trades.only_left == [] and trades.different == []

    stored = stored_snapshots(db)
    assert len(stored) > 20
    assert all(states.holds(key, row, ignore=("ts_recv",)) for key, row in stored.items())
    last: dict[tuple[str, str], dict[str, object]] = {}
    for row in sorted(stored.values(), key=lambda r: r["ts_recv"]):
        last[(row["venue"], row["instrument"])] = row
    for book, row in last.items():
        final = states.final[book]
        # The last stored snapshot is the final state under the store's key. Of several
        # states with one key (the same top levels at the same venue time: a change
        # deeper in a Polymarket book brings a new hash) the store keeps the first, so
        # the fields outside the key (checksum) may be an earlier state's -- one that
        # `states.holds` confirmed above.
        assert store_key(row) == store_key(final)
    assert {k[:2] for k in stored_snapshots(live.db)} == set(last)


def store_key(row: dict[str, object]) -> tuple[object, ...]:
    """A book snapshot's natural key in the store (see ``BookStates``)."""
    return (row["venue"], row["instrument"], row["ts_venue"], row["sequence"], row["digest"])
