"""L2 order books: state per instrument and the checks that keep it honest.

Every venue's book goes through here, so a venue module never keeps its own
price-level dictionaries. A book is built from a :class:`~venuefeed.models.BookSnapshot`
and moved by :class:`~venuefeed.models.BookDelta` events; anything that would
make it wrong -- a sequence gap, a crossed book, the removal of a level we do
not hold, a size going negative, a level that is not a valid number -- is
reported as an :class:`Inconsistency` and the book is marked ``resyncing`` so
the caller re-requests a snapshot for that one instrument. No input makes a
book raise: the parsers check every number at the boundary, and the book
checks again, memoized, so a level that slipped past (or a caller that builds
levels itself) costs a resync, never a ``float("x")`` or a ``NaN`` key.

Levels are keyed by ``float(price)``: for the decimal strings venues send
(at most 15 significant digits) distinct prices give distinct floats in the
same order, so the key identifies a level (``"0.5"`` and ``"0.50"`` meet) and
sorts it, while the canonical price string is kept for output. Each side is a
sorted list of keys with its levels aligned beside it (no dict by key: see
:class:`_Side`), so best bid/ask is O(1) and top-N a slice.

The per-frame loops (:meth:`_Side.apply`, :meth:`_Side.load`, a delta's two
sides with the crossed check, :func:`venuefeed.venues.checks.levels` and
Polymarket's ``price_change`` grouping) run in C when the optional extension
``venuefeed._kernel`` was built, with the same results (the tests feed both the
same input); the Python below is the reference and the fallback.
``VENUEFEED_PURE_PYTHON=1`` (read at import) forces the fallback; :data:`KERNEL`
says which one runs.
"""

from __future__ import annotations

import enum
import os
from bisect import bisect_left
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Final, Literal

from venuefeed import exact
from venuefeed.models import BookDelta, BookLevel, BookSnapshot

__all__ = [
    "COMPILED",
    "KERNEL",
    "BookSide",
    "Books",
    "Inconsistency",
    "OrderBook",
    "SyncState",
    "price_key",
]

try:
    from venuefeed import _kernel
except ImportError:  # installed without a C compiler: the Python loops run
    _kernel = None  # type: ignore[assignment]
COMPILED: Final = _kernel is not None
"""Whether the C kernel was built (and imports); :data:`KERNEL` says whether it runs."""

BookSide = Literal["bid", "ask"]


class SyncState(enum.StrEnum):
    """Where an instrument's book stands.

    ``syncing`` until the first snapshot, ``live`` while deltas apply cleanly,
    ``stale`` when the feed has been silent past its limit, ``resyncing`` after
    an inconsistency until a fresh snapshot arrives.
    """

    SYNCING = "syncing"
    LIVE = "live"
    STALE = "stale"
    RESYNCING = "resyncing"


class Inconsistency(enum.StrEnum):
    """Why a book can no longer be trusted; each asks for a resnapshot."""

    GAP = "sequence_gap"
    CROSSED = "crossed_book"
    UNKNOWN_LEVEL = "unknown_level_removed"
    NEGATIVE_SIZE = "negative_size"
    CHECKSUM = "checksum_mismatch"
    NO_SNAPSHOT = "delta_before_snapshot"
    TOP_MISMATCH = "top_of_book_mismatch"
    """The venue's own best bid/ask, sent with an update, disagrees with our book."""
    REJECTED = "rejected_update"
    """An update for this book was refused at the boundary (a bad number): the book missed it."""
    INVALID_LEVEL = "invalid_level"
    """A level whose price or size is not a valid number reached the book."""


_WITHOUT_SNAPSHOT: Final = (SyncState.SYNCING, SyncState.RESYNCING)
"""States in which a delta cannot apply (a tuple: identity tests, once per delta)."""

_KEYS: dict[str, float] = {}
"""Canonical price text -> float key. Only canonical text enters, so a hit also
tells the book's hot path that the text can be stored as it is."""
_KEYS_MAX = 100_000


def price_key(price: str) -> float | None:
    """The float key of a price text, memoized; ``None`` if it is not a price.

    ``float()`` of an 8-decimal text costs ~220 ns here, a dict hit ~35 ns, and
    the prices that change are the few hundred near the touch, seen over and
    over. Only valid prices (finite, >= 0, see :func:`venuefeed.exact.checked`)
    in canonical form -- what the parsers emit -- enter the memo, so a hit
    needs no check; another spelling (``"0.50"``) is checked each time.
    Bounded: the memo is dropped and rebuilt when it reaches its limit.
    """
    key = _KEYS.get(price)
    if key is None:
        text = exact.checked(price) if isinstance(price, str) else None
        if text is None or text[0] == "-":
            return None
        key = float(text)
        if text == price:
            if len(_KEYS) >= _KEYS_MAX:
                _KEYS.clear()
            _KEYS[price] = key
    return key


_SIZES: dict[str, str] = {}
"""Valid size text -> canonical text (memoized like :data:`_KEYS`)."""


def _size(size: str) -> str | None:
    """The canonical text of a valid size (finite, >= 0), memoized; ``None`` otherwise."""
    canonical = _SIZES.get(size)
    if canonical is None:
        text = exact.checked(size) if isinstance(size, str) else None
        if text is None or text[0] == "-":
            return None
        if len(_SIZES) >= _KEYS_MAX:
            _SIZES.clear()
        canonical = _SIZES[size] = text
    return canonical


class _Side:
    """One side of a book: the signed keys in ascending order and their levels, aligned.

    A level's *signed key* is its float price on the bid side and the negated
    price on the ask side, so on both sides the keys ascend with the BEST level
    LAST: almost every change happens near the touch, and a change near the end
    of a list moves a few pointers instead of the whole book. ``levels[i]`` is
    the level of ``keys[i]``.

    Two aligned lists, not a dict by key: the prices of a book lie on a decimal
    grid, and the hashes of such floats share their low bits (6,000 prices around
    60,000 on a 0.01 tick have 60 distinct low 16 bits), so a dict keyed by them
    probes long chains on every lookup. The sorted keys answer "is this price
    held, and where" with one search, which starts at the touch (see the kernel).
    """

    __slots__ = ("_sign", "keys", "levels")

    def __init__(self, descending: bool) -> None:
        self._sign = 1.0 if descending else -1.0
        self.keys: list[float] = []
        self.levels: list[BookLevel] = []

    def clear(self) -> None:
        self.keys = []
        self.levels = []

    def load(self, levels: list[BookLevel]) -> bool:
        """Replace the side; False (and an empty side) if a level is not valid."""
        loaded: dict[float, BookLevel] = {}
        sign = self._sign
        for level in levels:
            price = exact.checked(level.price) if isinstance(level.price, str) else None
            key = price_key(price) if price is not None else None
            size = _size(level.size)
            if price is None or key is None or size is None:
                self.clear()
                return False
            if size != "0":
                if price != level.price or size != level.size:
                    level = BookLevel(price, size)
                loaded[sign * key] = level
        self._fill(loaded)
        return True

    def _fill(self, loaded: dict[float, BookLevel]) -> None:
        """The side from levels by signed key (a snapshot: the last level of a price wins)."""
        self.keys = sorted(loaded)
        self.levels = [loaded[key] for key in self.keys]

    def apply(self, changes: list[BookLevel]) -> Inconsistency | None:
        """Set each level's absolute size (zero removes it).

        Returns ``UNKNOWN_LEVEL`` if a change removed a level we did not hold,
        ``INVALID_LEVEL`` (and stops) at a level that is not a valid number.
        This loop is the book's hot path: locals are bound once, a price seen
        before costs one dict lookup, and the venue's ``BookLevel`` is stored
        as it came when its text is canonical (what the parsers emit); another
        spelling is stored canonical, so that reading the book
        (:meth:`top`, once per stored snapshot, 10-20 levels) builds nothing.
        Sizes come checked from the parser; here any spelling of zero removes
        the level and a negative size is refused, which is all the book itself
        relies on.
        """
        keys, held, sign = self.keys, self.levels, self._sign
        memo = _KEYS
        problem = None
        for level in changes:
            try:
                key = sign * memo[level.price]
            except KeyError:
                found = price_key(level.price)
                if found is None:
                    return Inconsistency.INVALID_LEVEL
                key = sign * found
                level = BookLevel(exact.checked(level.price) or level.price, level.size)
            size = level.size
            at = bisect_left(keys, key)
            here = at < len(keys) and keys[at] == key
            if not size.strip("0."):
                if here:
                    del keys[at]
                    del held[at]
                else:
                    problem = Inconsistency.UNKNOWN_LEVEL
            elif size[0] == "-":
                return Inconsistency.INVALID_LEVEL
            else:
                if (size[-1] == "0" or size[-1] == ".") and "." in size:
                    level = BookLevel(level.price, exact.canon(size))
                if here:
                    held[at] = level
                else:
                    keys.insert(at, key)
                    held.insert(at, level)
        return problem

    def best(self) -> BookLevel | None:
        levels = self.levels
        return levels[-1] if levels else None

    def top(self, depth: int) -> list[BookLevel]:
        """Best-first levels, canonical text (this is an edge: storage and API read it).

        Runs for every stored book snapshot; the levels are stored canonical,
        so this is a slice.
        """
        return self.levels[: -depth - 1 : -1] if depth > 0 else []

    def size_at(self, price: str) -> str:
        key = price_key(price)
        if key is None:
            return "0"
        key *= self._sign
        keys = self.keys
        at = bisect_left(keys, key)
        return self.levels[at].size if at < len(keys) and keys[at] == key else "0"


def _compiled_load(side: _Side, levels: list[BookLevel]) -> bool:
    """:meth:`_Side.load` with the per-level loop in C."""
    loaded = _kernel.load(side, levels)
    if loaded is None:
        side.clear()
        return False
    side._fill(loaded)
    return True


def _apply_sides(
    bids: _Side,
    asks: _Side,
    bid_changes: list[BookLevel],
    ask_changes: list[BookLevel],
    tolerate_unknown: bool,
) -> Inconsistency | None:
    """Both sides' changes of one delta, then the book's one problem, if any.

    Both sides are applied whatever the first reports (the delta is in the book
    either way); an invalid level outranks an unknown removal, which outranks
    (unless tolerated) a crossed book. One call per delta for the kernel.
    """
    problems = (bids.apply(bid_changes), asks.apply(ask_changes))
    if Inconsistency.INVALID_LEVEL in problems:
        return Inconsistency.INVALID_LEVEL
    if Inconsistency.UNKNOWN_LEVEL in problems and not tolerate_unknown:
        return Inconsistency.UNKNOWN_LEVEL
    return Inconsistency.CROSSED if _crossed(bids, asks) else None


def _crossed(bids: _Side, asks: _Side) -> bool:
    """Best bid at or above best ask (ask keys are the negated prices)."""
    bid, ask = bids.keys, asks.keys
    return bool(bid and ask and bid[-1] >= -ask[-1])


if COMPILED:
    _kernel.setup(
        _KEYS,
        _SIZES,
        exact._CHECKED,
        price_key,
        _size,
        exact.checked,
        exact.canon,
        BookLevel,
        Inconsistency.UNKNOWN_LEVEL,
        Inconsistency.INVALID_LEVEL,
        Inconsistency.CROSSED,
    )
_PURE: Final = os.environ.get("VENUEFEED_PURE_PYTHON", "") not in ("", "0")
KERNEL: Final[Literal["c", "python"]] = "c" if COMPILED and not _PURE else "python"
"""Which implementation runs the book's per-frame loops."""
_apply: Final[Callable[[_Side, list[BookLevel]], Inconsistency | None]] = (
    _kernel.apply if KERNEL == "c" else _Side.apply
)
_load: Final[Callable[[_Side, list[BookLevel]], bool]] = (
    _compiled_load if KERNEL == "c" else _Side.load
)
_apply_both: Final[
    Callable[[_Side, _Side, list[BookLevel], list[BookLevel], bool], Inconsistency | None]
] = _kernel.apply_sides if KERNEL == "c" else _apply_sides


class OrderBook:
    """The local L2 book of one instrument."""

    __slots__ = (
        "_asks",
        "_bids",
        "checksum",
        "instrument",
        "sequence",
        "state",
        "tolerate_unknown_removals",
        "ts_recv",
        "ts_venue",
        "venue",
    )

    def __init__(
        self, venue: str, instrument: str, *, tolerate_unknown_removals: bool = False
    ) -> None:
        self.venue = venue
        self.instrument = instrument
        # Venues whose snapshots are depth-limited (Binance) legitimately remove
        # levels beyond the snapshot we hold; for them that is not an inconsistency.
        self.tolerate_unknown_removals = tolerate_unknown_removals
        self._bids = _Side(descending=True)
        self._asks = _Side(descending=False)
        self.sequence: int | None = None
        self.checksum: str | None = None
        self.ts_venue: int | None = None
        self.ts_recv = 0
        self.state = SyncState.SYNCING

    # -- updates -----------------------------------------------------------

    def load_snapshot(self, snap: BookSnapshot) -> Inconsistency | None:
        """Replace the book with a snapshot; a crossed or invalid one is reported, not kept live."""
        valid = _load(self._bids, snap.bids) & _load(self._asks, snap.asks)
        self.sequence = snap.sequence
        self.checksum = snap.checksum
        self.ts_venue = snap.ts_venue
        self.ts_recv = snap.ts_recv
        if not valid:
            return self._fail(Inconsistency.INVALID_LEVEL)
        if self.is_crossed():
            return self._fail(Inconsistency.CROSSED)
        self.state = SyncState.LIVE
        return None

    def apply_delta(self, delta: BookDelta) -> Inconsistency | None:
        """Apply changed levels, checking sequence continuity when the venue has one.

        A delta wholly older than the book (``sequence <= book.sequence``) is
        ignored, as the venues' documented procedures say. A delta that starts
        beyond ``book.sequence + 1`` is a gap.
        """
        if self.state in _WITHOUT_SNAPSHOT:
            return Inconsistency.NO_SNAPSHOT
        seq = delta.sequence
        if seq is not None and self.sequence is not None:
            if seq <= self.sequence:
                return None
            first = delta.first_sequence if delta.first_sequence is not None else seq
            if first > self.sequence + 1:
                return self._fail(Inconsistency.GAP)
        problem = _apply_both(
            self._bids, self._asks, delta.bids, delta.asks, self.tolerate_unknown_removals
        )
        if seq is not None:
            self.sequence = seq
        if delta.checksum is not None:
            self.checksum = delta.checksum
        self.ts_venue = delta.ts_venue
        self.ts_recv = delta.ts_recv
        return None if problem is None else self._fail(problem)

    def add(self, side: BookSide, price: str, change: str) -> str | Inconsistency:
        """Add a signed increment to a level (Kalshi deltas); returns the new absolute size."""
        book_side = self._bids if side == "bid" else self._asks
        if price_key(price) is None or exact.checked(change) is None:
            return self._fail(Inconsistency.INVALID_LEVEL)
        size = exact.add(book_side.size_at(price), exact.canon(change))
        if size.startswith("-"):
            return self._fail(Inconsistency.NEGATIVE_SIZE)
        problem = _apply(book_side, [BookLevel(exact.canon(price), size)])
        if problem is Inconsistency.INVALID_LEVEL:
            return self._fail(problem)
        return size

    def invalidate(self, reason: Inconsistency) -> Inconsistency:
        """Mark the book untrustworthy (e.g. a checksum audit failed) until resnapshot."""
        return self._fail(reason)

    def _fail(self, reason: Inconsistency) -> Inconsistency:
        self.state = SyncState.RESYNCING
        return reason

    # -- queries -----------------------------------------------------------

    def best_prices(self) -> tuple[float | None, float | None]:
        """Best bid and ask as float keys: cheap checks against a venue's top of book.

        Read straight from the keys (bid keys are the prices, ask keys their
        negations): Polymarket asks for it after every delta.
        """
        bids, asks = self._bids.keys, self._asks.keys
        return (bids[-1] if bids else None), (-asks[-1] if asks else None)

    def best_bid(self) -> BookLevel | None:
        return self._bids.best()

    def best_ask(self) -> BookLevel | None:
        return self._asks.best()

    def is_crossed(self) -> bool:
        return _crossed(self._bids, self._asks)

    def mid(self) -> Decimal | None:
        """Exact mid price, or None when a side is empty (built at the edge, as Decimal)."""
        bid, ask = self.best_bid(), self.best_ask()
        if bid is None or ask is None:
            return None
        return (Decimal(bid.price) + Decimal(ask.price)) / 2

    def bids(self, depth: int | None = None) -> list[BookLevel]:
        """Bid levels best-first (descending price)."""
        return self._bids.top(depth if depth is not None else len(self._bids.keys))

    def asks(self, depth: int | None = None) -> list[BookLevel]:
        """Ask levels best-first (ascending price)."""
        return self._asks.top(depth if depth is not None else len(self._asks.keys))

    def size_at(self, side: BookSide, price: str) -> str:
        return (self._bids if side == "bid" else self._asks).size_at(price)

    def depth(self) -> tuple[int, int]:
        return len(self._bids.keys), len(self._asks.keys)

    def snapshot(self, depth: int | None = None) -> BookSnapshot:
        """The book's current top-N state as a canonical snapshot event."""
        return BookSnapshot(
            venue=self.venue,
            instrument=self.instrument,
            ts_venue=self.ts_venue,
            ts_recv=self.ts_recv,
            bids=self.bids(depth),
            asks=self.asks(depth),
            sequence=self.sequence,
            checksum=self.checksum,
        )


class Books:
    """All books of one venue, keyed by instrument: routes snapshot/delta events."""

    __slots__ = ("_books", "venue")

    def __init__(self, venue: str) -> None:
        self.venue = venue
        self._books: dict[str, OrderBook] = {}

    def get(self, instrument: str) -> OrderBook:
        book = self._books.get(instrument)
        if book is None:
            book = self._books[instrument] = OrderBook(self.venue, instrument)
        return book

    def find(self, instrument: str) -> OrderBook | None:
        return self._books.get(instrument)

    def apply(self, event: BookSnapshot | BookDelta) -> Inconsistency | None:
        book = self.get(event.instrument)
        if isinstance(event, BookSnapshot):
            return book.load_snapshot(event)
        return book.apply_delta(event)

    def drop(self, instrument: str) -> None:
        self._books.pop(instrument, None)

    def __iter__(self) -> Iterator[OrderBook]:
        return iter(self._books.values())

    def __len__(self) -> int:
        return len(self._books)
