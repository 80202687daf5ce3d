"""/api/v1/pairs: suggest, reject, confirm and list over HTTP, behind the token."""

from __future__ import annotations

import httpx

from tests.service.helpers import settings_for
from venuefeed.api.app import create_app
from venuefeed.service import Service

from .conftest import Venues


async def test_pairs_over_http(venues: Venues) -> None:
    settings = settings_for(
        {"kalshi": venues.kalshi, "polymarket": venues.polymarket}, venues.db,
        {"api.token": "s3cret"},
    )  # fmt: skip
    app = create_app(Service(settings), settings.api)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as api:
        assert (await api.post("/api/v1/pairs/suggest")).status_code == 401
        auth = {"Authorization": "Bearer s3cret"}
        found = (await api.post("/api/v1/pairs/suggest", headers=auth)).json()
        assert {c["pair_id"]: c["mapping"] for c in found["candidates"]} == venues.true_pairs()
        first, second, *_ = sorted(venues.true_pairs())
        rejected = await api.post(f"/api/v1/pairs/{first}/reject", headers=auth)
        assert rejected.json() == {"pair_id": first, "status": "rejected"}
        confirmed = await api.post(
            f"/api/v1/pairs/{second}/confirm", params={"mapping": "yes_no"}, headers=auth
        )
        assert confirmed.status_code == 200
        unknown = await api.post("/api/v1/pairs/NOPE~0x1/confirm", headers=auth)
        assert unknown.status_code == 404 and "suggest first" in unknown.json()["detail"]
        listed = (await api.get("/api/v1/pairs", params={"status": "confirmed"})).json()
        assert [(p["pair_id"], p["mapping"]) for p in listed["pairs"]] == [(second, "yes_no")]
        assert (await api.get("/api/v1/pairs", params={"status": "rejected"})).json()["count"] == 1
