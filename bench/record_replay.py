"""The record/replay proof: record the demo, rebuild from the recording, compare with live.

Run: ``PYTHONPATH=src python bench/record_replay.py --minutes 10 [--out DIR]``.
Prints figures, asserts nothing. Steps:

1. **Live**: ``venuefeed demo --record`` for ``--minutes`` (Polymarket and
   Kalshi simulators, deltas stored) into ``live.db``.
2. **Replay** the recording twice into fresh SQLite stores: the canonical
   digests (every trade and book snapshot, every canonical field) must match.
   The first replay also keeps every state its books went through.
3. **Replay vs live**: trades the live stream delivered (stamped with a
   recorded frame's receive time) against the replay's, on every field;
   trades the live run got from the service's REST jobs (gap back-fill)
   counted apart. Every live book snapshot against the replayed book states,
   on every field; and how many the two stores hold identically.
4. **replay-server**: the ordinary service runs against it (``--speed``
   times the recorded pace) until it has received every recorded frame;
   its trades and book snapshots against the live run's, on every field but
   its own receive times.
5. **book --at**: sampled instants of the replayed books rebuilt from the
   live store alone.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from venuefeed.config import load_config
from venuefeed.demo import run_demo
from venuefeed.lake.book_at import SqliteHistory, book_at
from venuefeed.lake.book_states import BookStates
from venuefeed.lake.compare import (
    canonical_digest,
    compare_rows,
    frame_times,
    stored_snapshots,
    stored_trades,
)
from venuefeed.lake.reader import ReadReport, iter_frames, venues
from venuefeed.lake.replay import replay
from venuefeed.lake.replay_server import ReplayServer
from venuefeed.models import BookLevel
from venuefeed.service import Service

DEPTH = 10
CONFIG = {"ingestion": {"store_book_deltas": True, "book_depth": DEPTH}}


def line(text: str) -> None:
    print(text, flush=True)


async def live_run(out: Path, minutes: float, config: Path) -> None:
    started = time.monotonic()
    with (out / "demo.log").open("w") as log:
        await run_demo(config, duration=minutes * 60, db=out / "live.db", api_port=0,
                       record=out / "rec", console=Console(file=log, width=200))  # fmt: skip
    report = ReadReport()
    counts = {
        v: sum(1 for _ in iter_frames(out / "rec", v, report=report)) for v in venues(out / "rec")
    }
    size = sum(p.stat().st_size for p in (out / "rec").rglob("*.zst"))
    damaged = len(report.damaged)
    line(f"live: {minutes:g} min of the demo in {time.monotonic() - started:.0f}s; recording "
         f"{counts} records, {size:,} bytes zstd, {damaged} damaged block(s)")  # fmt: skip


async def replay_twice(out: Path, config: Path) -> BookStates:
    states = BookStates(DEPTH)
    digests = []
    for n in (1, 2):
        db = out / f"replay{n}.db"
        db.unlink(missing_ok=True)
        settings = load_config(config, {"storage.sqlite_path": db}, environ={})
        started = time.monotonic()
        result = await replay(out / "rec", settings, hooks=[states.hook] if n == 1 else [])
        frames = sum(v.frames for v in result.venues.values())
        took = time.monotonic() - started
        digests.append(canonical_digest(db))
        line(f"replay {n}: {frames} frames in {took:.1f}s ({frames / took:,.0f} frames/s), "
             f"canonical digest {digests[-1][:16]}")  # fmt: skip
    line(f"replay twice: byte-identical canonical rows: {digests[0] == digests[1]}")
    return states


def compare_with_live(out: Path, states: BookStates) -> None:
    live, replayed = stored_trades(out / "live.db"), stored_trades(out / "replay1.db")
    from_stream = frame_times(out / "rec")
    streamed = {k: r for k, r in live.items() if r["ts_recv"] in from_stream}
    trades = compare_rows(streamed, replayed)
    rest_only = len(live) - len(streamed)
    in_replay_as_rest = sum(1 for k in trades.only_right if k in live)
    line(f"trades: live {len(live)} ({len(streamed)} from the stream, {rest_only} from REST "
         f"back-fill), replay {len(replayed)}")  # fmt: skip
    line(f"  live stream trades vs replay: {trades.summary()}; of the replay's extra, "
         f"{in_replay_as_rest} are live's REST copies of the same trade")  # fmt: skip
    # A snapshot from the stream is stamped with a frame's receive time; one from the
    # service's REST snapshot pass with the time its answer came.
    snaps = stored_snapshots(out / "live.db")
    stream = {k: r for k, r in snaps.items() if r["ts_recv"] in from_stream}
    held = sum(1 for k, r in stream.items() if states.holds(k, r))
    line(f"book snapshots: live {len(snaps)} ({len(stream)} from the stream, "
         f"{len(snaps) - len(stream)} from REST snapshot passes); of the stream's, {held} equal "
         f"on every field to a replayed book state, {len(stream) - held} not; replayed states "
         f"{len(states)}")  # fmt: skip
    both = compare_rows(snaps, stored_snapshots(out / "replay1.db"))
    line(f"book snapshots stored by both runs alike: {both.summary()}")


async def drive_run(out: Path, config: Path, speed: float, patience: float) -> None:
    server = ReplayServer(out / "rec", speed=speed)
    recorded = {v: sum(len(s.frames) for s in segs) for v, segs in server._segments.items()}
    await server.start()
    db = out / "run.db"
    db.unlink(missing_ok=True)
    overrides: dict[str, Any] = {**server.client_settings(), "storage.sqlite_path": db}
    service = Service(load_config(config, overrides, environ={}))
    started = time.monotonic()
    await service.start()

    def received() -> dict[str, int]:
        out = {}
        for venue, runner in service.runners.items():
            session = runner.stream.session if runner.stream is not None else None
            out[venue] = session.frames if session is not None else 0
        return out

    try:
        while received() != recorded and time.monotonic() - started < patience:  # noqa: ASYNC110
            await asyncio.sleep(0.5)
        await asyncio.sleep(2)  # the last frames through the pipeline
        got, took = received(), time.monotonic() - started
    finally:
        await service.stop()
        await server.stop()
    line(f"replay-server at {speed:g}x: the run received {got} of {recorded} recorded frames "
         f"in {took:.0f}s")  # fmt: skip


def compare_run(out: Path, states: BookStates) -> None:
    from_stream = frame_times(out / "rec")
    live_all = stored_trades(out / "live.db")
    live = {k: r for k, r in live_all.items() if r["ts_recv"] in from_stream}
    run = stored_trades(out / "run.db")
    trades = compare_rows(live, run, ignore=("ts_recv",))
    rest = compare_rows({k: live_all[k] for k in trades.only_right if k in live_all},
                        {k: run[k] for k in trades.only_right}, ignore=("ts_recv",))  # fmt: skip
    line(f"run vs live, stream trades (every field but ts_recv): {trades.summary()}; of the "
         f"run's extra, {rest.equal} equal the live run's REST back-fill trades")  # fmt: skip
    # The run's own REST snapshot passes were served the live run's recorded REST books.
    live_rest = {(r["venue"], r["instrument"], r["digest"])
                 for r in stored_snapshots(out / "live.db").values()
                 if r["ts_recv"] not in from_stream}  # fmt: skip
    snaps = stored_snapshots(out / "run.db")
    held = {k: r for k, r in snaps.items() if states.holds(k, r, ignore=("ts_recv",))}
    rest_rows = [r for k, r in snaps.items() if k not in held]
    served = sum(1 for r in rest_rows if (r["venue"], r["instrument"], r["digest"]) in live_rest)
    line(f"run's book snapshots: {len(snaps)}; {len(held)} equal to a recorded book state on "
         f"every field but ts_recv, {served} equal to a REST book the live run stored, "
         f"{len(snaps) - len(held) - served} neither")  # fmt: skip
    last: dict[tuple[str, str], dict[str, Any]] = {}
    for row in sorted(held.values(), key=lambda r: r["ts_recv"]):
        last[(row["venue"], row["instrument"])] = row
    same = sum(1 for book, row in last.items()
               if {k: v for k, v in row.items() if k != "ts_recv"}
               == {k: v for k, v in states.final[book].items() if k != "ts_recv"})  # fmt: skip
    line(f"run's last stream book states equal to the live final books: {same} of {len(last)} "
         f"(live books: {len(states.final)})")  # fmt: skip


def book_at_samples(out: Path, states: BookStates, samples: int) -> None:
    rng = random.Random(16)
    truth = [row for rows in states.states.values() for row in rows]
    chosen = rng.sample(truth, min(samples, len(truth)))
    history = SqliteHistory(out / "live.db")
    from_stream = frame_times(out / "rec")
    equal = through_deltas = none = from_rest = 0
    try:
        for state in chosen:
            venue, instrument, at = state["venue"], state["instrument"], state["ts_recv"]
            got = book_at(history, venue, instrument, at, snapshot_depth=DEPTH)
            if got is None:
                none += 1
                continue
            ok = True
            sides = ((got.bids, state["bids"], got.bids_complete),
                     (got.asks, state["asks"], got.asks_complete))  # fmt: skip
            for shown, want, complete in sides:
                levels = [BookLevel(p, s) for p, s in want]
                top = shown[:DEPTH]  # the state kept is top-DEPTH; the rebuild may know more
                ok &= top == levels if complete else top == levels[: len(top)]
            equal += ok
            from_rest += not ok and got.snapshot_ts not in from_stream
            through_deltas += got.changes > 0 and got.snapshot_ts < at
    finally:
        history.close()
    line(f"book --at on the live store at {len(chosen)} sampled instants: {equal} equal to the "
         f"book (level for level, to the known depth), {len(chosen) - equal - none} not ("
         f"{from_rest} of them rebuilt on a REST snapshot-pass row), {none} before any stored "
         f"snapshot; {through_deltas} rebuilt through stored deltas")  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--speed", type=float, default=10.0, help="replay-server pace")
    parser.add_argument("--samples", type=int, default=500, help="book --at instants")
    parser.add_argument("--out", type=Path, default=None, help="keep the files here")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="record-replay-"))
    out.mkdir(parents=True, exist_ok=True)
    config = out / "config.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    line(f"files in {out}")
    if not (out / "live.db").exists():
        await live_run(out, args.minutes, config)
    states = await replay_twice(out, config)
    compare_with_live(out, states)
    patience = args.minutes * 60 / args.speed + 120
    await drive_run(out, config, args.speed, patience)
    compare_run(out, states)
    book_at_samples(out, states, args.samples)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
