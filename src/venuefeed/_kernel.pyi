"""Types of the optional C extension (``_kernel.c``); see :mod:`venuefeed.book`."""

from collections.abc import Callable, Iterable
from typing import Any

from venuefeed.book import Inconsistency
from venuefeed.models import BookLevel

def setup(
    keys: dict[str, float],
    sizes: dict[str, str],
    checked_memo: dict[str, str],
    price_key: Callable[[str], float | None],
    size: Callable[[str], str | None],
    checked: Callable[[str], str | None],
    canon: Callable[[str], str],
    level_type: type[BookLevel],
    unknown_level: Inconsistency,
    invalid_level: Inconsistency,
    crossed: Inconsistency,
) -> None: ...
def setup_numbers(learn: Callable[..., str], non_negative: Callable[[str], bool]) -> None: ...
def check(text: str) -> str: ...
def apply(side: object, changes: list[BookLevel]) -> Inconsistency | None: ...
def apply_sides(
    bids: object,
    asks: object,
    bid_changes: list[BookLevel],
    ask_changes: list[BookLevel],
    tolerate_unknown: bool,
) -> Inconsistency | None: ...
def load(side: object, levels: list[BookLevel]) -> dict[float, BookLevel] | None: ...
def levels(
    pairs: Iterable[tuple[str, str]],
    known_prices: dict[str, str],
    known_sizes: dict[str, str],
    new_price: Callable[[str], str],
    new_size: Callable[[str], str],
) -> list[BookLevel]: ...
def price_changes(
    items: Iterable[object],
    ts: int,
    ts_recv: int,
    venue: str,
    known_prices: dict[str, str],
    learn_price: Callable[[str], str],
    known_sizes: dict[str, str],
    learn_size: Callable[[str], str],
    delta_type: type[object],
    change_type: type[object],
) -> list[Any] | None: ...
