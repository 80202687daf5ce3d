"""``venues.kalshi.options`` is checked when the adapter starts: a typo is one line naming it."""

from __future__ import annotations

import pytest

from tests.venues.kalshi.kalshi_support import kalshi_settings
from venuefeed.venues.kalshi import Adapter, Options
from venuefeed.venues.options import OptionsError


def adapter_with(**options: object) -> Adapter:
    extra = {f"venues.kalshi.options.{key}": value for key, value in options.items()}
    cfg = kalshi_settings("http://127.0.0.1:9/trade-api/v2", **extra)
    return Adapter(cfg.venues["kalshi"], cfg)


def test_an_unknown_key_is_refused_at_start_up_naming_it() -> None:
    with pytest.raises(OptionsError) as caught:
        adapter_with(markets_per_conection=10)
    assert str(caught.value).startswith(
        "venues.kalshi.options.markets_per_conection: unknown option; known: "
    )


def test_a_value_out_of_range_is_refused_naming_it() -> None:
    with pytest.raises(OptionsError, match=r"options\.markets_per_connection: must be between"):
        adapter_with(markets_per_connection=5000)


def test_configured_values_reach_the_adapter_typed() -> None:
    adapter = adapter_with(markets_per_connection="250", historical_tier=False)
    assert adapter.options == Options(markets_per_connection=250, historical_tier=False)
    assert adapter_with().options == Options()
