"""Append-only, fsynced files of record batches: the spool's segments and the Parquet WAL.

A frame is ``length (u32) | crc32 (u32) | msgpack payload``. ``append``
returns only after ``fsync``, so a batch in a journal survives a crash of the
process or the machine. A crash in the middle of an append leaves a torn
last frame; :func:`read_frames` stops at the first frame whose length or
checksum does not add up and reports how many bytes were good, so the owner
can truncate the tail and carry on.

Batches are encoded with msgspec. Events are tagged structs; markets and
watermarks are wrapped in small tagged structs so one union decodes them all.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import msgspec

from venuefeed.models import Event, Market
from venuefeed.sinks.base import RawMessage, Record, Watermark

__all__ = ["Journal", "decode_batch", "encode_batch", "frame", "fsync_dir", "read_frames"]

_HEADER = struct.Struct("<II")


class _MarketRecord(msgspec.Struct, tag="market", tag_field="type", frozen=True):
    market: Market


class _WatermarkRecord(msgspec.Struct, tag="watermark", tag_field="type", frozen=True):
    watermark: Watermark


class _RawRecord(msgspec.Struct, tag="raw", tag_field="type", frozen=True):
    raw: RawMessage


_Wire = Event | _MarketRecord | _WatermarkRecord | _RawRecord
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(list[_Wire])


def encode_batch(batch: Sequence[Record]) -> bytes:
    wire: list[_Wire] = []
    for record in batch:
        if isinstance(record, Market):
            wire.append(_MarketRecord(record))
        elif isinstance(record, Watermark):
            wire.append(_WatermarkRecord(record))
        elif isinstance(record, RawMessage):
            wire.append(_RawRecord(record))
        else:
            wire.append(record)
    return _encoder.encode(wire)


def decode_batch(payload: bytes) -> list[Record]:
    out: list[Record] = []
    for item in _decoder.decode(payload):
        if isinstance(item, _MarketRecord):
            out.append(item.market)
        elif isinstance(item, _WatermarkRecord):
            out.append(item.watermark)
        elif isinstance(item, _RawRecord):
            out.append(item.raw)
        else:
            out.append(item)
    return out


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


class Journal:
    """One append-only journal file. Blocking; call from a worker thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        existed = path.exists()
        self.size = self._recover() if existed else 0
        self._file = path.open("ab")
        if not existed:
            fsync_dir(path.parent)

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
        self._file.write(data)
        self._file.flush()
        os.fsync(self._file.fileno())
        self.size += len(data)
        return len(data)

    def close(self) -> None:
        self._file.close()
