"""Polygon WebSocket parsing cost: microseconds per trade-array frame (prints, never asserts).

Run: ``PYTHONPATH=src python bench/bench_polygon_parse.py``. Frames are built by
the simulator's tape, so they have the venue's shape and realistic values.
For scale, it also times the floor -- the typed msgspec decode of the same
bytes with no canonical events built -- and the parse of a mixed T+Q frame.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec

from venuefeed.venues.polygon.parse import parse_frame
from venuefeed.venues.polygon.protocol import WsEvent
from venuefeed.venues.polygon.sim import Tape, ws_quote, ws_trade
from venuefeed.venues.rejects import Rejects

_encoder = msgspec.json.Encoder(decimal_format="number")
_floor = msgspec.json.Decoder(list[WsEvent])


def frames(events_per_frame: int, with_quotes: bool) -> list[bytes]:
    tape = Tape(seed=1, tickers=("AAPL",), events_per_second=200.0)
    events = []
    for bucket in range(1_700_000_000, 1_700_000_050):
        events += [ws_trade("AAPL", r) for r in tape.trades_in("AAPL", bucket)]
        if with_quotes:
            events += [ws_quote("AAPL", r) for r in tape.quotes_in("AAPL", bucket)]
    return [
        _encoder.encode(events[i : i + events_per_frame])
        for i in range(0, len(events) - events_per_frame, events_per_frame)
    ]


def per_call_us(fn: Callable[[bytes], object], data: list[bytes], repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for frame in data:
            fn(frame)
        best = min(best, (time.perf_counter() - start) / len(data))
    return best * 1e6


def main() -> None:
    recv = 1_700_000_051 * 1_000_000_000  # just after the tape's last second
    rejects = Rejects("polygon")
    print(f"{'frame':<28}{'bytes':>8}{'parse µs':>11}{'decode-only µs':>17}{'µs/event':>11}")
    for size, quotes in ((1, False), (5, False), (20, False), (20, True)):
        data = frames(size, quotes)
        parse = per_call_us(lambda b: parse_frame(b, recv, rejects), data)
        floor = per_call_us(_floor.decode, data)
        label = f"{size} {'T+Q' if quotes else 'T'} event(s)"
        avg = sum(map(len, data)) // len(data)
        print(f"{label:<28}{avg:>8}{parse:>11.2f}{floor:>17.2f}{parse / size:>11.2f}")
    print(f"frames refused: {rejects.total} (must be 0: every event was parsed)")


if __name__ == "__main__":
    main()
