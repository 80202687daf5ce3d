"""The boundary checks every parser shares: number tables, the time window, ms timestamps."""

from __future__ import annotations

from decimal import Decimal

import pytest

from venuefeed.models import BookLevel
from venuefeed.venues.checks import (
    EARLIEST_NS,
    PRICES,
    PROBABILITIES,
    SIGNED,
    SIZES,
    Invalid,
    Numbers,
    TimeWindow,
    levels,
    ms_text,
)


@pytest.mark.parametrize(
    ("table", "text", "expected"),
    [
        (PRICES, "60000.01000000", "60000.01"),
        (PRICES, "0", "0"),
        (PROBABILITIES, "0.5000", "0.5"),
        (PROBABILITIES, "1.0000", "1"),
        (SIZES, "0.00", "0"),
        (SIGNED, "-54.00", "-54"),
    ],
)
def test_tables_canonicalise_what_passes_their_rule(
    table: Numbers, text: str, expected: str
) -> None:
    assert table[text] == expected
    assert table[text] == expected  # the second time from the memo


@pytest.mark.parametrize(
    ("table", "text"),
    [
        (PRICES, "-1"),
        (PROBABILITIES, "1.0001"),
        (PROBABILITIES, "-0.1"),
        (SIZES, "-0.5"),
        (SIGNED, "NaN"),
        (SIZES, " 1"),
        (PRICES, "1E+2"),
    ],
)
def test_tables_refuse_what_fails_and_never_remember_it(table: Numbers, text: str) -> None:
    for _ in range(2):
        with pytest.raises(Invalid) as info:
            table[text]
        assert info.value.reason in ("invalid_price", "invalid_size")
    assert text not in table.known


def test_a_json_number_in_exponent_form_does_not_open_the_door_to_exponent_text() -> None:
    assert PRICES.decimal(Decimal("1E+2")) == "100"  # a fine JSON number
    with pytest.raises(Invalid):
        PRICES["1E+2"]  # but not decimal text a venue sends as a string


@pytest.mark.parametrize("value", ["NaN", "sNaN", "Infinity", "-1", "1E+18", "1E-19"])
def test_decimal_numbers_are_checked_too(value: str) -> None:
    with pytest.raises(Invalid):
        SIZES.decimal(Decimal(value))


def test_a_table_is_bounded() -> None:
    table = Numbers("invalid_size", lambda text: True, limit=3)
    for i in range(10):
        table[str(i)]
    assert len(table.known) <= 3


def test_levels_check_every_pair_and_learn_new_ones() -> None:
    assert levels([("100.10", "1.50"), ("99", "0.0")]) == [
        BookLevel("100.1", "1.5"),
        BookLevel("99", "0"),
    ]
    with pytest.raises(Invalid):
        levels([("100.10", "1.50"), ("99", "-1")])


@pytest.mark.parametrize("text", ["1.5", "-1", "", " 1", "１２", "1" * 16, "1e3"])
def test_millisecond_text_must_be_plain_digits(text: str) -> None:
    with pytest.raises(Invalid):
        ms_text(text)


def test_millisecond_text() -> None:
    assert ms_text("1729000120123") == 1_729_000_120_123_000_000


def test_time_window_defaults_and_bounds() -> None:
    window = TimeWindow()
    recv = 1_800_000_000 * 10**9
    lo, hi = window.live(recv)
    assert (recv - lo, hi - recv) == (7 * 86_400 * 10**9, 300 * 10**9)
    assert window.history(recv) == (EARLIEST_NS, hi)
    # Never earlier than 1990, whatever the past allowance.
    assert TimeWindow(past_seconds=10**12).live(recv)[0] == EARLIEST_NS
    with pytest.raises(ValueError, match="must be > 0"):
        TimeWindow(past_seconds=0)


async def test_the_window_is_configured_per_ingestion_and_shared_by_rest_and_stream() -> None:
    from venuefeed.config import Settings, VenueSettings
    from venuefeed.venues.polymarket import Adapter

    settings = Settings(ingestion={"venue_time_past_seconds": 60, "venue_time_future_seconds": 5})
    adapter = Adapter(VenueSettings(), settings)
    try:
        assert adapter.rejects.window == TimeWindow(60, 5)
        stream = adapter.open_stream()
        assert stream.rejects is adapter.rejects is adapter.rest.rejects
    finally:
        await adapter.close()
