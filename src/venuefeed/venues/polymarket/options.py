"""``venues.polymarket.options``: what an operator may tune, checked once at start-up.

Every key here is read by the code (the feed, the channel protocol, discovery
or the whale watcher); a key that is not here -- ``audit_interval`` where
``audit_interval_seconds`` was meant -- stops start-up with its name, because
a silently ignored setting is worse than none.
"""

from __future__ import annotations

from venuefeed.venues.options import VenueOptions

__all__ = ["Options"]


class Options(VenueOptions, frozen=True):
    """Polymarket adapter options, each with the default it runs with."""

    max_assets_per_connection: int = 200
    """Asset ids per WebSocket connection; the transport opens more beyond it. 200 is what
    NautilusTrader runs in production; over the venue's real cap assets go silent."""
    ping_interval_seconds: float = 10.0
    """Seconds between text ``PING`` heartbeats (the venue expects about 10 s)."""
    audit_interval_seconds: float = 60.0
    """Seconds between audit rounds of live books against REST snapshots."""
    audit_batch: int = 20
    """Books compared with REST per audit round (round-robin over the live ones)."""
    hash_recheck_interval_seconds: float = 60.0
    """At most one re-fetch per token per this many seconds after a REST hash mismatch."""
    resync_retry_interval_seconds: float = 2.0
    """Seconds before a failed REST book resync is asked again."""
    discovery_debounce_seconds: float = 0.5
    """Unknown asset ids seen within this many seconds share one Gamma look-up."""
    gamma_keyset: bool = True
    """List markets with Gamma's keyset endpoints first (the legacy offset lists remain
    the fallback); false goes straight to the legacy lists."""
    whale_wallets: tuple[str, ...] = ()
    """Wallet addresses whose trades the whale watcher follows."""

    def problems(self) -> dict[str, str]:
        bad: dict[str, str] = {}
        for key in (
            "ping_interval_seconds",
            "audit_interval_seconds",
            "hash_recheck_interval_seconds",
            "resync_retry_interval_seconds",
            "discovery_debounce_seconds",
        ):
            if not getattr(self, key) > 0:
                bad[key] = "must be a positive number of seconds"
        for key in ("max_assets_per_connection", "audit_batch"):
            if getattr(self, key) < 1:
                bad[key] = "must be at least 1"
        return bad
