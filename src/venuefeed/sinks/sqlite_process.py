"""The SQLite writer in a process of its own ("storage work does not share the event
loop's interpreter lock").

Turning records into rows and SQLite's own work took about as much CPU per
event as everything else together, in a thread that competed with the event
loop for the interpreter lock. Here the sink's side only encodes each batch
with msgspec (in C, a few µs for hundreds of records) and writes it to a
socket; a forked process decodes it, stores it through the same
:class:`~venuefeed.sinks.sqlite_commit.Committer` the thread used, and answers
each batch after its ``COMMIT`` -- so ``write`` still returns only once the
batch is durable (rule 4), and fails with the same classified errors.

* **Framing**: to the process, a header (4-byte length, 8-byte sequence
  number, big-endian) and msgpack ``[events, markets, watermarks, raw]``
  (events are tagged, the other records go by kind; within a kind order is
  kept, and the store never relied on order across kinds). Back: a 4-byte
  length and msgpack ``[seq, code, text]``. A batch the process cannot decode
  is answered as invalid records, like one SQLite refuses: never a crash that
  would turn one bad batch into an outage retried forever.
* **Commits bounded by time and size**: the process takes every batch already
  received into one transaction, closed after ``commit_seconds`` (5 ms) of
  work or ``max_group`` batches, whichever comes first.
* **Spawned, not forked**: a forked child inherits SQLite's per-process
  file state (the open-inode list with the parent's descriptors and locks);
  the parent holds its own connections to the same file (status reads, the
  pairs and whales stores), and a forked writer then failed with "disk I/O
  error" and "locking protocol". A fresh interpreter (``python -m
  venuefeed.sinks.sqlite_process FD ...``, only its socket inherited) costs
  about a second of CPU once per start, and shares nothing. It ignores SIGINT
  (the parent decides when storage stops: end of input) and exits when its
  input ends, after answering what it got.
* **A process that dies** fails its unanswered batches as
  :class:`SinkUnavailable` (the spool or the writer keeps them) and the next
  write starts a new one: nothing dies silently, nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import struct
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from venuefeed.models import Event, Market
from venuefeed.sinks.base import InvalidRecords, RawMessage, Record, SinkUnavailable, Watermark
from venuefeed.sinks.sqlite_commit import Committer, classify

__all__ = ["WriterProcess", "process_available"]

_HEADER = struct.Struct(">I")
_BATCH_HEADER = struct.Struct(">IQ")
_OK, _INVALID, _UNAVAILABLE, _OTHER = 0, 1, 2, 3


def process_available() -> bool:
    """Whether the writer process can be started here (POSIX spawn); elsewhere a thread writes."""
    return hasattr(os, "posix_spawn")


class _Batch(msgspec.Struct, array_like=True):
    events: list[Event]
    markets: list[Market]
    watermarks: list[Watermark]
    raw: list[RawMessage]

    def records(self) -> list[Record]:
        return [*self.events, *self.markets, *self.watermarks, *self.raw]


def _split(batch: Sequence[Record]) -> _Batch:
    events: list[Event] = []
    markets: list[Market] = []
    watermarks: list[Watermark] = []
    raw: list[RawMessage] = []
    for record in batch:
        if isinstance(record, Market):
            markets.append(record)
        elif isinstance(record, Watermark):
            watermarks.append(record)
        elif isinstance(record, RawMessage):
            raw.append(record)
        else:
            events.append(record)
    return _Batch(events, markets, watermarks, raw)


def _answer(seq: int, outcome: BaseException | None) -> list[Any]:
    if outcome is None:
        return [seq, _OK, ""]
    if isinstance(outcome, InvalidRecords):
        return [seq, _INVALID, outcome.reason]
    if isinstance(outcome, SinkUnavailable):
        return [seq, _UNAVAILABLE, str(outcome)]
    return [seq, _OTHER, f"{type(outcome).__name__}: {outcome}"]


def _failure(code: int, text: str) -> BaseException:
    if code == _INVALID:
        return InvalidRecords("sqlite", text)
    if code == _UNAVAILABLE:
        return SinkUnavailable(text)
    return RuntimeError(f"sqlite writer process: {text}")


# -- the child -----------------------------------------------------------------------------


class _Input:
    """Length-prefixed frames from the parent: blocking for the first, then what is there."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()
        self.ended = False

    def frames(self, block: bool) -> list[tuple[int, bytes]]:
        """Complete frames received so far; with ``block``, wait for one (or the end)."""
        while True:
            self._receive(block)
            out = self._complete()
            if out or not block or self.ended:
                return out

    def _receive(self, block: bool) -> None:
        self.sock.setblocking(block)
        try:
            while True:
                chunk = self.sock.recv(1 << 20)
                if not chunk:
                    self.ended = True
                    return
                self.buffer += chunk
                self.sock.setblocking(False)  # take what else is there, never wait for more
        except (BlockingIOError, InterruptedError):
            return

    def _complete(self) -> list[tuple[int, bytes]]:
        out = []
        buffer = self.buffer
        start = 0
        head = _BATCH_HEADER.size
        while len(buffer) - start >= head:
            size, seq = _BATCH_HEADER.unpack_from(buffer, start)
            if len(buffer) - start - head < size:
                break
            out.append((seq, bytes(buffer[start + head : start + head + size])))
            start += head + size
        del buffer[:start]
        return out


def _serve(sock: socket.socket, conn: Any, commit_seconds: float, max_group: int) -> None:
    """The child's loop: group, commit, answer; until the input ends and all is answered."""
    decode = msgspec.msgpack.Decoder(_Batch).decode
    encode = msgspec.msgpack.Encoder().encode
    committer = Committer(conn)
    source = _Input(sock)
    waiting: list[tuple[int, list[Record]]] = []
    while True:
        reply = bytearray()
        for seq, frame in source.frames(block=not waiting):
            try:
                waiting.append((seq, decode(frame).records()))
            except msgspec.MsgspecError as exc:
                body = encode(_answer(seq, InvalidRecords("sqlite", f"undecodable batch: {exc}")))
                reply += _HEADER.pack(len(body)) + body
        if waiting:
            group = waiting[:max_group]
            taken, outcomes = committer.commit(
                [records for _, records in group], time.monotonic() + commit_seconds
            )
            del waiting[:taken]
            for (seq, _), outcome in zip(group[:taken], outcomes, strict=True):
                body = encode(_answer(seq, outcome))
                reply += _HEADER.pack(len(body)) + body
        if reply:
            sock.setblocking(True)
            sock.sendall(reply)
        if not waiting and source.ended:
            return


def _child_main(sock: socket.socket, path: str, synchronous: str, busy_timeout: float,
                commit_seconds: float, max_group: int) -> int:  # fmt: skip
    from venuefeed.sinks.sqlite import connect

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn = connect(Path(path), synchronous, busy_timeout)  # type: ignore[arg-type]
    try:
        _serve(sock, conn, commit_seconds, max_group)
    finally:
        conn.close()
    return 0


def _spawn(sock: socket.socket, args: tuple[Any, ...]) -> int:
    """Start the writer in a fresh interpreter that inherits only ``sock``."""
    fd = sock.fileno()
    os.set_inheritable(fd, True)
    argv = [sys.executable, "-m", "venuefeed.sinks.sqlite_process", str(fd), *map(str, args)]
    return os.posix_spawn(sys.executable, argv, os.environ)


def main(argv: Sequence[str]) -> int:
    """The child's entry: ``FD PATH SYNCHRONOUS BUSY_TIMEOUT COMMIT_SECONDS MAX_GROUP``."""
    fd, path, synchronous, busy, commit, group = argv
    sock = socket.socket(fileno=int(fd))
    try:
        return _child_main(sock, path, synchronous, float(busy), float(commit), int(group))
    except BaseException as exc:  # the parent reads the exit code; say why here
        with contextlib.suppress(Exception):
            os.write(2, f"venuefeed sqlite writer process: {type(exc).__name__}: {exc}\n".encode())
        return 1


# -- the parent ------------------------------------------------------------------------------


class WriterProcess:
    """The parent's handle: encodes batches, sends them, resolves each on its answer."""

    def __init__(self, path: Path, synchronous: str, busy_timeout: float,
                 commit_seconds: float = 0.005, max_group: int = 256) -> None:  # fmt: skip
        self._args = (str(path), synchronous, busy_timeout, commit_seconds, max_group)
        self._pid: int | None = None
        self.exit_code: int | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._waiting: dict[int, asyncio.Future[None]] = {}
        self._seq = 0
        self._encode = msgspec.msgpack.Encoder().encode
        self.starts = 0

    @property
    def alive(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    async def start(self) -> None:
        parent_sock, child_sock = socket.socketpair()
        self._pid = _spawn(child_sock, self._args)
        child_sock.close()
        reader, self._writer = await asyncio.open_unix_connection(sock=parent_sock)
        self._reader_task = asyncio.create_task(self._answers(reader), name="sqlite-answers")
        self.starts += 1

    async def write(self, batch: Sequence[Record]) -> None:
        if not self.alive:
            await self._reap()
            await self.start()
        writer = self._writer
        assert writer is not None
        self._seq += 1
        seq = self._seq
        try:
            body = self._encode(_split(batch))
        except (TypeError, ValueError, OverflowError) as exc:  # a record nobody can store
            raise classify(exc) from exc
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[seq] = future
        try:
            writer.write(_BATCH_HEADER.pack(len(body), seq) + body)
            await writer.drain()
        except (ConnectionError, OSError) as exc:
            self._waiting.pop(seq, None)
            raise SinkUnavailable(f"sqlite: writer process gone ({exc})") from exc
        await future

    async def _answers(self, reader: asyncio.StreamReader) -> None:
        decode = msgspec.msgpack.Decoder(tuple[int, int, str]).decode
        try:
            while True:
                header = await reader.readexactly(4)
                (size,) = _HEADER.unpack(header)
                seq, code, text = decode(await reader.readexactly(size))
                future = self._waiting.pop(seq, None)
                if future is None or future.done():
                    continue
                if code == _OK:
                    future.set_result(None)
                else:
                    future.set_exception(_failure(code, text))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._fail_waiting()

    def _fail_waiting(self) -> None:
        code = self._poll_exit()
        waiting, self._waiting = self._waiting, {}
        for future in waiting.values():
            if not future.done():
                future.set_exception(
                    SinkUnavailable(f"sqlite: writer process exited (code {code}) before commit")
                )
        if self._writer is not None:
            self._writer.close()

    async def _reap(self) -> None:
        """Clean up after a process that went away (its batches were failed already)."""
        if self._reader_task is not None:
            await asyncio.gather(self._reader_task, return_exceptions=True)
            self._reader_task = None
        await self._wait_exit(5)

    def _poll_exit(self) -> int | None:
        if self._pid is None:
            return self.exit_code
        with contextlib.suppress(ChildProcessError):
            pid, status = os.waitpid(self._pid, os.WNOHANG)
            if pid == 0:
                return None
            self.exit_code = os.waitstatus_to_exitcode(status)
        self._pid = None
        return self.exit_code

    async def _wait_exit(self, patience: float) -> None:
        """Reap the process; one that does not end within ``patience`` seconds is killed."""
        deadline = time.monotonic() + patience
        while self._pid is not None and self._poll_exit() is None:
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self._pid, signal.SIGKILL)
                deadline = float("inf")
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        """End its input: it commits and answers what it got, then exits."""
        writer = self._writer
        if writer is not None and not writer.is_closing():
            with contextlib.suppress(ConnectionError, OSError):
                writer.write_eof()
        if self._reader_task is not None:
            await asyncio.gather(self._reader_task, return_exceptions=True)
            self._reader_task = None
        if writer is not None:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
        self._writer = None
        await self._wait_exit(10)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
