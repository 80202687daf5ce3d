"""``venues.polymarket.options``: typed, and a key nothing reads stops start-up with its name."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from venuefeed.config import ConfigError, Settings, VenueSettings
from venuefeed.preflight import check_venue_options
from venuefeed.venues.options import OptionsError
from venuefeed.venues.polymarket import Adapter, Options


def test_values_are_typed_and_reach_the_feed() -> None:
    raw = {"audit_interval_seconds": "5", "whale_wallets": ["0xA"], "gamma_keyset": False}
    adapter = Adapter(VenueSettings(options=raw), Settings())
    assert adapter.options == Options(
        audit_interval_seconds=5.0, whale_wallets=("0xA",), gamma_keyset=False
    )
    stream = adapter.open_stream()
    assert stream.feed.timer_interval == 0.5  # the debounce: the shortest of the feed's clocks


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ({"audit_interval": 5}, "venues.polymarket.options.audit_interval: unknown option"),
        ({"audit_batch": 0}, "venues.polymarket.options.audit_batch: must be at least 1"),
        ({"ping_interval_seconds": "nan"}, "venues.polymarket.options.ping_interval_seconds"),
        ({"whale_wallets": "0xA"}, "venues.polymarket.options.whale_wallets"),
    ],
)
def test_a_bad_option_is_named(raw: dict[str, object], named: str) -> None:
    with pytest.raises(OptionsError, match=named):
        Adapter(VenueSettings(options=raw), Settings())
    with pytest.raises(ConfigError, match=named):
        check_venue_options(Settings(venues={"polymarket": VenueSettings(options=raw)}))


def test_run_refuses_an_unknown_option_before_anything_starts(tmp_path: Path) -> None:
    config = tmp_path / "venuefeed.yaml"
    config.write_text("venues:\n  polymarket:\n    options:\n      audit_interval: 30\n")
    db = tmp_path / "data" / "run.db"
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("VENUEFEED_") and k != "DATABASE_URL"}  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "venuefeed.cli", "--config", str(config), "--db", str(db), "run"],
        capture_output=True, text=True, timeout=60, env=clean,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        "error: venues.polymarket.options.audit_interval: unknown option; known: audit_batch, "
        "audit_interval_seconds, discovery_debounce_seconds, gamma_keyset, "
        "hash_recheck_interval_seconds, max_assets_per_connection, ping_interval_seconds, "
        "resync_retry_interval_seconds, whale_wallets"
    ]
    assert not db.exists()  # nothing started
