"""venuefeed as a library: markets, a book and a live stream, against the simulator.

Run it with ``.venv/bin/python examples/library.py``. Against the real venue,
drop the simulator and the ``urls`` override: the same calls reach Polymarket.
"""

from __future__ import annotations

import asyncio

import venuefeed
from venuefeed.models import BookDelta, Trade
from venuefeed.venues.polymarket import Simulator


async def main() -> None:
    sim = Simulator(seed=3, markets=6, events_per_second=50)
    await sim.start()
    try:
        async with venuefeed.open(**{"venues.polymarket.urls": sim.urls()}) as feed:
            markets = await feed.markets("polymarket", max_resolution_days=0, limit=3)
            for market in markets:
                print(f"{market.title}  [{', '.join(o.name for o in market.outcomes)}]")

            token = markets[0].outcomes[0].token_id
            book = await feed.book("polymarket", token, depth=3)
            print("best bids:", [(lv.price, lv.size) for lv in book.bids])
            print("best asks:", [(lv.price, lv.size) for lv in book.asks])

            seen = 0
            async for event in feed.stream("polymarket", markets=[markets[0].market_id]):
                if isinstance(event, Trade):
                    print(f"trade {event.side} {event.size} @ {event.price}")
                elif isinstance(event, BookDelta):
                    print(f"book change: {len(event.bids)} bid / {len(event.asks)} ask levels")
                seen += 1
                if seen >= 10:
                    break
    finally:
        await sim.stop()


if __name__ == "__main__":
    asyncio.run(main())
