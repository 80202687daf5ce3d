"""The recorder: every venue frame, WebSocket and REST alike, to compressed files.

The format is :mod:`venuefeed.lake.format`'s. This module is about cost and
safety:

* **Off the event loop.** The taps (:class:`VenueRecorder`) run inside the
  session's read loop and the HTTP client; all they do is append a tuple to a
  deque. A writer thread wakes every ``flush_interval`` seconds, takes what
  accumulated, encodes it (msgpack), compresses it (zstd, which releases the
  interpreter lock), appends one block per partition and fsyncs. The
  per-frame cost on the loop is measured by ``bench/bench_recorder.py``.
* **Crash-safe.** A block is durable once its round's fsync returned; a kill
  in the middle of a write leaves a torn tail that readers detect and skip.
  A file is only ever appended to by the process that created it.
* **Bounded.** What waits for the writer is bounded by ``max_buffer_bytes``
  (frame payload bytes; text counted by characters). When the disk refuses
  writes for longer than that lasts, frames are not recorded -- counted, the
  service reports it as a problem, and a :class:`~venuefeed.lake.format.Lost`
  record marks the window in the recording once writing resumes. The live
  data is unaffected: the recording is a copy, and blocking the sockets for
  it would lose data at the venue instead.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
import zlib
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa

from venuefeed import __version__
from venuefeed.lake.format import FORMAT_VERSION, BlockHeader, file_name, hour_of, partition_dir
from venuefeed.log import get_logger
from venuefeed.sinks.journal import fsync_dir
from venuefeed.transport.websocket import SessionEvent

__all__ = ["Recorder", "RecorderStats", "VenueRecorder"]

log = get_logger("venuefeed.lake.recorder")

_CONN_EVENT, _HTTP, _LOST, _FILE_START = 2, 3, 4, 5
_SKIPPED_HEADERS = frozenset({"set-cookie"})
_HOUR_NS = 3600 * 1_000_000_000


@dataclass(slots=True)
class RecorderStats:
    frames: int = 0
    """Records written (frames, connection events, HTTP exchanges)."""
    blocks: int = 0
    files: int = 0
    raw_bytes: int = 0
    compressed_bytes: int = 0
    lost: int = 0
    """Frames not recorded because the buffer was full."""


class _OpenFile:
    __slots__ = ("fd", "path", "size", "touched")

    def __init__(self, fd: int, path: Path) -> None:
        self.fd = fd
        self.path = path
        self.size = 0
        self.touched = False


class VenueRecorder:
    """One venue's tap: a :class:`~venuefeed.transport.websocket.SessionTap` and an
    :class:`~venuefeed.transport.http.HttpTap`. Runs on the event loop; never blocks.

    A frame is queued as three appends to three deques (receive time; connection;
    data), not as a tuple: a tuple per frame is a garbage-collector-tracked
    allocation, and the collections it triggers doubled the tap's cost. Other
    records put their tagged tuple where the connection goes and their size
    where the data goes. The writer takes as many items as ``data`` holds (it is
    appended last), so it never sees half an item.
    """

    __slots__ = ("_conn", "_data", "_lost", "_rec", "_ts", "venue")

    def __init__(self, recorder: Recorder, venue: str) -> None:
        self._rec = recorder
        self.venue = venue
        self._ts: deque[int] = deque()
        self._conn: deque[int | tuple[Any, ...]] = deque()
        self._data: deque[bytes | str | int] = deque()
        self._lost: list[int] | None = None
        """``[first ts, last ts, count]`` of frames not recorded (buffer full)."""

    def on_frame(self, data: bytes | str, ts_recv: int, conn: int) -> None:
        rec = self._rec
        if rec._queued - rec._released > rec.max_buffer_bytes:
            self._lose(ts_recv)
            return
        if self._lost is not None:
            self._resume()
        rec._queued += len(data)
        self._ts.append(ts_recv)
        self._conn.append(conn)
        self._data.append(data)

    def on_session(self, event: SessionEvent) -> None:
        record = (_CONN_EVENT, event.ts_recv, event.conn, event.kind, event.subscriptions,
                  event.down_since)  # fmt: skip
        self._put(event.ts_recv, record, 64)

    def on_http(
        self,
        method: str,
        url: str,
        request_body: bytes | None,
        ts_sent: int,
        ts_recv: int,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        error: str,
    ) -> None:
        kept = tuple(
            (str(k), str(v)) for k, v in headers.items() if k.lower() not in _SKIPPED_HEADERS
        )
        record = (_HTTP, ts_recv, ts_sent, method, url, request_body, status, kept, body, error)
        self._put(ts_recv, record, len(body) + len(request_body or b""))

    def _put(self, ts_recv: int, record: tuple[Any, ...], size: int) -> None:
        rec = self._rec
        if rec._queued - rec._released > rec.max_buffer_bytes:
            self._lose(ts_recv)
            return
        if self._lost is not None:
            self._resume()
        rec._queued += size
        self._ts.append(ts_recv)
        self._conn.append(record)
        self._data.append(size)

    def _lose(self, ts_recv: int) -> None:
        lost = self._lost
        if lost is None:
            self._lost = [ts_recv, ts_recv, 1]
            log.error("recording buffer full: frames are not recorded until the writer "
                      "catches up", venue=self.venue, problem=self._rec._problem)  # fmt: skip
        else:
            lost[1] = ts_recv
            lost[2] += 1
        self._rec.stats.lost += 1

    def _resume(self) -> None:
        """Queue a :class:`~venuefeed.lake.format.Lost` record for the frames not recorded."""
        lost, self._lost = self._lost, None
        if lost is not None:
            since, last, count = lost
            reason = f"recording buffer full ({self._rec._problem or 'writer behind'})"
            self._ts.append(last)
            self._conn.append((_LOST, last, since, count, reason))
            self._data.append(0)
            log.warning("recording resumed", venue=self.venue, frames_lost=count)

    def _take(self) -> tuple[list[int], list[int | tuple[Any, ...]], list[bytes | str | int]]:
        """Everything queued so far, in order, as three columns (writer thread)."""
        n = len(self._data)
        ts, conn, data = self._ts.popleft, self._conn.popleft, self._data.popleft
        return [ts() for _ in range(n)], [conn() for _ in range(n)], [data() for _ in range(n)]


class Recorder:
    """Appends every tapped frame to ``root`` (see the module docstring).

    ``start()`` before the taps are used, ``close()`` (blocking: run it in a
    thread from async code) after the last one; both are idempotent.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        flush_interval: float = 1.0,
        max_file_bytes: int = 128 * 2**20,
        max_buffer_bytes: int = 256 * 2**20,
        compression_level: int = 3,
    ) -> None:
        self.root = Path(root)
        self.flush_interval = flush_interval
        self.max_file_bytes = max_file_bytes
        self.max_buffer_bytes = max_buffer_bytes
        self._codec = pa.Codec("zstd", compression_level=compression_level)
        self.stats = RecorderStats()
        self._queued = 0
        """Payload bytes queued by the taps (loop side)."""
        self._taps: dict[str, VenueRecorder] = {}
        # writer side
        self._released = 0
        """Payload bytes written (writer side): queued - released is what waits."""
        self._backlog: dict[str, _Columns] = {}
        self._files: dict[tuple[str, int], _OpenFile] = {}
        self._number = 0
        self._problem: str | None = None
        self._problem_since: float | None = None
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def venue(self, name: str) -> VenueRecorder:
        """The tap for ``name`` (one per venue, shared by its sessions and HTTP clients)."""
        tap = self._taps.get(name)
        if tap is None:
            tap = self._taps[name] = VenueRecorder(self, name)
        return tap

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="venuefeed-recorder", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Write everything queued, fsync, close the files. Blocking."""
        thread = self._thread
        if thread is None or self._stopping:
            return
        self._stopping = True
        self._wake.set()
        thread.join()
        for tap in self._taps.values():  # the hole is marked even when nothing followed it
            tap._resume()
        self._flush()
        for key in list(self._files):
            self._close_file(key)
        pending = sum(len(columns.ts) for columns in self._backlog.values())
        if pending:
            log.error("recording closed with records not written", records=pending,
                      problem=self._problem)  # fmt: skip

    def problems(self) -> list[str]:
        out: list[str] = []
        if self._problem is not None and self._problem_since is not None:
            since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self._problem_since))
            out.append(f"recording: cannot write to {self.root}: {self._problem} (since {since})")
        losing = [tap._lost[2] for tap in self._taps.values() if tap._lost is not None]
        if losing:
            out.append(f"recording: buffer full, {sum(losing)} frame(s) not recorded so far")
        return out

    def view(self) -> dict[str, Any]:
        stats = self.stats
        return {
            "path": str(self.root),
            "records": stats.frames,
            "blocks": stats.blocks,
            "files": stats.files,
            "raw_bytes": stats.raw_bytes,
            "compressed_bytes": stats.compressed_bytes,
            "buffered_bytes": self._queued - self._released,
            "lost": stats.lost,
        }

    # -- writer thread ---------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            try:
                self._flush()
            except Exception as exc:  # our bug: show it, count what it cost, keep recording
                log.exception("recorder failed to write a batch; it is not recorded")
                self.stats.lost += sum(len(columns.ts) for columns in self._backlog.values())
                self._backlog.clear()
                self._problem = f"writer failed: {type(exc).__name__}: {exc}"
                self._problem_since = self._problem_since or time.time()

    def _flush(self) -> None:
        """Write what is queued, one block per venue and hour; on a disk error keep it."""
        failed = False
        for venue, tap in list(self._taps.items()):
            columns = _Columns(*tap._take())
            held = self._backlog.pop(venue, None)
            if held is not None:
                columns = held.extend(columns)
            if not columns.ts:
                continue
            if failed:  # the disk refused this round: keep the rest for the next one
                self._backlog[venue] = columns
                continue
            for hour, lo, hi in columns.hours():
                try:
                    self._write_block((venue, hour), columns, lo, hi)
                except OSError as exc:
                    self._failed((venue, hour), exc)
                    self._backlog[venue] = columns.slice(lo, len(columns.ts))
                    failed = True
                    break
        if not failed and self._problem is not None and not self._backlog:
            down = round(time.time() - (self._problem_since or 0), 1)
            log.info("recording writes again", after_s=down)
            self._problem = self._problem_since = None
        self._sync_and_retire()

    def _write_block(self, key: tuple[str, int], columns: _Columns, lo: int, hi: int) -> None:
        ts, meta, data = columns.ts[lo:hi], columns.meta[lo:hi], columns.data[lo:hi]
        handle = self._files.get(key)
        if handle is None or handle.size >= self.max_file_bytes:
            if handle is not None:
                self._close_file(key)
            handle = self._open_file(key, ts[0])
            start = (_FILE_START, ts[0], key[0], FORMAT_VERSION,
                     f"venuefeed {__version__} pid {self._pid}")  # fmt: skip
            ts, meta, data = [ts[0], *ts], [start, *meta], [0, *data]
        raw = msgspec.msgpack.encode((ts, meta, data))
        body = self._codec.compress(raw, asbytes=True)
        header = BlockHeader(len(body), len(raw), zlib.crc32(body), len(ts), ts[0], ts[-1]).pack()
        _write_all(handle.fd, header + body)
        handle.size += len(header) + len(body)
        handle.touched = True
        self._released += sum(d if isinstance(d, int) else len(d) for d in data)
        stats = self.stats
        stats.frames += hi - lo
        stats.blocks += 1
        stats.raw_bytes += len(raw)
        stats.compressed_bytes += len(body)

    def _open_file(self, key: tuple[str, int], first_ts: int) -> _OpenFile:
        venue, hour = key
        directory = partition_dir(self.root, venue, hour)
        directory.mkdir(parents=True, exist_ok=True)
        self._number += 1
        path = directory / file_name(first_ts, self._pid, self._number)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        fsync_dir(directory)
        handle = self._files[key] = _OpenFile(fd, path)
        self.stats.files += 1
        return handle

    def _sync_and_retire(self) -> None:
        """fsync what this round wrote; close files of past hours that got nothing new."""
        current = hour_of(time.time_ns())
        for key, handle in list(self._files.items()):
            if handle.touched:
                try:
                    os.fsync(handle.fd)
                except OSError as exc:
                    self._failed(key, exc)
                    continue
                handle.touched = False
            elif key[1] < current:
                self._close_file(key)

    def _close_file(self, key: tuple[str, int]) -> None:
        handle = self._files.pop(key)
        with contextlib.suppress(OSError):
            os.fsync(handle.fd)
        with contextlib.suppress(OSError):
            os.close(handle.fd)

    def _failed(self, key: tuple[str, int], exc: OSError) -> None:
        """A write or fsync failed: its file may end torn, so the next block starts a new one."""
        cause = "disk full" if exc.errno == errno.ENOSPC else f"I/O error ({exc})"
        if self._problem is None:
            self._problem_since = time.time()
            log.error("recording cannot write; keeping frames in memory", error=cause,
                      path=str(self._files[key].path) if key in self._files else None)  # fmt: skip
        self._problem = cause
        if key in self._files:
            self._close_file(key)


class _Columns:
    """Queued items as columns: receive times, connection (or a tagged record), data (or size)."""

    __slots__ = ("data", "meta", "ts")

    def __init__(
        self, ts: list[int], meta: list[int | tuple[Any, ...]], data: list[bytes | str | int]
    ) -> None:
        self.ts, self.meta, self.data = ts, meta, data

    def extend(self, more: _Columns) -> _Columns:
        self.ts += more.ts
        self.meta += more.meta
        self.data += more.data
        return self

    def slice(self, lo: int, hi: int) -> _Columns:
        return _Columns(self.ts[lo:hi], self.meta[lo:hi], self.data[lo:hi])

    def hours(self) -> list[tuple[int, int, int]]:
        """``(hour, lo, hi)`` runs of items in the same UTC hour (receive times rarely go back)."""
        runs: list[tuple[int, int, int]] = []
        lo, low, high, hour = 0, -1, -1, 0
        for i, ts in enumerate(self.ts):
            if not low <= ts < high:
                if i:
                    runs.append((hour, lo, i))
                hour, lo = ts // _HOUR_NS, i
                low, high = hour * _HOUR_NS, (hour + 1) * _HOUR_NS
        if self.ts:
            runs.append((hour, lo, len(self.ts)))
        return runs


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
