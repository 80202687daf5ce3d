"""The recording format, writer and reader: round trip, order, rotation, damage, a full buffer."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from venuefeed.lake.format import ConnEvent, HttpExchange, Lost, hour_of
from venuefeed.lake.reader import ReadReport, iter_file, iter_frames, recording_files, venues
from venuefeed.lake.recorder import Recorder
from venuefeed.transport.websocket import Frame, SessionEvent

HOUR = 3600 * 10**9
T0 = 1_780_000_000 * 10**9 // HOUR * HOUR  # an hour boundary in 2026


def record(root: Path, **kw: object) -> Recorder:
    recorder = Recorder(root, flush_interval=0.01, **kw)  # type: ignore[arg-type]
    recorder.start()
    return recorder


def test_round_trip_keeps_every_kind_of_record_exactly(tmp_path: Path) -> None:
    recorder = record(tmp_path)
    tap = recorder.venue("kalshi")
    tap.on_session(SessionEvent("connected", 0, T0 + 1, ("orderbook_delta:A",), None))
    tap.on_frame('{"type":"orderbook_snapshot"}', T0 + 2, 0)
    tap.on_frame(b"\x00binary\xff", T0 + 3, 1)
    headers = {"Content-Type": "application/json", "Set-Cookie": "s=1"}
    tap.on_http("GET", "https://x/markets?apiKey=********", None, T0 + 4, T0 + 5, 200, headers,
                b'{"m":[]}', "")  # fmt: skip
    tap.on_http("POST", "https://x/books", b'[{"token_id":"1"}]', T0 + 6, T0 + 7, 0, {}, b"",
                "timeout")  # fmt: skip
    tap.on_session(SessionEvent("closed", 0, T0 + 8))
    recorder.close()

    got = list(iter_frames(tmp_path, "kalshi"))
    assert got == [
        ConnEvent(T0 + 1, 0, "connected", ("orderbook_delta:A",), None),
        Frame('{"type":"orderbook_snapshot"}', T0 + 2, 0),
        Frame(b"\x00binary\xff", T0 + 3, 1),
        HttpExchange(T0 + 5, T0 + 4, "GET", "https://x/markets?apiKey=********", None, 200,
                     (("Content-Type", "application/json"),), b'{"m":[]}', ""),  # no cookie
        HttpExchange(T0 + 7, T0 + 6, "POST", "https://x/books", b'[{"token_id":"1"}]', 0, (),
                     b"", "timeout"),
        ConnEvent(T0 + 8, 0, "closed", (), None),
    ]  # fmt: skip
    assert type(got[1].data) is str and type(got[2].data) is bytes  # type: ignore[union-attr]
    assert venues(tmp_path) == ["kalshi"]


def test_files_are_partitioned_by_venue_and_hour_and_read_back_in_time_order(
    tmp_path: Path,
) -> None:
    recorder = record(tmp_path)
    poly, kalshi = recorder.venue("polymarket"), recorder.venue("kalshi")
    for i in range(300):
        ts = T0 + i * (HOUR // 100)  # three hours
        poly.on_frame(f"p{i}", ts, i % 3)
        kalshi.on_frame(f"k{i}", ts + 1, 0)
        if i % 50 == 0:
            time.sleep(0.03)  # several blocks per file
    recorder.close()

    files = recording_files(tmp_path, "polymarket")
    hours = {f.parent.name for f in files}
    assert hours == {f"hour={(T0 // HOUR + h) % 24:02d}" for h in range(3)}
    frames = list(iter_frames(tmp_path, "polymarket"))
    assert [f.data for f in frames] == [f"p{i}" for i in range(300)]  # type: ignore[union-attr]
    window = list(iter_frames(tmp_path, "kalshi", T0 + HOUR, T0 + 2 * HOUR))
    assert [f.data for f in window] == [f"k{i}" for i in range(100, 200)]  # type: ignore[union-attr]
    # Reading the window skips the files of other hours without opening them.
    pruned = recording_files(tmp_path, "kalshi", T0 + HOUR, T0 + HOUR + 5)
    assert {f.parent for f in pruned} == {
        tmp_path
        / "venue=kalshi"
        / files[0].parent.parent.name
        / f"hour={(T0 // HOUR + 1) % 24:02d}"
    }


def test_files_that_overlap_in_time_are_merged_deterministically(tmp_path: Path) -> None:
    for run in range(2):  # two processes' worth of files for the same hour
        recorder = record(tmp_path / "r", max_file_bytes=200)
        tap = recorder.venue("binance")
        for i in range(40):
            tap.on_frame(f"run{run}-{i}", T0 + 10 * i + run, 0)
            time.sleep(0.002)
        recorder.close()
    assert len(recording_files(tmp_path / "r", "binance")) > 2  # rotated by size
    first = [f.data for f in iter_frames(tmp_path / "r", "binance")]  # type: ignore[union-attr]
    assert first == [f"run{run}-{i}" for i in range(40) for run in range(2)]
    assert first == [f.data for f in iter_frames(tmp_path / "r", "binance")]  # type: ignore[union-attr]


def _one_file(root: Path, venue: str = "polymarket", blocks: int = 3) -> Path:
    recorder = record(root)
    tap = recorder.venue(venue)
    now = time.time_ns()  # the current hour: its file stays open between blocks
    for b in range(blocks):
        for i in range(5):
            tap.on_frame(f"b{b}f{i}" * 20, now + b * 100 + i, 0)
        time.sleep(0.05)  # one block per batch
    recorder.close()
    (path,) = recording_files(root, venue)
    return path


def test_a_torn_tail_is_skipped_and_reported_and_everything_before_reads(
    tmp_path: Path,
) -> None:
    path = _one_file(tmp_path)
    whole = [r.data for r in iter_frames(tmp_path, "polymarket")]  # type: ignore[union-attr]
    assert len(whole) == 15
    size = path.stat().st_size
    for cut in (size - 1, size - 30, size - 60):  # inside the last block's body, at its header
        damaged = tmp_path / "cut"
        shutil.rmtree(damaged, ignore_errors=True)
        shutil.copytree(tmp_path, damaged, ignore=shutil.ignore_patterns("cut"))
        (copy,) = recording_files(damaged, "polymarket")
        with copy.open("r+b") as fh:
            fh.truncate(cut)
        report = ReadReport()
        got = [r.data for r in iter_frames(damaged, "polymarket", report=report)]  # type: ignore[union-attr]
        assert got == whole[: len(got)] and len(got) >= 10
        assert report.torn_tails == 1


def test_a_damaged_block_in_the_middle_hides_nothing_after_it(tmp_path: Path) -> None:
    path = _one_file(tmp_path)
    data = bytearray(path.read_bytes())
    data[60] ^= 0xFF  # inside the first block's compressed body
    path.write_bytes(bytes(data))
    report = ReadReport()
    got = [r.data for r in iter_file(path, report=report) if hasattr(r, "data")]
    assert [g[:4] for g in got] == [f"b{b}f{i}" for b in (1, 2) for i in range(5)]
    assert [why for *_, why in report.damaged] == ["CRC mismatch"]


def test_standard_zstd_tools_read_a_recording(tmp_path: Path) -> None:
    zstd = shutil.which("zstd")
    if zstd is None:
        pytest.skip("zstd command not installed")
    path = _one_file(tmp_path)
    out = subprocess.run([zstd, "-dc", str(path)], capture_output=True, check=True).stdout
    assert b"b2f4" in out  # the headers are skippable frames: the records come out


_KILLED_WRITER = """
import sys, time
from venuefeed.lake.recorder import Recorder
rec = Recorder(sys.argv[1], flush_interval=0.001)
rec.start()
tap = rec.venue("kalshi")
i = 0
while True:
    tap.on_frame(("x" * 4000) + str(i), time.time_ns(), 0)
    i += 1
    if i % 200 == 0:
        print(rec.stats.blocks, flush=True)
        time.sleep(0.001)
"""


def test_sigkill_mid_write_loses_only_the_unwritten_tail(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(tmp_path)],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None
    while int(proc.stdout.readline() or 10**6) < 20:  # many blocks, then a kill at any point
        pass
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    report = ReadReport()
    frames = list(iter_frames(tmp_path, "kalshi", report=report))
    numbers = [int(f.data[4000:]) for f in frames]  # type: ignore[union-attr,index]
    assert numbers == list(range(len(numbers))) and len(numbers) > 100  # a prefix, in order
    assert report.torn_tails <= 1 and len(report.damaged) == report.torn_tails


def test_a_disk_that_refuses_writes_costs_a_marked_hole_not_the_recording(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "rec"
    blocker.mkdir()
    (blocker / "venue=kalshi").write_text("not a folder: every write fails")
    recorder = record(blocker, max_buffer_bytes=1000)
    tap = recorder.venue("kalshi")
    for i in range(50):
        tap.on_frame("y" * 100, T0 + i, 0)
    time.sleep(0.1)
    assert recorder.stats.lost > 0
    assert any("cannot write" in p for p in recorder.problems())
    assert any("not recorded" in p for p in recorder.problems())
    (blocker / "venue=kalshi").unlink()  # the disk recovers
    time.sleep(0.1)
    for i in range(50, 55):
        tap.on_frame("z", T0 + i, 0)
    time.sleep(0.1)
    assert recorder.problems() == []
    recorder.close()

    got = list(iter_frames(blocker, "kalshi"))
    kept = [r for r in got if isinstance(r, Frame)]
    (hole,) = [r for r in got if isinstance(r, Lost)]
    assert len(kept) + hole.frames == 55
    assert hole.frames == recorder.stats.lost and "buffer full" in hole.reason
    assert kept[-1].data == "z" and T0 <= hole.since <= hole.ts_recv < T0 + 50


def test_hour_partition_matches_receive_time() -> None:
    assert hour_of(T0) + 1 == hour_of(T0 + HOUR) == hour_of(T0 + 2 * HOUR - 1)
