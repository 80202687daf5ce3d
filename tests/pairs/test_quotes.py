"""Confirmed pairs are quoted end to end: simulators -> books -> pair_quotes, bus, gauge, API.

The simulators' books stand still here, so every stored quote can be checked
against the simulators' own books with the venues' published fee formulas,
worked out independently below.
"""

from __future__ import annotations

import sqlite3
import uuid
from decimal import ROUND_CEILING, Decimal
from pathlib import Path

import httpx
import msgspec
import nats
import yaml
from prometheus_client import REGISTRY

from tests.service.helpers import settings_for, wait_for
from tests.sinks.helpers import require_nats
from venuefeed.api.app import create_app
from venuefeed.config import PairsSettings
from venuefeed.models import PairQuote, event_decoder
from venuefeed.pairs.store import PairStore
from venuefeed.pairs.suggestions import suggest_from_store
from venuefeed.service import Service
from venuefeed.sinks.sqlite import open_reader

from .conftest import Venues

CONTRACTS = 100
DEPLOY = Path(__file__).parents[2] / "deploy"


def kalshi_fee(p: Decimal) -> Decimal:
    """docs.kalshi.com fee schedule: ceil to the cent of 0.07 x C x P x (1-P), per contract."""
    cents = (Decimal("7") * CONTRACTS * p * (1 - p)).to_integral_value(ROUND_CEILING)
    return cents / 100 / CONTRACTS


def expected(venues: Venues, pair: dict[str, str]) -> tuple[Decimal, Decimal]:
    """Edges (buy on Kalshi, buy on Polymarket) from the simulators' books."""
    k_bids, k_asks = venues.kalshi.canonical_book(pair["kalshi_market"])
    p_bids, p_asks = venues.polymarket.final_books()[pair["polymarket_token"]]
    k_bid, k_ask = Decimal(k_bids[0][0]), Decimal(k_asks[0][0])
    p_bid, p_ask = Decimal(p_bids[0][0]), Decimal(p_asks[0][0])
    if pair["mapping"] == "yes_no":  # Polymarket's YES is Kalshi's NO
        p_bid, p_ask = 1 - p_ask, 1 - p_bid
    # Polymarket's fee rate is 0 by default (fee-free markets): only Kalshi's leg pays.
    return p_bid - k_ask - kalshi_fee(k_ask), k_bid - p_ask - kalshi_fee(k_bid)


async def test_confirmed_pairs_are_quoted_stored_published_and_gauged(venues: Venues) -> None:
    nats_url = require_nats()
    token = uuid.uuid4().hex[:10]
    stream, prefix = f"VFTEST_{token}", f"vftest{token}"
    store = PairStore(venues.db)
    suggest_from_store(store, PairsSettings())
    settings = settings_for(
        {"kalshi": venues.kalshi, "polymarket": venues.polymarket}, venues.db,
        {"pairs.quote_interval_seconds": 0.1, "pairs.refresh_seconds": 0.2,
         "storage.sinks": ["sqlite", "nats"], "bus.nats_url": nats_url,
         "bus.nats_subject_prefix": prefix, "bus.nats_stream": stream},
    )  # fmt: skip
    service = Service(settings)
    await service.start()
    transport = httpx.ASGITransport(app=create_app(service, settings.api))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as api:
            pairs = (await api.get("/api/v1/pairs", params={"status": "suggested"})).json()
            for p in pairs["pairs"]:
                answer = await api.post(f"/api/v1/pairs/{p['pair_id']}/confirm")
                assert answer.status_code == 200, answer.text
            confirmed = {p["pair_id"]: p for p in store.all("confirmed")}
            assert len(confirmed) == 5
            await wait_for(lambda: len(service.pairs.last) == 5, within=30)
            view = (await api.get("/api/v1/pairs/quotes")).json()
        await wait_for(lambda: _stored(venues) >= 5, within=10)
    finally:
        await service.stop()
    assert view["confirmed"] == 5 and len(view["quotes"]) == 5
    rows = open_reader(venues.db).execute(
        "SELECT instrument, edge_buy_kalshi, edge_buy_polymarket, best_edge FROM pair_quotes"
    )
    stored = {r[0]: r[1:] for r in rows.fetchall()}
    assert set(stored) == set(confirmed)
    crossed = []
    for pair_id, (buy_k, buy_p, best) in stored.items():
        want_k, want_p = expected(venues, confirmed[pair_id])
        assert (Decimal(buy_k), Decimal(buy_p)) == (want_k, want_p), pair_id
        assert Decimal(best) == max(want_k, want_p)
        if Decimal(best) > 0:
            crossed.append(pair_id)
    # The one event the simulators misprice across venues is the one cross.
    btc = next(p for p in confirmed if "btc" in confirmed[p]["polymarket_title"].lower()
               or "bitcoin" in confirmed[p]["polymarket_title"].lower())  # fmt: skip
    assert crossed == [btc]
    bests = [Decimal(best) for _k, _p, best in stored.values()]
    assert REGISTRY.get_sample_value("arb_best_edge") == float(max(bests))
    assert REGISTRY.get_sample_value("arb_crossed_pairs") == 1
    # The alert rule fires for that pair and no other.
    assert max(bests) > alert_threshold()
    assert sorted(bests)[-2] <= alert_threshold()  # the others would not fire it
    # Published on the bus topic arb_spreads, one message per stored quote.
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        msgs = [await js.get_msg(stream, s)
                for s in range(info.state.first_seq, info.state.last_seq + 1)]  # fmt: skip
        await js.delete_stream(stream)
    finally:
        await nc.close()
    published = [m for m in msgs if m.subject == f"{prefix}.arb_spreads.arb"]
    quotes = [event_decoder.decode(m.data) for m in published]
    assert {q.instrument for q in quotes if isinstance(q, PairQuote)} == set(confirmed)
    assert len(published) == len(stored)
    assert msgspec.json.decode(published[0].data)["type"] == "pair_quote"


def alert_threshold() -> Decimal:
    """The edge above which deploy/'s alert rule fires."""
    rules = yaml.safe_load((DEPLOY / "prometheus-alerts.yml").read_text())
    rule = next(r for g in rules["groups"] for r in g["rules"]
                if r["alert"] == "VenuefeedCrossVenueArbitrage")  # fmt: skip
    metric, _, threshold = rule["expr"].rpartition(" > ")
    assert metric == "arb_best_edge"
    return Decimal(threshold)


def _stored(venues: Venues) -> int:
    try:
        return int(open_reader(venues.db).execute("SELECT count(*) FROM pair_quotes").fetchone()[0])
    except sqlite3.OperationalError:  # not migrated yet
        return 0
