"""The Polygon feed, sans-IO: frames in, events out, the venue's refusals as the feed's state."""

from __future__ import annotations

import json
import time

from prometheus_client import REGISTRY

from venuefeed.models import Trade
from venuefeed.transport import Frame
from venuefeed.venues.feed import Output
from venuefeed.venues.polygon.feed import PolygonFeed


def frame(*events: dict[str, object]) -> Frame:
    return Frame(json.dumps(list(events)), time.time_ns(), 0)


def status(kind: str, message: str = "") -> dict[str, object]:
    return {"ev": "status", "status": kind, "message": message}


def refusals(kind: str) -> float:
    sample = REGISTRY.get_sample_value(
        "market_data_ingestion_errors_total", {"venue": "polygon", "kind": f"ws_{kind}"}
    )
    return sample or 0.0


def test_channels_become_prefixed_subscriptions_and_back() -> None:
    feed = PolygonFeed(("trades", "candles", "books"))
    subs = feed.subscriptions(["AAPL", "MSFT"])
    assert subs == ["T.AAPL", "AM.AAPL", "T.MSFT", "AM.MSFT"]
    assert feed.instruments(subs) == ["AAPL", "MSFT"]


def test_auth_failure_is_the_feed_state_until_auth_succeeds() -> None:
    feed = PolygonFeed(("trades",))
    before = refusals("auth_failed")
    out = feed.on_frames([frame(status("connected")), frame(status("auth_failed", "bad key"))])
    assert out == Output([], [])
    assert (feed.state(), feed.error) == ("auth_failed", "auth_failed: bad key")
    assert refusals("auth_failed") == before + 1
    trade = {"ev": "T", "sym": "AAPL", "i": "5096", "x": 10, "p": 161.87, "s": 300,
             "t": time.time_ns() // 1_000_000, "q": 1, "z": 3}  # fmt: skip
    out = feed.on_frames([frame(status("auth_success", "authenticated"), trade)])
    assert (feed.state(), feed.error) == (None, None)
    [event] = out.events
    assert isinstance(event, Trade) and (event.trade_id, event.price) == ("10::5096", "161.87")


def test_a_frame_that_is_not_polygon_is_counted_not_raised() -> None:
    feed = PolygonFeed(("trades",))
    assert feed.on_frames([Frame(b"\xff{not json", 0, 0)]) == Output([], [])
    assert feed.rejects.total == 1 and feed.state() is None
