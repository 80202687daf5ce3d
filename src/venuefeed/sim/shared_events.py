"""Events listed on both simulated prediction markets, worded the way each venue words them.

The real reason to record Kalshi and Polymarket side by side is that many
questions trade on both (seed 000's arbitrage system): the same Fed decision,
the same Bitcoin close, the same temperature record -- under different
tickers, titles and rules text, sometimes asked the other way round ("above
3 %" on one venue, "at or below 3 %" on the other, so one venue's YES is the
other's NO). Both simulators read this one list, so ``venuefeed pairs
suggest`` has true pairs to find among look-alike distractors, and the demo
shows live cross-venue quotes.

Prices are the venues' own grids: ``kalshi_fair`` in thousandths of a dollar
(YES), ``polymarket_fair`` in cents for the Polymarket question's YES. One
event is deliberately mispriced across the two venues so that a fee-adjusted
cross exists to be seen (and alerted on).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DAY", "SHARED_EVENTS", "SharedEvent", "shared_close_ts"]

DAY = 86_400


@dataclass(frozen=True, slots=True)
class SharedEvent:
    """One question, as each venue lists it."""

    key: str
    close_days: float
    """Closes this many days after the start of the simulator's UTC day."""
    kalshi_title: str
    kalshi_rules: str
    polymarket_question: str
    polymarket_rules: str
    kalshi_fair: int
    polymarket_fair: int
    inverted: bool = False
    """The Polymarket question asks the opposite: its YES is Kalshi's NO."""


def shared_close_ts(now_s: float, event: SharedEvent) -> int:
    """The event's close, in Unix seconds: the same on both simulators started the same day."""
    return int(now_s) // DAY * DAY + int(event.close_days * DAY)


SHARED_EVENTS: tuple[SharedEvent, ...] = (
    SharedEvent(
        key="fed-cut",
        close_days=2.5,
        kalshi_title="Will the Federal Reserve cut interest rates at its next meeting?",
        kalshi_rules=(
            "If the Federal Reserve lowers the target range for the federal funds rate at its "
            "next scheduled FOMC meeting, then the market resolves to Yes."
        ),
        polymarket_question="Fed cuts interest rates at the next FOMC meeting?",
        polymarket_rules=(
            'This market will resolve to "Yes" if the Federal Reserve announces a cut to the '
            "federal funds target range at its next scheduled FOMC meeting. Otherwise, this "
            'market will resolve to "No".'
        ),
        kalshi_fair=620,
        polymarket_fair=63,
    ),
    SharedEvent(
        key="btc-120k",
        close_days=3.5,
        kalshi_title="Will Bitcoin be above $120,000 at the end of the week?",
        kalshi_rules=(
            "If the CF Benchmarks Bitcoin Real Time Index is above $120,000 at the close of the "
            "week, then the market resolves to Yes."
        ),
        polymarket_question="Bitcoin above $120,000 at the end of the week?",
        polymarket_rules=(
            'This market will resolve to "Yes" if the price of Bitcoin is above $120,000 at the '
            'close of the week, per the Binance BTC/USDT 1 minute candle. Otherwise "No".'
        ),
        kalshi_fair=450,
        polymarket_fair=58,
    ),
    SharedEvent(
        key="cpi-3pct",
        close_days=4.5,
        kalshi_title="Will CPI inflation be above 3.0% in the next report?",
        kalshi_rules=(
            "If the year-over-year CPI inflation rate in the next Bureau of Labor Statistics "
            "report is above 3.0%, then the market resolves to Yes."
        ),
        polymarket_question="Will CPI inflation be 3.0% or below in the next report?",
        polymarket_rules=(
            'This market will resolve to "Yes" if the year-over-year CPI inflation rate in the '
            'next Bureau of Labor Statistics report is 3.0% or below. Otherwise "No".'
        ),
        kalshi_fair=300,
        polymarket_fair=70,
        inverted=True,
    ),
    SharedEvent(
        key="nyc-heat",
        close_days=1.5,
        kalshi_title="Will the high temperature in New York City be above 90°F tomorrow?",
        kalshi_rules=(
            "If the maximum temperature recorded in Central Park, New York City, tomorrow is "
            "above 90°F according to the National Weather Service, then the market resolves "
            "to Yes."
        ),
        polymarket_question="NYC high temperature above 90°F tomorrow?",
        polymarket_rules=(
            'This market will resolve to "Yes" if the highest temperature recorded in Central '
            "Park, New York City, tomorrow is above 90°F per the National Weather Service. "
            'Otherwise "No".'
        ),
        kalshi_fair=250,
        polymarket_fair=24,
    ),
    SharedEvent(
        key="arsenal-chelsea",
        close_days=5.5,
        kalshi_title="Will Arsenal beat Chelsea in their next Premier League match?",
        kalshi_rules=(
            "If Arsenal wins its next Premier League match against Chelsea in regulation time, "
            "then the market resolves to Yes."
        ),
        polymarket_question="Arsenal vs. Chelsea: will Arsenal win?",
        polymarket_rules=(
            'This market will resolve to "Yes" if Arsenal wins its next Premier League match '
            'against Chelsea in regulation time. Otherwise, this market resolves to "No".'
        ),
        kalshi_fair=480,
        polymarket_fair=47,
    ),
)
"""The cross-listed events; ``btc-120k`` is the mispriced one."""
