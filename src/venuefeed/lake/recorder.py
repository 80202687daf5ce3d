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
from venuefeed.lake.format import (
    FORMAT_VERSION,
    BlockHeader,
    file_name,
    hour_of,
    partition_dir,
)
from venuefeed.log import get_logger
from venuefeed.sinks.journal import fsync_dir
from venuefeed.transport.websocket import SessionEvent

__all__ = ["Recorder", "RecorderStats", "VenueRecorder"]

log = get_logger("venuefeed.lake.recorder")

# Queue items are frames ``(venue, ts_recv, conn, data)`` or other records
# ``(venue, ts_recv, record, size)``, the record a msgpack tuple already tagged.
_CONN_EVENT, _HTTP, _LOST, _FILE_START = 2, 3, 4, 5
_SKIPPED_HEADERS = frozenset({"set-cookie"})


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
    :class:`~venuefeed.transport.http.HttpTap`. Runs on the event loop; never blocks."""

    __slots__ = ("_rec", "venue")

    def __init__(self, recorder: Recorder, venue: str) -> None:
        self._rec = recorder
        self.venue = venue

    def on_frame(self, data: bytes | str, ts_recv: int, conn: int) -> None:
        rec = self._rec
        if rec._queued - rec._released > rec.max_buffer_bytes:
            rec._lose(self.venue, ts_recv)
            return
        if rec._losing:
            rec._resume(self.venue)
        rec._queued += len(data)
        rec._queue.append((self.venue, ts_recv, conn, data))

    def on_session(self, event: SessionEvent) -> None:
        record = (_CONN_EVENT, event.ts_recv, event.conn, event.kind, event.subscriptions,
                  event.down_since)  # fmt: skip
        self._rec._put(self.venue, event.ts_recv, record, 64)

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
        kept = tuple((k, v) for k, v in headers.items() if k.lower() not in _SKIPPED_HEADERS)
        record = (_HTTP, ts_recv, ts_sent, method, url, request_body, status, kept, body, error)
        self._rec._put(self.venue, ts_recv, record, len(body) + len(request_body or b""))


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
        # loop side
        self._queue: deque[tuple[Any, ...]] = deque()
        self._queued = 0
        self._losing: dict[str, list[int]] = {}
        """Per venue ``[first ts, last ts, count]`` of frames not recorded (buffer full)."""
        self._taps: dict[str, VenueRecorder] = {}
        # writer side
        self._released = 0
        self._backlog: list[tuple[Any, ...]] = []
        self._files: dict[tuple[str, int], _OpenFile] = {}
        self._number = 0
        self._problem: str | None = None
        self._problem_since: float | None = None
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    # -- loop side -----------------------------------------------------------

    def venue(self, name: str) -> VenueRecorder:
        """The tap for ``name`` (one per venue, shared by its sessions and HTTP clients)."""
        tap = self._taps.get(name)
        if tap is None:
            tap = self._taps[name] = VenueRecorder(self, name)
        return tap

    def _put(self, venue: str, ts_recv: int, record: tuple[Any, ...], size: int) -> None:
        if self._queued - self._released > self.max_buffer_bytes:
            self._lose(venue, ts_recv)
            return
        if self._losing:
            self._resume(venue)
        self._queued += size
        self._queue.append((venue, ts_recv, record, size))

    def _lose(self, venue: str, ts_recv: int) -> None:
        entry = self._losing.get(venue)
        if entry is None:
            self._losing[venue] = [ts_recv, ts_recv, 1]
            log.error("recording buffer full: frames are not recorded until the writer "
                      "catches up", venue=venue, problem=self._problem)  # fmt: skip
        else:
            entry[1] = ts_recv
            entry[2] += 1
        self.stats.lost += 1

    def _resume(self, venue: str) -> None:
        entry = self._losing.pop(venue, None)
        if entry is not None:
            since, last, count = entry
            record = (_LOST, last, since, count, f"recording buffer full ({self._problem})")
            self._queue.append((venue, last, record, 0))
            log.warning("recording resumed", venue=venue, frames_lost=count)

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
        for venue in list(self._losing):  # the hole is marked even when nothing followed it
            self._resume(venue)
        self._flush()
        for key in list(self._files):
            self._close_file(key)
        if self._backlog or self._queue:
            pending = len(self._backlog) + len(self._queue)
            log.error("recording closed with records not written", records=pending,
                      problem=self._problem)  # fmt: skip

    def problems(self) -> list[str]:
        out: list[str] = []
        if self._problem is not None and self._problem_since is not None:
            since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self._problem_since))
            out.append(f"recording: cannot write to {self.root}: {self._problem} (since {since})")
        if self._losing:
            lost = sum(entry[2] for entry in self._losing.values())
            out.append(f"recording: buffer full, {lost} frame(s) not recorded so far")
        if self._thread is not None and not self._thread.is_alive() and not self._stopping:
            out.append("recording: the writer thread stopped (see the log)")
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
        try:
            while not self._stopping:
                self._wake.wait(self.flush_interval)
                self._wake.clear()
                self._flush()
        except Exception:  # a bug here must show, not end recording silently
            log.exception("recorder thread failed")
            raise

    def _flush(self) -> None:
        """Write what is queued, one block per partition; keep it for later on a disk error."""
        queue, backlog = self._queue, self._backlog
        while True:
            try:
                backlog.append(queue.popleft())
            except IndexError:
                break
        if backlog:
            groups: dict[tuple[str, int], list[tuple[Any, ...]]] = {}
            for item in backlog:
                groups.setdefault((item[0], hour_of(item[1])), []).append(item)
            self._backlog = []
            for key, items in groups.items():
                if self._backlog:  # a write failed this round: keep the rest, in order
                    self._backlog.extend(items)
                    continue
                try:
                    self._write_block(key, items)
                except OSError as exc:
                    self._failed(key, exc)
                    self._backlog.extend(items)
            if not self._backlog and self._problem is not None:
                down = round(time.time() - (self._problem_since or 0), 1)
                log.info("recording writes again", after_s=down)
                self._problem = self._problem_since = None
        self._sync_and_retire()

    def _write_block(self, key: tuple[str, int], items: list[tuple[Any, ...]]) -> None:
        records: list[tuple[Any, ...]] = []
        size = 0
        handle = self._files.get(key)
        if handle is None or handle.size >= self.max_file_bytes:
            if handle is not None:
                self._close_file(key)
            handle = self._open_file(key, items[0][1])
            records.append((_FILE_START, items[0][1], key[0], FORMAT_VERSION,
                            f"venuefeed {__version__} pid {self._pid}"))  # fmt: skip
        for item in items:
            payload = item[2]
            if type(payload) is tuple:
                records.append(payload)
                size += item[3]
            else:
                data = item[3]
                records.append((0 if type(data) is str else 1, item[1], payload, data))
                size += len(data)
        raw = msgspec.msgpack.encode(records)
        body = self._codec.compress(raw, asbytes=True)
        header = BlockHeader(len(body), len(raw), zlib.crc32(body), len(records),
                             items[0][1], items[-1][1])  # fmt: skip
        _write_all(handle.fd, header.pack() + body)
        handle.size += len(header.pack()) + len(body)
        handle.touched = True
        self._released += size
        stats = self.stats
        stats.frames += len(items)
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


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
