"""Which Kalshi market and which Polymarket market ask the same question.

A suggestion, never a decision: venues word the same event differently
("Will the Federal Reserve cut interest rates at its next meeting?" against
"Fed cuts interest rates at the next FOMC meeting?"), and two markets about
the same thing may still settle on different sources or deadlines -- only a
person reading both rules can confirm a pair. What the machine can do is put
the likely pairs first. A candidate is scored from:

* the titles and the rules text, by rapidfuzz's token-set similarity (word
  order and filler words do not matter, numbers and names do);
* the close times: pairs closing days apart are penalised, and pairs further
  apart than ``max_close_gap_days`` are not candidates at all;
* the outcome structure: both must be binary (a Kalshi market is a YES/NO
  contract; the Polymarket market must have exactly two outcomes).

The outcome mapping comes from the wording: when exactly one of the two
questions is phrased the other way round ("above" against "or below"), the
Polymarket YES is the Kalshi NO (``yes_no``). The person confirming can
override it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from rapidfuzz import fuzz

from venuefeed.models import Market

__all__ = ["Candidate", "Mapping", "mapping_of", "pair_id", "score", "suggest"]

Mapping = Literal["yes_yes", "yes_no"]

_WORDS = re.compile(r"[a-z0-9$%.,°]+")
_LOWER_SIDE = re.compile(
    r"\b(or below|or less|or fewer|at most|below|under|less than|fewer than|not|no more than)\b"
)
_FILLER = frozenset({"will", "the", "a", "an", "be", "at", "of", "in", "on", "its", "this", "?"})
NS = 1_000_000_000
DAY_NS = 86_400 * NS


@dataclass(frozen=True, slots=True)
class Candidate:
    """A Kalshi/Polymarket pair worth a person's look, and why."""

    kalshi: Market
    polymarket: Market
    mapping: Mapping
    score: float
    """0..100: the weighted evidence below."""
    title_score: float
    rules_score: float
    close_gap_seconds: int | None

    @property
    def pair_id(self) -> str:
        return pair_id(self.kalshi.market_id, self.polymarket.market_id)


def pair_id(kalshi_market: str, polymarket_market: str) -> str:
    """The pair's identifier: both venues' market ids, readable in a URL and a log line."""
    return f"{kalshi_market}~{polymarket_market}"


def _text(text: str) -> str:
    words = _WORDS.findall(text.lower().replace("’", "'"))
    return " ".join(w.strip(".,") for w in words if w not in _FILLER)


def mapping_of(kalshi_title: str, polymarket_title: str) -> Mapping:
    """``yes_no`` when exactly one of the questions asks for the lower side."""
    k = bool(_LOWER_SIDE.search(kalshi_title.lower()))
    p = bool(_LOWER_SIDE.search(polymarket_title.lower()))
    return "yes_no" if k != p else "yes_yes"


def _binary(market: Market) -> bool:
    return len(market.outcomes) == 2 if market.venue == "polymarket" else len(market.outcomes) <= 2


def score(
    kalshi: Market, polymarket: Market, *, max_close_gap_days: float = 3.0
) -> Candidate | None:
    """The evidence that the two markets are the same question, or ``None`` if they cannot be."""
    if not (_binary(kalshi) and _binary(polymarket)):
        return None
    gap: int | None = None
    closeness = 0.5  # unknown close time on either side: neither evidence for nor against
    if kalshi.close_time and polymarket.close_time:
        gap = abs(kalshi.close_time - polymarket.close_time) // NS
        if gap * NS > max_close_gap_days * DAY_NS:
            return None
        closeness = 1.0 - gap * NS / (max_close_gap_days * DAY_NS)
    title = fuzz.token_set_ratio(_text(kalshi.title), _text(polymarket.title))
    rules = (
        fuzz.token_set_ratio(_text(kalshi.rules), _text(polymarket.rules))
        if kalshi.rules and polymarket.rules
        else title
    )
    total = 0.55 * title + 0.3 * rules + 15.0 * closeness
    return Candidate(
        kalshi=kalshi, polymarket=polymarket, mapping=mapping_of(kalshi.title, polymarket.title),
        score=round(total, 2), title_score=round(title, 2), rules_score=round(rules, 2),
        close_gap_seconds=gap,
    )  # fmt: skip


def suggest(
    kalshi: Iterable[Market],
    polymarket: Iterable[Market],
    *,
    min_score: float = 70.0,
    max_close_gap_days: float = 3.0,
    limit: int = 50,
) -> list[Candidate]:
    """The best-scoring candidates, best first; each market in at most one of them.

    Greedy by score: once a market is in a better candidate, its weaker
    look-alikes are not suggested (one question has one counterpart).
    """
    poly = list(polymarket)
    found = [
        c
        for k in kalshi
        for p in poly
        if (c := score(k, p, max_close_gap_days=max_close_gap_days)) is not None
        and c.score >= min_score
    ]
    found.sort(key=lambda c: (-c.score, c.pair_id))
    taken: set[str] = set()
    out: list[Candidate] = []
    for c in found:
        k, p = ("k:" + c.kalshi.market_id), ("p:" + c.polymarket.market_id)
        if k in taken or p in taken:
            continue
        taken.update((k, p))
        out.append(c)
        if len(out) >= limit:
            break
    return out
