"""Reading a recording back: one venue's records in time order, across files.

:func:`iter_frames` is what replay consumes: WebSocket frames as
:class:`~venuefeed.transport.websocket.Frame` (exactly what a venue feed's
``on_frames`` takes), connection events, REST exchanges and marks of frames
the recorder lost, in receive-time order. Files of one venue may overlap in
time (a restart within the hour, size rotation, two processes), so they are
merged; ties keep file order, then write order, which makes the sequence the
same on every read.

A damaged block -- the torn tail a killed writer leaves, or corruption
anywhere -- is skipped and counted in a :class:`ReadReport`; the reader then
looks for the next block header, so one bad block never hides the ones
after it.
"""

from __future__ import annotations

import heapq
import mmap
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import pyarrow as pa

from venuefeed.lake.format import (
    BLOCK_HEADER,
    HEADER_LENGTH,
    HEADER_MAGIC,
    HEADER_TAG,
    BlockHeader,
    ConnEvent,
    FileStart,
    HttpExchange,
    Lost,
    Record,
    decode_block,
    hour_of,
    parse_partition,
)
from venuefeed.log import get_logger
from venuefeed.transport.websocket import Frame

__all__ = [
    "ReadReport",
    "Recorded",
    "iter_file",
    "iter_frames",
    "recording_files",
    "venues",
]

log = get_logger("venuefeed.lake.reader")

Recorded = Frame | ConnEvent | HttpExchange | Lost
"""What :func:`iter_frames` yields (file headers are left out)."""

_MAGIC = struct.pack("<II4s", HEADER_MAGIC, HEADER_LENGTH, HEADER_TAG)
"""The first 12 bytes every block header starts with: what a resync looks for."""


@dataclass
class ReadReport:
    """What reading found besides records: damaged blocks and where."""

    files: int = 0
    blocks: int = 0
    records: int = 0
    damaged: list[tuple[Path, int, int, str]] = field(default_factory=list)
    """``(file, offset, bytes skipped, why)`` per damaged stretch."""

    @property
    def torn_tails(self) -> int:
        return sum(1 for *_, why in self.damaged if why.startswith("torn tail"))


def venues(root: str | Path) -> list[str]:
    """The venues a recording holds."""
    base = Path(root)
    return sorted(p.name.removeprefix("venue=") for p in base.glob("venue=*") if p.is_dir())


def recording_files(
    root: str | Path, venue: str, start: int | None = None, end: int | None = None
) -> list[Path]:
    """The files of ``venue`` whose hour overlaps ``[start, end]``, in name order."""
    base = Path(root) / f"venue={venue}"
    first = hour_of(start) if start is not None else None
    last = hour_of(end) if end is not None else None
    found = []
    for path in base.glob("date=*/hour=*/frames-*.zst"):
        hour = parse_partition(path)
        if hour is None:
            continue
        if (first is not None and hour < first) or (last is not None and hour > last):
            continue
        found.append((hour, _file_order(path), path))
    return [path for *_, path in sorted(found)]


def _file_order(path: Path) -> tuple[int, int, int]:
    """``frames-<first ns>-<pid>-<n>.zst`` sorts by its numbers, not as text."""
    parts = path.name.removeprefix("frames-").removesuffix(".zst").split("-")
    try:
        return int(parts[0]), int(parts[1]), int(parts[2])
    except (IndexError, ValueError):
        return (0, 0, 0)


def iter_file(
    path: Path,
    start: int | None = None,
    end: int | None = None,
    report: ReadReport | None = None,
) -> Iterator[Record]:
    """The records of one file with ``start <= ts_recv <= end``, in write order."""
    report = report if report is not None else ReadReport()
    report.files += 1
    with path.open("rb") as fh:
        size = path.stat().st_size
        if size == 0:
            return
        with mmap.mmap(fh.fileno(), size, access=mmap.ACCESS_READ) as data:
            yield from _blocks(path, data, size, start, end, report)


def _blocks(
    path: Path, data: mmap.mmap, size: int, start: int | None, end: int | None, report: ReadReport
) -> Iterator[Record]:
    codec = pa.Codec("zstd")
    offset = 0
    while offset < size:
        header = BlockHeader.unpack(data[offset : offset + BLOCK_HEADER.size])
        why = ""
        if header is None:
            why = "not a block header"
        else:
            body_at = offset + BLOCK_HEADER.size
            body = data[body_at : body_at + header.compressed]
            if len(body) < header.compressed:
                why = "torn tail: block cut short"
            elif zlib.crc32(body) != header.crc:
                why = "CRC mismatch"
        if why:
            if size - offset < BLOCK_HEADER.size and why == "not a block header":
                why = "torn tail: header cut short"
            resume = data.find(_MAGIC, offset + 1)
            skipped = (resume if resume >= 0 else size) - offset
            if resume < 0 and not why.startswith("torn tail"):
                why = f"torn tail: {why}"
            report.damaged.append((path, offset, skipped, why))
            log.warning("recording block skipped", file=str(path), offset=offset,
                        bytes=skipped, reason=why)  # fmt: skip
            if resume < 0:
                return
            offset = resume
            continue
        assert header is not None
        offset = body_at + header.compressed
        report.blocks += 1
        if (start is not None and header.last_ts < start) or (
            end is not None and header.first_ts > end
        ):
            continue
        try:
            raw = codec.decompress(body, decompressed_size=header.raw, asbytes=True)
            records = decode_block(raw)
        except (pa.ArrowException, msgspec.DecodeError, OSError) as exc:
            report.damaged.append((path, offset - header.compressed, header.compressed,
                                   f"undecodable block: {exc}"))  # fmt: skip
            continue
        for record in records:
            ts = record.ts_recv
            if (start is None or ts >= start) and (end is None or ts <= end):
                report.records += 1
                yield record


def iter_frames(
    root: str | Path,
    venue: str,
    start: int | None = None,
    end: int | None = None,
    *,
    report: ReadReport | None = None,
) -> Iterator[Recorded]:
    """Every record of ``venue`` with ``start <= ts_recv <= end`` (ns), in time order.

    Deterministic: the same recording gives the same sequence on every call.
    Damaged blocks are skipped and listed in ``report``.
    """
    report = report if report is not None else ReadReport()
    files = recording_files(root, venue, start, end)
    streams = [
        (
            (r.ts_recv, index, seq, r)
            for seq, r in enumerate(iter_file(path, start, end, report))
            if type(r) is not FileStart
        )
        for index, path in enumerate(files)
    ]
    for *_, record in heapq.merge(*streams, key=lambda item: item[:3]):
        yield record  # type: ignore[misc]  # FileStart was filtered out above
