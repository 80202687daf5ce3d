"""``recording.enabled`` in a running service, against the Polygon simulator over real sockets.

What replay will need must be in the recording: every frame the session
received, with its connection, the subscriptions of every connection (across
a reconnect), and the REST exchanges -- and no credential.
"""

from __future__ import annotations

from pathlib import Path

from venuefeed.lake.format import ConnEvent, HttpExchange
from venuefeed.lake.reader import ReadReport, iter_frames
from venuefeed.lake.recorder import Recorder
from venuefeed.service import Service
from venuefeed.transport.websocket import Frame
from venuefeed.venues.polygon import Simulator

from ..service.helpers import settings_for, wait_for


async def test_a_recording_holds_every_frame_subscription_and_rest_exchange(
    tmp_path: Path,
) -> None:
    sim = Simulator(seed=4, tickers=("AAPL", "MSFT"), events_per_second=60)
    await sim.start()
    sim.pause()  # no history before we listen: the start's back-fill stays small
    rec = tmp_path / "rec"
    extra = {
        "venues.polygon.instruments": ["AAPL", "MSFT"],
        "recording.enabled": True,
        "recording.path": rec,
        "recording.flush_interval_seconds": 0.05,
        # The first start's back-fill of the simulator's history can fill the writer's queue
        # (10,000) and hold the shutdown past the test's patience, recording or not: not
        # what this test is about.
        "ingestion.backfill_lookback_seconds": 0,
    }
    service = Service(settings_for({"polygon": sim}, tmp_path / "v.db", extra))
    frames_seen, subscriptions = 0, []
    try:
        await service.start()
        runner = service.runners["polygon"]
        await wait_for(lambda: any(s.state.subs for s in sim.sockets))
        sim.resume()
        await wait_for(lambda: runner.events > 20)
        await sim.disconnect_all()  # a second connection: its subscriptions are recorded too
        await wait_for(lambda: runner.stream is not None and runner.stream.state == "connected")
        await wait_for(lambda: runner.events > 60)
        await wait_for(lambda: service.status()["details"]["recording"]["records"] > 10)
        assert service.problems() == []
    finally:
        stream = service.runners["polygon"].stream
        session = stream.session if stream is not None else None
        await service.stop()
        await sim.stop()
        if session is not None:
            frames_seen, subscriptions = session.frames, sorted(session.subscriptions)

    report = ReadReport()
    records = list(iter_frames(rec, "polygon", report=report))
    assert report.damaged == []
    frames = [r for r in records if isinstance(r, Frame)]
    assert len(frames) == frames_seen > 0  # every frame the session took, once
    assert [f.ts_recv for f in frames] == sorted(f.ts_recv for f in frames)
    connected = [r for r in records if isinstance(r, ConnEvent) and r.kind == "connected"]
    assert len(connected) == 2
    assert "T.AAPL" in subscriptions and "T.MSFT" in subscriptions  # Polygon's channels
    assert all(sorted(c.subscriptions) == subscriptions for c in connected)
    assert connected[0].down_since is None and connected[1].down_since is not None
    closed = [r for r in records if isinstance(r, ConnEvent) and r.kind == "closed"]
    assert len(closed) == 2 and closed[0].ts_recv < connected[1].ts_recv
    # Between a connection's close and the next one's open no frame was taken.
    assert not [f for f in frames if closed[0].ts_recv < f.ts_recv < connected[1].ts_recv]
    exchanges = [r for r in records if isinstance(r, HttpExchange)]
    assert exchanges and all(e.status == 200 and e.body for e in exchanges)
    assert all(e.ts_sent <= e.ts_recv for e in exchanges)
    # The API key goes in every REST request's header and the WebSocket auth frame: it is
    # in none of the recorded records.
    assert sim.api_key not in repr(records)


def test_recorder_is_off_unless_asked(tmp_path: Path) -> None:
    sim_settings = settings_for({}, tmp_path / "v.db")
    assert Service(sim_settings).recorder is None
    on = settings_for({}, tmp_path / "v.db", {"recording.enabled": True,
                                              "recording.path": tmp_path / "r"})  # fmt: skip
    recorder = Service(on).recorder
    assert isinstance(recorder, Recorder) and recorder.root == tmp_path / "r"
