"""The recording format: what a recorded session looks like on disk.

A recording is a folder of append-only files, one per venue and UTC hour at a
time::

    <root>/venue=<venue>/date=<YYYY-MM-DD>/hour=<HH>/frames-<first ns>-<pid>-<n>.zst

A file is a sequence of **blocks**, each written with one ``write`` and then
fsynced: a zstd *skippable frame* carrying the block header, then one
ordinary zstd frame holding the block's records. Standard tools read the
file (``zstdcat`` skips the headers and prints the records' msgpack); the
header is what makes it crash-safe:

=======  =====  ===========================================================
offset   bytes  field (little-endian)
=======  =====  ===========================================================
0        4      zstd skippable-frame magic ``0x184D2A5D``
4        4      header length (36)
8        4      ``b"VFR1"``: venuefeed recording, format version 1
12       4      compressed length of the records frame that follows
16       4      uncompressed length
20       4      CRC-32 of the compressed bytes
24       4      number of records
28       8      receive time of the block's first record (ns)
36       8      receive time of its last record (ns)
=======  =====  ===========================================================

A process killed in the middle of a ``write`` leaves a block whose header or
body is cut short, or whose CRC does not match: the reader detects it, skips
it and counts it, and every block before it reads as written. A writer never
appends to a file it did not create in this process, so nothing follows a
torn tail. The first/last times let a reader skip whole blocks outside the
window it asked for without decompressing them.

The records of a block are stored as columns -- one msgpack array of three
arrays of equal length, so the writer builds no object per frame:

1. receive times (ns);
2. per record, either a connection number -- the record is a WebSocket frame
   -- or the record itself, an array led by an integer tag
   (:class:`ConnEvent`, :class:`HttpExchange`, :class:`Lost`, :class:`FileStart`);
3. a frame's data -- a msgpack string for a text frame, binary for a binary
   one, exactly as received -- or, for a tagged record, its payload size.

Every record has a ``ts_recv``: the order of a recording is the order of
those times, then of the records in the files.
"""

from __future__ import annotations

import datetime as dt
import struct
from pathlib import Path
from typing import Any, Final

import msgspec

from venuefeed.transport.websocket import Frame

__all__ = [
    "BLOCK_HEADER",
    "FORMAT_VERSION",
    "HEADER_LENGTH",
    "HEADER_MAGIC",
    "HEADER_TAG",
    "BlockHeader",
    "ConnEvent",
    "FileStart",
    "HttpExchange",
    "Lost",
    "Record",
    "decode_block",
    "file_name",
    "hour_of",
    "parse_partition",
    "partition_dir",
]

FORMAT_VERSION: Final = 1
HEADER_MAGIC: Final = 0x184D2A5D
"""A zstd skippable-frame magic (``0x184D2A5?``): decoders step over our header."""
HEADER_TAG: Final = b"VFR1"
BLOCK_HEADER: Final = struct.Struct("<II4sIIIIqq")
"""magic, header length, tag, compressed length, raw length, CRC-32, records, first, last."""
HEADER_LENGTH: Final = BLOCK_HEADER.size - 8
"""The skippable frame's content length: the header after its magic and length fields."""


class BlockHeader(msgspec.Struct, frozen=True):
    compressed: int
    raw: int
    crc: int
    records: int
    first_ts: int
    last_ts: int

    def pack(self) -> bytes:
        return BLOCK_HEADER.pack(
            HEADER_MAGIC, HEADER_LENGTH, HEADER_TAG, self.compressed, self.raw, self.crc,
            self.records, self.first_ts, self.last_ts,
        )  # fmt: skip

    @classmethod
    def unpack(cls, data: bytes) -> BlockHeader | None:
        """The header at the start of ``data``, or None when these bytes are not one."""
        if len(data) < BLOCK_HEADER.size:
            return None
        magic, length, tag, compressed, raw, crc, records, first, last = BLOCK_HEADER.unpack_from(
            data
        )
        if magic != HEADER_MAGIC or length != HEADER_LENGTH or tag != HEADER_TAG:
            return None
        return cls(compressed, raw, crc, records, first, last)


# -- records: tag first, then the fields (msgpack arrays) ----------------------------


class ConnEvent(msgspec.Struct, array_like=True, frozen=True, tag=2):
    """What connection ``conn`` carries changed (see :class:`venuefeed.transport.websocket.
    SessionEvent`): ``connected`` with every subscription sent on it, ``subscribed`` /
    ``unsubscribed`` at run time, ``closed``."""

    ts_recv: int
    conn: int
    kind: str
    subscriptions: tuple[str, ...]
    down_since: int | None


class HttpExchange(msgspec.Struct, array_like=True, frozen=True, tag=3):
    """One REST request and what came back (``status`` 0 and ``error`` when nothing did).

    ``url`` has credential-like query values masked; request headers are not kept.
    """

    ts_recv: int
    ts_sent: int
    method: str
    url: str
    request_body: bytes | None
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    error: str


class Lost(msgspec.Struct, array_like=True, frozen=True, tag=4):
    """Frames received in ``[since, ts_recv]`` that the recorder could not keep, and why.

    Written when recording resumes after its buffer was full (a disk that refused
    writes for longer than the buffer lasts): the recording says where it has a hole.
    """

    ts_recv: int
    since: int
    frames: int
    reason: str


class FileStart(msgspec.Struct, array_like=True, frozen=True, tag=5):
    """The first record of every file: who wrote it."""

    ts_recv: int
    venue: str
    format_version: int
    writer: str
    """``venuefeed <version>`` and the process id."""


Tagged = ConnEvent | HttpExchange | Lost | FileStart
Record = Frame | Tagged

_columns: msgspec.msgpack.Decoder[tuple[list[int], list[int | Tagged], list[Any]]] = (
    msgspec.msgpack.Decoder(tuple[list[int], list[int | Tagged], list[Any]])
)


def decode_block(raw: bytes) -> list[Record]:
    """A block's records, in write order (raises :class:`msgspec.DecodeError` if damaged)."""
    times, metas, datas = _columns.decode(raw)
    if not len(times) == len(metas) == len(datas):
        raise msgspec.DecodeError("columns of different lengths")
    out: list[Record] = []
    for ts, meta, data in zip(times, metas, datas, strict=True):
        if type(meta) is int:
            if not isinstance(data, str | bytes):
                raise msgspec.DecodeError(f"frame data of type {type(data).__name__}")
            out.append(Frame(data, ts, meta))
        else:
            out.append(meta)  # type: ignore[arg-type]
    return out


# -- layout --------------------------------------------------------------------------

_HOUR_NS: Final = 3600 * 1_000_000_000


def hour_of(ts_ns: int) -> int:
    """The UTC hour (hours since the epoch) a receive time falls in: its partition."""
    return ts_ns // _HOUR_NS


def partition_dir(root: Path, venue: str, hour: int) -> Path:
    moment = dt.datetime.fromtimestamp(hour * 3600, tz=dt.UTC)
    return root / f"venue={venue}" / f"date={moment:%Y-%m-%d}" / f"hour={moment:%H}"


def file_name(first_ts: int, pid: int, number: int) -> str:
    return f"frames-{first_ts}-{pid}-{number}.zst"


def parse_partition(path: Path) -> int | None:
    """The hour of a file from its ``date=`` and ``hour=`` folders (None: not ours)."""
    try:
        hour = int(path.parent.name.removeprefix("hour="))
        day = dt.date.fromisoformat(path.parent.parent.name.removeprefix("date="))
    except ValueError:
        return None
    return (day - dt.date(1970, 1, 1)).days * 24 + hour
