"""Strict venue options: every mistake names ``venues.<venue>.options.<key>``."""

from __future__ import annotations

import pytest

from venuefeed.venues.options import OptionsError, VenueOptions, load_options


class Example(VenueOptions, frozen=True):
    audit_interval_seconds: float = 60.0
    """Seconds between audits."""
    batch: int = 20

    def problems(self) -> dict[str, str]:
        return {"batch": "must be at least 1"} if self.batch < 1 else {}


def test_defaults_and_values_from_config() -> None:
    assert load_options(Example, "ex", {}) == Example()
    loaded = load_options(Example, "ex", {"audit_interval_seconds": "2.5", "batch": 3})
    assert loaded == Example(2.5, 3)  # numbers given as text (environment variables) work


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"audit_interval": 5}, "venues.ex.options.audit_interval: unknown option; known: "
                                "audit_interval_seconds, batch"),
        ({"batch": "many"}, "venues.ex.options.batch: Expected `int`, got `str`"),
        ({"batch": 0}, "venues.ex.options.batch: must be at least 1 (got 0)"),
    ],
)  # fmt: skip
def test_a_mistake_is_one_line_naming_the_key(raw: dict[str, object], message: str) -> None:
    with pytest.raises(OptionsError) as caught:
        load_options(Example, "ex", raw)
    assert str(caught.value) == message
