"""What recording costs per frame: on the event loop, in the writer thread, on disk.

Run: ``PYTHONPATH=src python bench/bench_recorder.py``. Prints figures, asserts
nothing. Frames are Polymarket ``price_change`` text frames (about 420 bytes)
with varying prices and sizes, the venue's commonest frame.

* **loop**: the tap call the session's read loop makes per frame
  (``VenueRecorder.on_frame``), timed on the calling thread while the writer
  thread runs and flushes concurrently -- the cost the hot path pays.
* **session**: process CPU per frame of a real ``WsSession`` reading from a
  local WebSocket server, with and without the tap (loop + writer thread,
  everything the process spends); the difference is recording's whole cost.
* **writer**: CPU per frame of the writer's encode + zstd + write + fsync.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import msgspec
from aiohttp import web

from venuefeed.lake.recorder import Recorder
from venuefeed.transport.websocket import WsPolicy, WsProtocolBase, WsSession

MARKET = "0xdd22472e552920b8438158ea7238bfadfa4f736aa4cee91a6b86c39ead110917"
A = "71321045679252212594626385532706912750332728571942532289631379312455583992563"


def frame(i: int) -> str:
    price = f"0.{40 + i % 20:02d}"
    return msgspec.json.encode({
        "event_type": "price_change", "market": MARKET, "timestamp": str(1_750_000_000_000 + i),
        "price_changes": [{"asset_id": A, "price": price, "size": str(100 + i % 97),
                           "side": "BUY" if i % 2 else "SELL", "hash": f"{i:040x}",
                           "best_bid": "0.49", "best_ask": "0.51"}],
    }).decode()  # fmt: skip


def loop_cost(frames: list[str], root: Path) -> float:
    recorder = Recorder(root, flush_interval=0.05)
    recorder.start()
    tap = recorder.venue("polymarket")
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter_ns()
        for i, data in enumerate(frames):
            tap.on_frame(data, 1_780_000_000_000_000_000 + i, 0)
        best = min(best, (time.perf_counter_ns() - start) / len(frames))
    recorder.close()
    return best


def writer_cost(frames: list[str], root: Path) -> tuple[float, float]:
    recorder = Recorder(root)  # not started: the flush runs here, timed as CPU
    tap = recorder.venue("polymarket")
    for i, data in enumerate(frames):
        tap.on_frame(data, 1_780_000_000_000_000_000 + i, 0)
    start = time.process_time_ns()
    recorder._flush()
    cpu = (time.process_time_ns() - start) / len(frames)
    ratio = recorder.stats.raw_bytes / max(1, recorder.stats.compressed_bytes)
    return cpu, ratio


class _Proto(WsProtocolBase):
    def __init__(self, url: str) -> None:
        self._url = url

    def url(self) -> str:
        return self._url

    def subscribe(self, subs: object, initial: bool) -> list[str]:
        return ["go"]

    def unsubscribe(self, subs: object) -> list[str]:
        return []


async def session_cost(frames: list[str], root: Path | None) -> float:
    async def blast(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.receive()  # the subscribe
        for data in frames:
            await ws.send_str(data)
        await ws.receive()
        return ws

    app = web.Application()
    app.router.add_get("/ws", blast)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    recorder = Recorder(root, flush_interval=0.2) if root is not None else None
    policy = WsPolicy(protocol_ping_interval=None, queue_size=len(frames) + 10)
    session = WsSession("polymarket", _Proto(f"ws://127.0.0.1:{port}/ws"), policy)
    if recorder is not None:
        recorder.start()
        session.tap = recorder.venue("polymarket")
    start = time.process_time_ns()
    await session.subscribe(["x"])
    await session.start()
    got = 0
    async for _ in session:
        got += 1
        if got == len(frames):
            break
    if recorder is not None:
        await asyncio.to_thread(recorder.close)
    cpu = (time.process_time_ns() - start) / len(frames)
    await session.stop()
    await runner.cleanup()
    return cpu


def main() -> None:
    frames = [frame(i) for i in range(100_000)]
    size = sum(len(f) for f in frames) / len(frames)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        loop_ns = loop_cost(frames, root / "loop")
        writer_ns, ratio = writer_cost(frames, root / "writer")
        print(f"frames: {len(frames)} Polymarket price_change text frames, {size:.0f} bytes each")
        print(f"loop    tap per frame (on the event loop)  {loop_ns:8.0f} ns")
        print(f"writer  encode+zstd+write per frame       {writer_ns:8.0f} ns CPU "
              f"(compression {ratio:.1f}x)")  # fmt: skip
        off = [asyncio.run(session_cost(frames[:30_000], None)) for _ in range(3)]
        on = [asyncio.run(session_cost(frames[:30_000], root / f"s{i}")) for i in range(3)]
        print(f"session process CPU per frame, no tap      {min(off) / 1000:8.2f} µs")
        print(f"session process CPU per frame, recording   {min(on) / 1000:8.2f} µs "
              f"(+{(min(on) - min(off)) / 1000:.2f} µs, loop and writer together)")  # fmt: skip


if __name__ == "__main__":
    main()
