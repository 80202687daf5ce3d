"""Order book state and integrity checks, against a reference model."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from venuefeed import exact
from venuefeed.book import Books, Inconsistency, OrderBook, SyncState
from venuefeed.models import BookDelta, BookLevel, BookSnapshot


def snap(
    bids: list[tuple[str, str]], asks: list[tuple[str, str]], seq: int | None = None
) -> BookSnapshot:
    return BookSnapshot(
        venue="v", instrument="i", ts_venue=1, ts_recv=1,
        bids=[BookLevel(p, s) for p, s in bids], asks=[BookLevel(p, s) for p, s in asks],
        sequence=seq,
    )  # fmt: skip


def delta(
    bids: list[tuple[str, str]] = (),
    asks: list[tuple[str, str]] = (),  # type: ignore[assignment]
    seq: int | None = None,
    first: int | None = None,
) -> BookDelta:
    return BookDelta(
        venue="v", instrument="i", ts_venue=2, ts_recv=2,
        bids=[BookLevel(p, s) for p, s in bids], asks=[BookLevel(p, s) for p, s in asks],
        sequence=seq, first_sequence=first,
    )  # fmt: skip


def test_snapshot_sorted_best_first_whatever_the_input_order() -> None:
    book = OrderBook("v", "i")
    # Polymarket sends the best level last.
    assert book.load_snapshot(snap([("0.01", "1000"), ("0.1", "125")],
                                   [("0.98", "5000"), ("0.14", "705")])) is None  # fmt: skip
    assert [lv.price for lv in book.bids()] == ["0.1", "0.01"]
    assert [lv.price for lv in book.asks()] == ["0.14", "0.98"]
    assert book.mid() == Decimal("0.12")
    assert book.state is SyncState.LIVE


def test_equal_prices_with_different_spelling_are_one_level() -> None:
    book = OrderBook("v", "i")
    book.load_snapshot(snap([("0.50", "10")], [("0.60", "1")]))
    assert book.apply_delta(delta(bids=[("0.5", "3")])) is None
    assert book.depth() == (1, 1)
    assert book.bids()[0].size == "3"
    assert book.apply_delta(delta(bids=[("0.500", "0")])) is None
    assert book.depth() == (0, 1)


def test_removing_an_unknown_level_is_an_inconsistency() -> None:
    book = OrderBook("v", "i")
    book.load_snapshot(snap([("0.5", "10")], [("0.6", "1")]))
    assert book.apply_delta(delta(asks=[("0.7", "0")])) is Inconsistency.UNKNOWN_LEVEL
    assert book.state is SyncState.RESYNCING
    # Further deltas are refused until a snapshot arrives.
    assert book.apply_delta(delta(bids=[("0.4", "1")])) is Inconsistency.NO_SNAPSHOT


def test_crossed_book_detected() -> None:
    book = OrderBook("v", "i")
    book.load_snapshot(snap([("0.5", "10")], [("0.6", "1")]))
    assert book.apply_delta(delta(bids=[("0.6", "2")])) is Inconsistency.CROSSED


def test_sequence_rules_stale_ignored_bridge_ok_gap_detected() -> None:
    book = OrderBook("v", "i")
    book.load_snapshot(snap([("100", "1")], [("101", "1")], seq=100))
    assert book.apply_delta(delta(bids=[("99", "5")], seq=95, first=90)) is None  # stale
    assert book.depth() == (1, 1)
    assert book.apply_delta(delta(bids=[("99", "5")], seq=105, first=98)) is None  # bridges 101
    assert book.sequence == 105
    assert book.apply_delta(delta(bids=[("98", "5")], seq=110, first=107)) is Inconsistency.GAP


def test_increments_for_kalshi_style_deltas() -> None:
    book = OrderBook("v", "i")
    book.load_snapshot(snap([("0.42", "13")], [("0.44", "17")]))
    assert book.add("bid", "0.4200", "-3.00") == "10"
    assert book.add("bid", "0.41", "2.50") == "2.5"
    assert book.add("bid", "0.42", "-10") == "0"
    assert [lv.price for lv in book.bids()] == ["0.41"]
    assert book.add("ask", "0.44", "-18") is Inconsistency.NEGATIVE_SIZE


def test_books_route_by_instrument() -> None:
    books = Books("v")
    books.apply(snap([("1", "1")], [("2", "1")]))
    assert len(books) == 1 and books.find("i") is not None and books.find("x") is None


prices = st.integers(min_value=1, max_value=999).map(lambda n: f"{n / 1000:.3f}")
sizes = st.sampled_from(["0", "0.000", "1", "1.00", "2.5", "10", "0.001"])


@given(st.lists(st.tuples(st.booleans(), prices, sizes), max_size=200), st.integers(1, 15))
def test_book_matches_a_plain_dict_model(ops: list[tuple[bool, str, str]], depth: int) -> None:
    book = OrderBook("v", "i")
    book.load_snapshot(snap([], []))
    model: dict[bool, dict[Decimal, str]] = {True: {}, False: {}}
    for is_bid, price, size in ops:
        side = model[is_bid]
        existed = Decimal(price) in side
        result = (book._bids if is_bid else book._asks).apply([BookLevel(price, size)])
        if Decimal(size) == 0:
            assert (result is None) is existed
            side.pop(Decimal(price), None)
        else:
            side[Decimal(price)] = exact.canon(size)
    expected_bids = sorted(model[True].items(), reverse=True)[:depth]
    expected_asks = sorted(model[False].items())[:depth]
    assert [(Decimal(lv.price), lv.size) for lv in book.bids(depth)] == expected_bids
    assert [(Decimal(lv.price), lv.size) for lv in book.asks(depth)] == expected_asks


# -- no input makes a book raise: a bad level costs a resync ---------------------------

BAD_NUMBERS = ["x", "NaN", "nan", "inf", "-1", " 0.5", "", "1e5", "０.５", "1" * 40]


@pytest.mark.parametrize("bad", BAD_NUMBERS)
def test_a_snapshot_with_an_invalid_level_is_refused_not_kept(bad: str) -> None:
    for bids in ([(bad, "1")], [("0.5", bad)]):
        book = OrderBook("v", "i")
        assert book.load_snapshot(snap(bids, [("0.6", "1")])) is Inconsistency.INVALID_LEVEL
        assert book.state is SyncState.RESYNCING
        assert book.bids() == [] and book.best_bid() is None and not book.is_crossed()


@pytest.mark.parametrize(
    "bids", [*([(bad, "1")] for bad in BAD_NUMBERS), [("0.45", "-1")], [("0.45", "-0.5")]]
)
def test_a_delta_with_an_invalid_level_resyncs_and_the_book_stays_readable(
    bids: list[tuple[str, str]],
) -> None:
    """Any price that is not a number, or a negative size, costs a resync.

    (Other size text in a delta is the parser's to refuse: the delta path is
    the book's hot loop and checks only what the book itself relies on.)
    """
    book = OrderBook("v", "i")
    book.load_snapshot(snap([("0.4", "1")], [("0.6", "1")]))
    assert book.apply_delta(delta(bids=bids)) is Inconsistency.INVALID_LEVEL
    assert book.state is SyncState.RESYNCING
    assert [lv.price for lv in book.bids()] == ["0.4"]  # nothing invalid was stored
    assert book.mid() == Decimal("0.5")


@pytest.mark.parametrize(("price", "change"), [("x", "1"), ("0.4", "NaN"), ("-0.4", "1")])
def test_an_invalid_increment_resyncs(price: str, change: str) -> None:
    book = OrderBook("v", "i")
    book.load_snapshot(snap([("0.4", "1")], [("0.6", "1")]))
    assert book.add("bid", price, change) is Inconsistency.INVALID_LEVEL
    assert book.state is SyncState.RESYNCING
    assert book.size_at("bid", "x") == "0"


@given(
    st.lists(
        st.tuples(
            st.booleans(),
            st.sampled_from([*BAD_NUMBERS, "0.5", "0.55", "0.45"]),
            st.sampled_from(["0", "0.00", "1", "2.50", "-1", "-0.5"]),
        ),
        max_size=30,
    )
)
def test_any_levels_leave_a_live_book_valid_and_uncrossed(ops: list[tuple[bool, str, str]]) -> None:
    book = OrderBook("v", "i")
    book.load_snapshot(snap([("0.4", "1")], [("0.6", "1")]))
    for is_bid, price, size in ops:
        level = [(price, size)]
        book.apply_delta(delta(bids=level) if is_bid else delta(asks=level))
        if book.state is not SyncState.LIVE:
            book.load_snapshot(snap([("0.4", "1")], [("0.6", "1")]))
        bid, ask = book.best_bid(), book.best_ask()
        for lv in (bid, ask):
            assert lv is None or (exact.checked(lv.price) == lv.price and lv.size != "0")
        assert not book.is_crossed()
        assert bid is None or ask is None or Decimal(bid.price) < Decimal(ask.price)
