"""Append-only, fsynced files of record batches: the spool's segments and the Parquet WAL.

A frame is ``length (u32) | crc32 (u32) | msgpack payload``. ``append``
returns only after ``fsync``, so a batch in a journal survives a crash of the
process or the machine. A crash in the middle of an append leaves a torn
last frame; :func:`read_frames` stops at the first frame whose length or
checksum does not add up and reports how many bytes were good, so the owner
can truncate the tail and carry on. An append that fails (disk full, I/O
error) truncates its partial frame away before raising, so the journal stays
readable and the next append lands right after the last good frame.

Batches are encoded with msgspec. Events are tagged structs; markets and
watermarks are wrapped in small tagged structs so one union decodes them all.
"""

from __future__ import annotations

import contextlib
import os
import struct
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import msgspec

from venuefeed.models import Event, Market
from venuefeed.sinks.base import RawMessage, Record, Watermark

__all__ = [
    "Journal",
    "Wire",
    "append_durably",
    "batch_length",
    "decode_batch",
    "encode_batch",
    "frame",
    "from_wire",
    "fsync_dir",
    "read_frames",
    "to_wire",
]

_HEADER = struct.Struct("<II")


class _MarketRecord(msgspec.Struct, tag="market", tag_field="type", frozen=True):
    market: Market


class _WatermarkRecord(msgspec.Struct, tag="watermark", tag_field="type", frozen=True):
    watermark: Watermark


class _RawRecord(msgspec.Struct, tag="raw", tag_field="type", frozen=True):
    raw: RawMessage


Wire = Event | _MarketRecord | _WatermarkRecord | _RawRecord
"""Any record as one tagged union (what journals and the dead-letter file store)."""
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(list[Wire])


def to_wire(record: Record) -> Wire:
    if isinstance(record, Market):
        return _MarketRecord(record)
    if isinstance(record, Watermark):
        return _WatermarkRecord(record)
    if isinstance(record, RawMessage):
        return _RawRecord(record)
    return record


def from_wire(item: Wire) -> Record:
    if isinstance(item, _MarketRecord):
        return item.market
    if isinstance(item, _WatermarkRecord):
        return item.watermark
    if isinstance(item, _RawRecord):
        return item.raw
    return item


def encode_batch(batch: Sequence[Record]) -> bytes:
    return _encoder.encode([to_wire(record) for record in batch])


def decode_batch(payload: bytes) -> list[Record]:
    return [from_wire(item) for item in _decoder.decode(payload)]


def batch_length(payload: bytes) -> int:
    """How many records an encoded batch holds, read from its msgpack array header alone."""
    head = payload[0]
    if 0x90 <= head <= 0x9F:
        return head & 0x0F
    if head == 0xDC:
        return int.from_bytes(payload[1:3], "big")
    if head == 0xDD:
        return int.from_bytes(payload[1:5], "big")
    raise ValueError("not an encoded batch")


def frame(payload: bytes) -> bytes:
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def read_frames(path: Path) -> Iterator[tuple[int, bytes]]:
    """Yield ``(end offset, payload)`` of each intact frame, stopping at a torn one."""
    with path.open("rb") as f:
        data = f.read()
    offset = 0
    while offset + _HEADER.size <= len(data):
        length, crc = _HEADER.unpack_from(data, offset)
        start = offset + _HEADER.size
        payload = data[start : start + length]
        if len(payload) < length or zlib.crc32(payload) != crc:
            return
        offset = start + length
        yield offset, payload


def fsync_dir(directory: Path) -> None:
    """Make a created, renamed or deleted directory entry durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def append_durably(fd: int, data: bytes, size: int) -> None:
    """Append ``data`` to the file open at ``fd`` (``size`` bytes long) and fsync it.

    All or nothing: on any error the file is cut back to ``size`` bytes (which
    needs no free space) and the error is raised, so a full disk never leaves
    a torn record in the middle of a file that later appends would follow.
    """
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except BaseException:
        # The original error is the one to report; a tail this cannot cut is cut at open.
        with contextlib.suppress(OSError):
            os.ftruncate(fd, size)
        raise


class Journal:
    """One append-only journal file. Blocking; call from a worker thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        existed = path.exists()
        self.size = self._recover() if existed else 0
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if not existed:
            try:
                fsync_dir(path.parent)
            except BaseException:
                self.close()
                raise

    def _recover(self) -> int:
        good = 0
        for end, _ in read_frames(self.path):
            good = end
        if good != self.path.stat().st_size:  # torn tail from a crash mid-append
            with self.path.open("r+b") as f:
                f.truncate(good)
                os.fsync(f.fileno())
        return good

    def append(self, payload: bytes) -> int:
        """Append one frame and fsync; return the frame's size on disk."""
        data = frame(payload)
        append_durably(self._fd, data, self.size)
        self.size += len(data)
        return len(data)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
