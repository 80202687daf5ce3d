"""The C kernel (``venuefeed._kernel``) against the Python loops it replaces.

Both implementations get the same random input -- canonical and other spellings,
zero sizes, unknown levels, invalid and non-``str`` values -- and must give the
same answers (or raise the same exception type) and leave the same book behind.
Without a built kernel these tests skip, except in CI (``CI=true``), where a
missing kernel is a build failure to see, not to skip.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from venuefeed import book, exact
from venuefeed.book import _Side
from venuefeed.models import BookLevel
from venuefeed.venues import checks
from venuefeed.venues.binance import parse as binance
from venuefeed.venues.rejects import Rejects


@pytest.fixture(scope="module")
def kernel() -> ModuleType:
    try:
        from venuefeed import _kernel
    except ImportError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the C kernel did not build (CI has a compiler): {exc}")
        pytest.skip(f"the C kernel was not built ({exc}); the Python loops ran alone")
    assert book.COMPILED
    return _kernel


_EDGE_TEXTS = [
    "0", "0.0", "0.00000000", "", ".", "0.", ".5", "1.", "1", "1.0", "1.50", "10",
    "0.5", "0.50", "-1", "-0", "-0.0", "+1", " 1", "1 ", "nan", "NaN", "inf", "1e5",
    "007", "１", "abc", "9" * 18, "1" * 19, "0." + "0" * 17 + "1", "0." + "0" * 18 + "1",
]  # fmt: skip
_DECIMALS = st.builds(
    lambda whole, frac, zeros: f"{whole}.{frac}{'0' * zeros}" if frac or zeros else str(whole),
    st.integers(0, 40),
    st.sampled_from(["", "1", "25", "5", "125"]),
    st.integers(0, 3),
)
TEXT = st.one_of(_DECIMALS, _DECIMALS, st.sampled_from(_EDGE_TEXTS))
"""A number as a venue or a caller might spell it: mostly valid, some not."""
ODD = st.sampled_from([None, 5, 1.5, b"1", True])
"""Hashable non-``str`` values (what a caller building levels itself might pass)."""
LEVEL = st.one_of(
    st.builds(BookLevel, TEXT, TEXT),
    st.builds(BookLevel, TEXT, TEXT),
    st.builds(BookLevel, st.one_of(TEXT, ODD, st.just(["1"])), st.one_of(TEXT, ODD)),
    st.just(("1", "1")),
)


def outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    """A result, or the type of what it raised (messages may differ)."""
    try:
        return "ok", call()
    except Exception as exc:
        return "raised", type(exc)


def state(side: _Side) -> list[tuple[float, Any, Any]]:
    """The side's levels by key; the two lists must stay aligned."""
    return [(k, lv.price, lv.size) for k, lv in zip(side.keys, side.levels, strict=True)]


def sides(descending: bool, start: list[BookLevel]) -> tuple[_Side, _Side]:
    python, native = _Side(descending), _Side(descending)
    python.load([lv for lv in start if isinstance(lv, BookLevel)])
    native.load([lv for lv in start if isinstance(lv, BookLevel)])
    return python, native


@settings(max_examples=300, deadline=None)
@given(
    descending=st.booleans(),
    start=st.lists(st.builds(BookLevel, _DECIMALS, _DECIMALS), max_size=30),
    steps=st.lists(st.lists(LEVEL, max_size=8), max_size=12),
)
def test_apply_matches_python(
    kernel: ModuleType, descending: bool, start: list[BookLevel], steps: list[list[Any]]
) -> None:
    python, native = sides(descending, start)
    for changes in steps:
        want = outcome(lambda: _Side.apply(python, changes))  # noqa: B023
        got = outcome(lambda: kernel.apply(native, changes))  # noqa: B023
        assert got == want
        assert state(native) == state(python)
        assert native.keys == sorted(set(native.keys))


@settings(max_examples=300, deadline=None)
@given(
    tolerate=st.booleans(),
    bids=st.lists(st.builds(BookLevel, _DECIMALS, _DECIMALS), max_size=15),
    asks=st.lists(st.builds(BookLevel, _DECIMALS, _DECIMALS), max_size=15),
    steps=st.lists(st.tuples(st.lists(LEVEL, max_size=5), st.lists(LEVEL, max_size=5)), max_size=8),
)
def test_apply_sides_matches_python(
    kernel: ModuleType,
    tolerate: bool,
    bids: list[BookLevel],
    asks: list[BookLevel],
    steps: list[tuple[list[Any], list[Any]]],
) -> None:
    """One delta's two sides and the book's verdict: invalid, unknown, crossed or none."""
    python_bids, native_bids = sides(True, bids)
    python_asks, native_asks = sides(False, asks)
    for bid_changes, ask_changes in steps:
        want = outcome(
            lambda: book._apply_sides(python_bids, python_asks, bid_changes, ask_changes, tolerate)  # noqa: B023
        )
        got = outcome(
            lambda: kernel.apply_sides(native_bids, native_asks, bid_changes, ask_changes, tolerate)  # noqa: B023
        )
        assert got == want
        assert state(native_bids) == state(python_bids)
        assert state(native_asks) == state(python_asks)


@settings(max_examples=300, deadline=None)
@given(
    descending=st.booleans(),
    start=st.lists(st.builds(BookLevel, _DECIMALS, _DECIMALS), max_size=10),
    snapshot=st.lists(LEVEL, max_size=30),
)
def test_load_matches_python(
    kernel: ModuleType, descending: bool, start: list[BookLevel], snapshot: list[Any]
) -> None:
    python, native = sides(descending, start)
    want = outcome(lambda: _Side.load(python, snapshot))
    got = outcome(lambda: book._compiled_load(native, snapshot))
    assert got == want
    assert state(native) == state(python)


PAIR = st.one_of(
    st.tuples(TEXT, TEXT),
    st.tuples(TEXT, TEXT),
    st.tuples(st.one_of(TEXT, ODD), st.one_of(TEXT, ODD)),
    st.sampled_from([("1",), ("1", "2", "3"), "ab", "abc", 5, None, ["1", "2"], (["1"], "2")]),
)


@settings(max_examples=300, deadline=None)
@given(pairs=st.lists(PAIR, max_size=12))
def test_levels_match_python(kernel: ModuleType, pairs: list[Any]) -> None:
    """Fresh tables for each run, so that the C side checks new numbers too."""
    results = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(checks, "_kernel", kernel, raising=False)
        for compiled in (False, True):
            patch.setattr(checks, "_COMPILED", compiled)
            prices = checks.Numbers("invalid_price", checks._non_negative)
            sizes = checks.Numbers("invalid_size", checks._non_negative, limit=4)
            results.append((outcome(lambda: checks.levels(pairs, prices, sizes)), sizes.known))  # noqa: B023
    (want, want_known), (got, got_known) = results
    # C checks a plain non-negative table's numbers without its memo; it may never
    # remember anything the Python would not.
    assert got_known.items() <= want_known.items()
    if want[0] == "raised" and issubclass(want[1], checks.Invalid):
        assert got[0] == "raised" and issubclass(got[1], checks.Invalid)
    else:
        assert got == want


def both_paths(
    parser: ModuleType, kernel: ModuleType, frame: bytes, ts_recv: int, venue: str
) -> list[tuple[Any, dict[Any, int]]]:
    """``parser.parse_frame``'s items and rejections on its Python path, then on the
    kernel's; the number tables start empty each time, so both check new numbers."""
    results = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(parser, "_kernel", kernel, raising=False)
        for compiled in (False, True):
            patch.setattr(parser, "_COMPILED", compiled)
            for table in (checks.PRICES, checks.PROBABILITIES, checks.SIZES):
                table.known.clear()
            rejects = Rejects(venue)
            results.append((parser.parse_frame(frame, ts_recv, rejects), dict(rejects.counts)))
    return results


WIRE = st.one_of(TEXT, TEXT, st.sampled_from(["-5", "1e3", "", "x", "0.1234567890123456789"]))


@settings(max_examples=200, deadline=None)
@given(
    bids=st.lists(st.tuples(WIRE, WIRE), max_size=10),
    asks=st.lists(st.tuples(WIRE, WIRE), max_size=10),
)
def test_binance_depth_frames_match_python(
    kernel: ModuleType, bids: list[tuple[str, str]], asks: list[tuple[str, str]]
) -> None:
    event_ms = 1_790_000_000_000
    frame = msgspec.json.encode(
        {
            "stream": "btcusdt@depth@100ms",
            "data": {"e": "depthUpdate", "E": event_ms, "s": "BTCUSDT", "U": 1, "u": 2,
                     "b": bids, "a": asks},
        }
    )  # fmt: skip
    python, native = both_paths(binance, kernel, frame, event_ms * 1_000_000, "binance")
    assert native == python


@settings(max_examples=2000, deadline=None)
@given(text=st.one_of(TEXT, st.text(max_size=40), st.from_regex(r"-?[0-9]{0,20}(\.[0-9]{0,20})?")))
def test_check_matches_exact(kernel: ModuleType, text: str) -> None:
    assert kernel.check(text) == exact._check(text)


def test_kernel_misuse_raises_instead_of_crashing(kernel: ModuleType) -> None:
    side = _Side(True)
    with pytest.raises(AttributeError):
        kernel.apply(object(), [])
    with pytest.raises(TypeError):
        kernel.apply(side, 5)
    with pytest.raises(TypeError):
        kernel.apply(side)
    with pytest.raises(TypeError):
        kernel.levels([], [], {}, str, str)
    assert kernel.apply(side, iter([BookLevel("1", "2")])) is None
    assert [lv.price for lv in side.levels] == ["1"]
    side.levels.append(BookLevel("2", "1"))  # out of step with the keys: refused, not read
    with pytest.raises(RuntimeError):
        kernel.apply(side, [BookLevel("3", "1")])


@pytest.mark.parametrize(("env", "want"), [("1", "python"), ("", None)])
def test_pure_python_switch(env: str, want: str | None) -> None:
    """``VENUEFEED_PURE_PYTHON=1`` selects the fallback; otherwise the kernel runs if built.

    ``venuefeed version`` tells the operator which one runs.
    """
    code = "import venuefeed.book as b; print(b.KERNEL, b.COMPILED)"
    environ = {**os.environ, "VENUEFEED_PURE_PYTHON": env}
    run = subprocess.run(
        [sys.executable, "-c", code], env=environ, capture_output=True, text=True, check=True
    )
    kernel, compiled = run.stdout.split()
    assert kernel == (want or ("c" if compiled == "True" else "python"))
    version = subprocess.run(
        [sys.executable, "-m", "venuefeed.cli", "version"],
        env=environ,
        capture_output=True,
        text=True,
        check=True,
    )
    assert f"(book kernel: {kernel})" in version.stdout


_PROBABILITY = st.one_of(
    st.builds(lambda cents: f"0.{cents:02d}".rstrip("0").rstrip("."), st.integers(0, 99)),
    st.sampled_from(["1", "0", "0.5", "0.50", "1.0"]),
)
_PM_PRICE = st.one_of(_PROBABILITY, _PROBABILITY, _PROBABILITY, TEXT)


def _pm_item(price: Any, size: Any, side: Any) -> Any:
    return st.fixed_dictionaries(
        {
            "asset_id": st.sampled_from(["111", "222"]),
            "price": price,
            "size": size,
            "side": side,
            "hash": st.sampled_from(["", "0xabc", "0xdef"]),
        },
        optional={
            "best_bid": st.one_of(price, st.just("")),
            "best_ask": st.one_of(price, st.just("")),
        },
    )


_PM_ITEM = st.one_of(
    # Mostly valid messages (the C path), some with anything in them (handed over).
    _pm_item(_PROBABILITY, _DECIMALS, st.sampled_from(["BUY", "SELL"])),
    _pm_item(_PROBABILITY, _DECIMALS, st.sampled_from(["BUY", "SELL"])),
    _pm_item(_PROBABILITY, _DECIMALS, st.sampled_from(["BUY", "SELL"])),
    _pm_item(_PM_PRICE, st.one_of(_DECIMALS, TEXT), st.sampled_from(["BUY", "SELL", "buy", ""])),
)


@settings(max_examples=300, deadline=None)
@given(items=st.lists(_PM_ITEM, min_size=1, max_size=8))
def test_polymarket_price_changes_match_python(
    kernel: ModuleType, items: list[dict[str, str]]
) -> None:
    """The C grouping of a valid message, and the hand-over of any other, change nothing."""
    from venuefeed.venues.polymarket import parse as polymarket

    event_ms = 1_790_000_000_000
    frame = msgspec.json.encode(
        {"event_type": "price_change", "market": "0x1", "timestamp": str(event_ms),
         "price_changes": items}
    )  # fmt: skip
    python, native = both_paths(polymarket, kernel, frame, event_ms * 1_000_000, "polymarket")
    assert native == python
