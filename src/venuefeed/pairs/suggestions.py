"""Suggest pairs from the stored markets: one function for the CLI and the API."""

from __future__ import annotations

from venuefeed.config import PairsSettings
from venuefeed.pairs.match import Candidate, suggest
from venuefeed.pairs.store import PairStore

__all__ = ["NoMarkets", "suggest_from_store"]


class NoMarkets(Exception):
    """A venue has no stored markets to match: discovery has not run for it."""


def suggest_from_store(
    store: PairStore, settings: PairsSettings, *, limit: int = 50, min_score: float | None = None
) -> list[Candidate]:
    """Score the stored open Kalshi and Polymarket markets and store the best candidates."""
    kalshi, polymarket = store.markets("kalshi"), store.markets("polymarket")
    for venue, found in (("kalshi", kalshi), ("polymarket", polymarket)):
        if not found:
            raise NoMarkets(
                f"no open {venue} markets stored: run `venuefeed discover` (with {venue} "
                "enabled) first"
            )
    candidates = suggest(
        kalshi, polymarket, limit=limit,
        min_score=settings.min_score if min_score is None else min_score,
        max_close_gap_days=settings.max_close_gap_days,
    )  # fmt: skip
    store.add_suggestions(candidates)
    return candidates
