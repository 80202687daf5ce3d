"""Exact decimals: '0.535' in is '0.535' out, through models, JSON and SQLite."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from venuefeed import exact
from venuefeed.models import Trade, event_decoder, event_encoder
from venuefeed.sinks.sqlite import SqliteStore, open_reader

decimals = st.decimals(
    min_value=Decimal("-1e9"), max_value=Decimal("1e9"), allow_nan=False, allow_infinity=False,
    places=9,
)  # fmt: skip


def test_canon_examples() -> None:
    assert exact.canon("0.50") == "0.5"
    assert exact.canon("13.00") == "13"
    assert exact.canon("0.00000000") == "0"
    assert exact.canon("-54.00") == "-54"
    assert exact.canon("100") == "100"
    assert exact.canon("4.00000200") == "4.000002"
    assert exact.canon("0.535") == "0.535"


def test_from_number_and_cents() -> None:
    assert exact.from_number(94.37) == "94.37"
    assert exact.from_number(0.1) == "0.1"
    assert exact.from_number(5) == "5"
    assert exact.from_cents(42) == "0.42"
    assert exact.from_cents(100) == "1"
    assert exact.from_decimal(Decimal("1E+2")) == "100"
    with pytest.raises(ValueError):
        exact.validate("abc")
    with pytest.raises(ValueError):
        exact.validate("NaN")


@given(decimals)
def test_canon_preserves_value_and_identity(value: Decimal) -> None:
    text = f"{value:f}"
    canonical = exact.canon(text)
    assert Decimal(canonical) == value
    # Same number, different spelling -> same canonical string.
    padded = text + ("0" if "." in text else ".000")
    assert exact.canon(padded) == canonical
    assert exact.from_decimal(value) == canonical


@given(decimals, decimals)
def test_trade_json_round_trip_is_exact(price: Decimal, size: Decimal) -> None:
    trade = Trade(
        venue="v", instrument="i", ts_venue=1, ts_recv=2, trade_id="t",
        price=exact.from_decimal(price), size=exact.from_decimal(size),
    )  # fmt: skip
    decoded = event_decoder.decode(event_encoder.encode(trade))
    assert decoded == trade
    assert Decimal(decoded.price) == price  # type: ignore[union-attr]


# Few examples of many values each: every example starts a store (a writer process).
@settings(max_examples=6, deadline=None)
@given(st.lists(decimals, min_size=1, max_size=250, unique=True))
def test_sqlite_round_trip_is_exact(
    tmp_path_factory: pytest.TempPathFactory, values: list[Decimal]
) -> None:
    path = tmp_path_factory.mktemp("db") / "x.db"
    trades = [
        Trade(venue="v", instrument="i", ts_venue=n, ts_recv=n, trade_id=str(n),
              price=exact.from_decimal(v), size="1")
        for n, v in enumerate(values)
    ]  # fmt: skip

    async def store() -> None:
        sink = SqliteStore(path)
        await sink.start()
        await sink.write(trades)
        await sink.close()

    asyncio.run(store())
    stored = dict(open_reader(path).execute("SELECT trade_id, price FROM trades").fetchall())
    for n, value in enumerate(values):
        assert stored[str(n)] == exact.from_decimal(value)
        assert Decimal(stored[str(n)]) == value


def test_the_documented_example(tmp_path: Path) -> None:
    trade = Trade(venue="v", instrument="i", ts_venue=0, ts_recv=0, trade_id="x",
                  price=exact.canon("0.535"), size="1")  # fmt: skip
    assert msgspec.json.decode(event_encoder.encode(trade))["price"] == "0.535"


@given(decimals, decimals)
def test_add_is_exact(a: Decimal, b: Decimal) -> None:
    assert exact.add(f"{a:f}", f"{b:f}") == exact.from_decimal(a + b)


def test_add_examples() -> None:
    assert exact.add("13.00", "-3.00") == "10"
    assert exact.add("0", "2.50") == "2.5"
    assert exact.add("10", "-10") == "0"
    assert exact.add("1", "-1.5") == "-0.5"
    assert exact.add("-0.25", "0.05") == "-0.2"


# -- the boundary: checked() refuses what is not a plain finite decimal ---------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.50", "0.5"),
        ("007", "7"),
        ("-0.0", "0"),
        ("4.00000200", "4.000002"),
        ("-54.00", "-54"),
        ("1" * 18, "1" * 18),
    ],
)
def test_checked_canonicalises_plain_decimals(text: str, expected: str) -> None:
    assert exact.checked(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "", " ", " 0.5", "0.5 ", "\t1", ".5", "5.", "+5", "1e5", "1E-7", "NaN", "nan", "inf",
        "-Infinity", "０.５", "٣", "1_000", "1,5", "0x10", "--1", "-", "1.2.3", "1" * 19,
        "0." + "1" * 19, "\u00a01",
    ],
)  # fmt: skip
def test_checked_refuses_everything_else(text: str) -> None:
    assert exact.checked(text) is None


@given(decimals)
def test_checked_agrees_with_decimal_on_plain_text(value: Decimal) -> None:
    text = f"{value:f}"
    assert exact.checked(text) == exact.from_decimal(value)
    assert Decimal(exact.checked(text) or "nan") == value


@given(st.text(max_size=40))
def test_checked_accepts_only_what_decimal_reads_as_a_finite_number(text: str) -> None:
    out = exact.checked(text)
    if out is not None:
        assert Decimal(out) == Decimal(text) and Decimal(out).is_finite()
        assert exact.checked(out) == out  # canonical text is a fixed point


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("114.125"), "114.125"),
        (Decimal("1E-7"), "0.0000001"),
        (Decimal("0E-10"), "0"),
        (Decimal("NaN"), None),
        (Decimal("-Infinity"), None),
        (Decimal("1E+18"), None),
        (Decimal("1E+999999999"), None),  # refused before formatting a gigabyte of zeros
        (Decimal("1E-19"), None),
    ],
)
def test_checked_decimal(value: Decimal, expected: str | None) -> None:
    assert exact.checked_decimal(value) == expected
