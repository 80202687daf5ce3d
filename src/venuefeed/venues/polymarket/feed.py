"""The Polymarket market channel as a state machine: frames in, checked books and commands out.

No sockets and no clock here (venue state is sans-IO): the generic pump
(:class:`~venuefeed.venues.pump.FeedStream`) hands over batches of frames,
REST answers and timer ticks, and carries out the :class:`Fetch` commands this
feed asks for. What Polymarket needs:

* **Books** per token from ``book`` snapshots and ``price_change`` levels
  (absolute sizes). The venue has no sequence numbers, so consistency comes
  from elsewhere: a crossed book, the removal of a level we do not hold, a
  refused update (:class:`parse.Lost`) or the venue's own ``best_bid``/
  ``best_ask`` disagreeing with ours marks *that token* ``resyncing``, is
  counted, and asks for its REST snapshot alone. Snapshots and changes older
  than the newest snapshot are a reordered frame and skipped.
* **Tick size changes** void the book (every level may be re-priced): its
  changes are ignored until a fresh snapshot.
* **Audits.** REST snapshots are checked against the venue's ``hash`` with
  the official client's algorithm; the server's algorithm has changed before,
  so a mismatch is only counted and re-fetched at most once per interval --
  data is never dropped and nothing loops. Every ``audit_interval_seconds``
  live books are compared with REST snapshots round-robin; a real divergence
  is a healed ``DataGap`` and the REST book is loaded.
* **Unknown markets.** Tokens seen without known metadata are looked up on
  Gamma, debounced and batched; ``new_market`` frames announce markets
  directly. Both come out in :attr:`Output.markets`, so nothing dies silently
  and the service stores them.

After a reconnect the resubscription asks for the initial dump, so books heal
from fresh snapshots; the disconnect gap and its trades are the pump's and the
healer's job. A token the liveness check finds silent and wrong is resubscribed
and reloaded from REST (:meth:`PolymarketFeed.resync`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final

from venuefeed import metrics
from venuefeed.book import Books, Inconsistency, OrderBook, SyncState, price_key
from venuefeed.models import (
    BookDelta,
    BookSnapshot,
    BookState,
    DataGap,
    Event,
    Market,
    MarketStatusChange,
    PriceUpdate,
    TopOfBook,
    Trade,
)
from venuefeed.transport import Frame
from venuefeed.venues.base import ALL_CHANNELS, Channel
from venuefeed.venues.feed import Command, Fetch, Output, Resubscribe, VenueFeed
from venuefeed.venues.polymarket import parse
from venuefeed.venues.polymarket.options import Options
from venuefeed.venues.polymarket.parse import Change, parse_frame
from venuefeed.venues.polymarket.protocol import BookSummary
from venuefeed.venues.rejects import Rejects

__all__ = ["AUDIT", "BOOKS", "MARKETS", "HashAudit", "PolymarketFeed", "audit_verdict"]

BOOKS: Final = "books"
"""Fetch kind: REST snapshots (``POST /books``) of tokens whose book must be rebuilt."""
AUDIT: Final = "audit"
"""Fetch kind: REST snapshots to compare live books with (same endpoint, other purpose)."""
MARKETS: Final = "markets"
"""Fetch kind: Gamma markets of unknown tokens."""

_VENUE: Final = parse.VENUE
_S: Final = 1_000_000_000
_REMEMBER_MAX: Final = 100_000
"""Tokens remembered as asked or re-fetched (everything is bounded)."""


class HashAudit:
    """Checks REST book hashes; a mismatch is counted and re-fetched at most once per interval."""

    def __init__(self, interval_seconds: float) -> None:
        self.interval_ns = int(interval_seconds * _S)
        self.mismatches = 0
        self._last_refetch: dict[str, int] = {}

    def check(self, summary: BookSummary, now: int) -> bool:
        """True when ``summary`` (received at ``now`` ns) should be fetched again."""
        if not summary.hash or parse.book_hash(summary) == summary.hash:
            return False
        self.mismatches += 1
        metrics.BOOK_INCONSISTENCIES.labels(_VENUE, "rest_hash_mismatch").inc()
        last = self._last_refetch.get(summary.asset_id)
        if last is not None and now - last < self.interval_ns:
            return False
        if len(self._last_refetch) >= _REMEMBER_MAX:
            self._last_refetch.clear()
        self._last_refetch[summary.asset_id] = now
        return True


def _older(ts: int | None, than: int | None) -> bool:
    """Whether a snapshot is known to be older than the book; an unknown time never is."""
    return ts is not None and than is not None and ts < than


def audit_verdict(book: OrderBook, rest: BookSnapshot, suspect_ts: int | None) -> str:
    """Compare a live book with a REST snapshot of the same token.

    ``"match"``/``"mismatch"`` when both describe the same venue moment;
    ``"wait"`` when they do not (a change in flight either way). A REST book
    newer than ours *twice at the same timestamp* (``suspect_ts``) means we
    missed its last change: ``"mismatch"``. Polymarket times every book; an
    untimed one on either side cannot be ordered, so it waits.
    """
    if rest.ts_venue is None or book.ts_venue is None:
        return "wait"
    if rest.ts_venue == book.ts_venue:
        same = book.bids() == rest.bids and book.asks() == rest.asks
        return "match" if same else "mismatch"
    if rest.ts_venue > book.ts_venue and suspect_ts == rest.ts_venue:
        return "mismatch"
    return "wait"


class PolymarketFeed(VenueFeed):
    """Books, checks, audits and market look-ups for every subscribed token."""

    venue = _VENUE

    def __init__(
        self,
        options: Options | None = None,
        channels: frozenset[Channel] = ALL_CHANNELS,
        rejects: Rejects | None = None,
        markets: dict[str, Market] | None = None,
    ) -> None:
        super().__init__()
        self.options = options = options or Options()
        self.rejects = rejects or Rejects(_VENUE)
        self.books = Books(_VENUE)
        self.markets: dict[str, Market] = markets if markets is not None else {}
        """Known market metadata by token id (the adapter's own map when it is passed in)."""
        self.hash_audit = HashAudit(options.hash_recheck_interval_seconds)
        self.audit_mismatches = 0
        self.resyncs = 0
        self.timer_interval = min(
            options.discovery_debounce_seconds,
            options.resync_retry_interval_seconds,
            options.audit_interval_seconds,
        )
        self._books_on = "books" in channels
        self._trades_on = "trades" in channels
        self._quotes_on = "quotes" in channels
        self._status_on = "status" in channels
        self._subscribed: set[str] = set()
        self._snap_ts: dict[str, int] = {}
        self._tick_hold: set[str] = set()
        self._resync: dict[str, None] = {}
        """Tokens with a REST snapshot asked for and not yet loaded."""
        self._retry: dict[str, None] = {}
        """Resyncs whose fetch failed: asked again after ``resync_retry_interval_seconds``."""
        self._recheck: dict[str, None] = {}
        self._suspect: dict[str, int] = {}
        self._audit_cursor = 0
        self._unknown: dict[str, None] = {}
        self._asked: set[str] = set()
        """Tokens already looked up on Gamma (found or not): never asked twice."""
        self._learned: list[Market] = []
        self._wanted: dict[str, None] = {}
        """Tokens to resync, collected while one input is handled, asked in one fetch."""
        self._due: dict[str, int] = {}
        self._m_resync = metrics.BOOK_RESYNCS.labels(_VENUE)

    # -- subscriptions -----------------------------------------------------------------

    def register(self, markets: Iterable[Market]) -> None:
        """Make market metadata known (discovery results), so no Gamma look-up is needed."""
        for market in markets:
            for token in market.instruments:
                self.markets[token] = market

    def on_subscribed(self, instruments: Sequence[str]) -> Output:
        self._subscribed.update(instruments)
        return Output([], [])

    def on_unsubscribed(self, instruments: Sequence[str]) -> Output:
        for token in instruments:
            self._subscribed.discard(token)
            self.books.drop(token)
            self._snap_ts.pop(token, None)
            self._tick_hold.discard(token)
            self._resync.pop(token, None)
            self._retry.pop(token, None)
            self._suspect.pop(token, None)
        return Output([], [])

    def book(self, instrument: str) -> OrderBook | None:
        return self.books.find(instrument)

    # -- frames (hot path) ---------------------------------------------------------------

    def on_frames(self, frames: Sequence[Frame]) -> Output:
        out: list[Event] = []
        for frame in frames:
            self._on_frame(frame.data, frame.ts_recv, out)
        return self._output(out)

    def _on_frame(self, data: bytes | str, ts_recv: int, out: list[Event]) -> None:
        markets = self.markets
        for item in parse_frame(data, ts_recv, self.rejects):
            if type(item) is Change:  # most items: tested first, narrowed without an assert
                delta = item.delta
                self._on_delta(delta, item.best_bid, item.best_ask, out)
                if delta.instrument not in markets:
                    self._note_unknown(delta.instrument)
                continue
            kind = type(item)
            if kind is BookSnapshot:
                assert isinstance(item, BookSnapshot)
                self._on_snapshot(item, out)
                if item.instrument not in markets:
                    self._note_unknown(item.instrument)
            elif kind is Trade or kind is PriceUpdate:
                assert isinstance(item, Trade | PriceUpdate)
                if self._trades_on:
                    out.append(item)
                if item.instrument not in markets:
                    self._note_unknown(item.instrument)
            elif kind is TopOfBook:
                assert isinstance(item, TopOfBook)
                if self._quotes_on:
                    out.append(item)
            elif kind is parse.TickSize:
                assert isinstance(item, parse.TickSize)
                self._on_tick_size(item.status, out)
            elif kind is MarketStatusChange:
                assert isinstance(item, MarketStatusChange)
                if self._status_on:
                    out.append(item)
            elif kind is Market:
                assert isinstance(item, Market)
                self._learn([item])
            elif kind is parse.Lost:
                assert isinstance(item, parse.Lost)
                self._on_lost(item, ts_recv, out)

    def _on_lost(self, lost: parse.Lost, ts_recv: int, out: list[Event]) -> None:
        """An update of this token was refused: its book missed it, so reload it."""
        token = lost.instrument
        if token not in self._subscribed or token in self._tick_hold:
            return  # not ours, or void until its fresh snapshot anyway
        book = self.books.find(token)
        if book is not None and book.state is SyncState.LIVE:
            book.invalidate(lost.reason)
        self._fail(token, lost.reason, ts_recv, out)

    def _on_delta(
        self, delta: BookDelta, best_bid: str | None, best_ask: str | None, out: list[Event]
    ) -> None:
        token = delta.instrument
        if token in self._tick_hold or token not in self._subscribed:
            return
        book = self.books.find(token)
        if book is None or book.state is not SyncState.LIVE:
            return  # no snapshot yet, or a resync is already on its way
        if delta.ts_venue < self._snap_ts.get(token, 0):
            return  # older than the snapshot we hold: already in it
        problem = book.apply_delta(delta)
        if problem is None and (best_bid is not None or best_ask is not None):
            # The venue's top against ours. Nearly always equal, and for texts seen
            # before that is two dict hits; anything else goes to the full check.
            bid, ask = book.best_prices()
            if (best_bid is not None and _BID_KEYS.get(best_bid, _UNSEEN) != bid) or (
                best_ask is not None and _ASK_KEYS.get(best_ask, _UNSEEN) != ask
            ):
                problem = _top_problem(book, best_bid, best_ask)
                if problem is not None:
                    book.invalidate(problem)
        if problem is not None:
            self._fail(token, problem, delta.ts_recv, out)
        elif self._books_on:
            out.append(delta)

    def _on_snapshot(self, snap: BookSnapshot, out: list[Event], *, force: bool = False) -> None:
        token = snap.instrument
        if token not in self._subscribed:
            return
        book = self.books.get(token)
        if not force and book.state is SyncState.LIVE and _older(snap.ts_venue, book.ts_venue):
            return  # a reordered, older snapshot must not roll the book back
        previous = book.state
        problem = book.load_snapshot(snap)
        if snap.ts_venue is None:
            self._snap_ts.pop(token, None)
        else:
            self._snap_ts[token] = snap.ts_venue
        self._tick_hold.discard(token)
        self._resync.pop(token, None)
        self._retry.pop(token, None)
        self._suspect.pop(token, None)
        if problem is not None:
            self._fail(token, problem, snap.ts_recv, out)
            return
        if self._books_on:
            out.append(snap)
            if previous is not SyncState.LIVE:
                out.append(_state(token, snap.ts_recv, SyncState.LIVE, "snapshot"))

    def _on_tick_size(self, status: MarketStatusChange, out: list[Event]) -> None:
        token, ts_recv = status.instrument, status.ts_recv
        if self._status_on:
            out.append(status)
        if token not in self._subscribed:
            return
        # Every resting level may be re-priced: the book is void until a fresh snapshot.
        self.books.drop(token)
        self._tick_hold.add(token)
        if self._books_on:
            out.append(_state(token, ts_recv, SyncState.RESYNCING, "tick_size_change"))
        self._request_resync(token)

    def _fail(self, token: str, problem: Inconsistency, ts_recv: int, out: list[Event]) -> None:
        """That token's book is wrong: count why, say so, and rebuild it from REST."""
        metrics.BOOK_INCONSISTENCIES.labels(_VENUE, problem.value).inc()
        if self._books_on:
            out.append(_state(token, ts_recv, SyncState.RESYNCING, problem.value))
        self._request_resync(token)

    def _request_resync(self, token: str) -> None:
        if token not in self._resync:
            self._resync[token] = None
            self._wanted[token] = None

    def resync(self, instrument: str, ts_recv: int) -> Output:
        """A liveness check found this token silent and unlike REST.

        The venue's best-known failure is a subscription that stops delivering
        while the socket stays up, so the subscription is renewed (its initial
        dump is a fresh snapshot) *and* the REST book is asked for, in case the
        renewed one stays silent too.
        """
        if instrument not in self._subscribed:
            return Output([], [])
        out: list[Event] = []
        if instrument not in self._tick_hold:
            book = self.books.find(instrument)
            if book is not None and book.state is SyncState.LIVE:
                book.invalidate(Inconsistency.CHECKSUM)
            self._fail(instrument, Inconsistency.CHECKSUM, ts_recv, out)
        result = self._output(out)
        result.commands.append(Resubscribe((instrument,)))
        return result

    # -- REST answers ------------------------------------------------------------------

    def on_fetched(self, what: str, results: Sequence[Any], ts_recv: int) -> Output:
        out: list[Event] = []
        if what == BOOKS:
            for summary in results:
                if isinstance(summary, BookSummary) and summary.asset_id in self._resync:
                    self.resyncs += 1
                    self._m_resync.inc()
                    self._load_rest(summary, ts_recv, out)
        elif what == AUDIT:
            for summary in results:
                if isinstance(summary, BookSummary):
                    self._audit_one(summary, ts_recv, out)
        elif what == MARKETS:
            self._learn([m for m in results if isinstance(m, Market)])
        return self._output(out)

    def on_fetch_failed(self, what: str, keys: Sequence[str], error: str) -> Output:
        if what == BOOKS:
            self._retry.update((k, None) for k in keys if k in self._resync)
        elif what == MARKETS:
            self._asked.difference_update(keys)  # asked again when next seen
        return Output([], [])

    def _load_rest(self, summary: BookSummary, now: int, out: list[Event]) -> None:
        if self.hash_audit.check(summary, now):
            self._recheck[summary.asset_id] = None
        snap = parse.book_snapshot(summary, now, self.rejects)
        if snap is not None:
            self._on_snapshot(snap, out, force=True)

    def _audit_one(self, summary: BookSummary, now: int, out: list[Event]) -> None:
        token = summary.asset_id
        if self.hash_audit.check(summary, now):
            self._recheck[token] = None
        book = self.books.find(token)
        if book is None or book.state is not SyncState.LIVE:
            return
        rest = parse.book_snapshot(summary, now, self.rejects)
        if rest is None or rest.ts_venue is None or book.ts_venue is None:
            return  # refused, or untimed: neither can be ordered against the live book
        verdict = audit_verdict(book, rest, self._suspect.get(token))
        if verdict == "match":
            self._suspect.pop(token, None)
        elif verdict == "wait":
            if rest.ts_venue > book.ts_venue:
                self._suspect[token] = rest.ts_venue
        else:
            self.audit_mismatches += 1
            metrics.BOOK_INCONSISTENCIES.labels(_VENUE, Inconsistency.CHECKSUM.value).inc()
            if self._books_on:
                out.append(
                    DataGap(
                        venue=_VENUE,
                        instrument=token,
                        ts_venue=rest.ts_venue,
                        ts_recv=now,
                        cause="checksum_mismatch",
                        start=book.ts_venue,
                        end=rest.ts_venue,
                        detail="live book differs from REST snapshot; reloaded",
                        healed=True,
                    )
                )
            self._on_snapshot(rest, out, force=True)

    # -- timers --------------------------------------------------------------------------

    def on_timer(self, now: int) -> Output:
        """Debounced market look-ups, resync retries and audit rounds, each at its interval."""
        options = self.options
        commands: list[Command] = []
        if self._unknown and self._is_due("discovery", now, options.discovery_debounce_seconds):
            tokens = tuple(t for t in self._unknown if t not in self.markets)
            self._unknown.clear()
            if len(self._asked) >= _REMEMBER_MAX:
                self._asked.clear()
            self._asked.update(tokens)
            if tokens:
                commands.append(Fetch(MARKETS, tokens))
        if self._retry and self._is_due("retry", now, options.resync_retry_interval_seconds):
            commands.append(Fetch(BOOKS, tuple(self._retry)))
            self._retry.clear()
        if self._is_due("audit", now, options.audit_interval_seconds):
            commands.extend(self._audit_round())
        out = self._output([])
        out.commands.extend(commands)
        return out

    def _is_due(self, job: str, now: int, interval: float) -> bool:
        """True once per ``interval`` seconds per job (the first tick only starts the clock)."""
        last = self._due.setdefault(job, now)
        if now - last < int(interval * _S):
            return False
        self._due[job] = now
        return True

    def _audit_round(self) -> list[Command]:
        live: list[str] = []
        stuck: list[str] = []
        for book in self.books:
            if book.instrument in self._tick_hold:
                continue
            if book.state is SyncState.LIVE:
                live.append(book.instrument)
            elif book.state is SyncState.RESYNCING:
                stuck.append(book.instrument)
        commands: list[Command] = []
        # Snapshots the venue did not answer for (or tick holds): asked again, whatever is pending.
        again = tuple(dict.fromkeys([*stuck, *self._tick_hold]))
        if again:
            self._resync.update(dict.fromkeys(again))
            commands.append(Fetch(BOOKS, again))
        batch = self._next_audit_batch(live)
        rechecks = [t for t in self._recheck if t in self._subscribed]
        self._recheck.clear()
        if batch or rechecks:
            commands.append(Fetch(AUDIT, tuple(dict.fromkeys(batch + rechecks))))
        return commands

    def _next_audit_batch(self, live: list[str]) -> list[str]:
        if not live:
            return []
        size = min(self.options.audit_batch, len(live))
        start = self._audit_cursor % len(live)
        self._audit_cursor = start + size
        return [live[(start + i) % len(live)] for i in range(size)]

    # -- markets -------------------------------------------------------------------------

    def _note_unknown(self, token: str) -> None:
        if token not in self._asked and token not in self._unknown:
            self._unknown[token] = None

    def _learn(self, markets: list[Market]) -> None:
        self.register(markets)
        self._learned.extend(markets)

    def _output(self, events: list[Event]) -> Output:
        """``events`` plus the fetches and markets gathered while producing them."""
        if not self._wanted and not self._learned:  # nearly every batch
            return Output(events, [])
        commands: list[Command] = []
        if self._wanted:
            commands.append(Fetch(BOOKS, tuple(self._wanted)))
            self._wanted = {}
        learned: list[Market] = []
        if self._learned:
            learned, self._learned = self._learned, []
        return Output(events, commands, learned)


_TOP_KEYS_MAX: Final = 1 << 14
_BID_KEYS: dict[str, float | None] = {}
"""The venue's best-bid text -> the float key our book would hold for it (``None``: empty)."""
_ASK_KEYS: dict[str, float | None] = {}
"""The same for best-ask texts, where ``"1"`` also means an empty side."""
_UNSEEN: Final = object()


def _top_problem(
    book: OrderBook, best_bid: str | None, best_ask: str | None
) -> Inconsistency | None:
    """Our top of book against the venue's (``"0"``/empty means an empty side).

    Compared as float keys (exact for these prices): no canonical text is built
    on this per-change path. Each side's key is remembered by its text
    (bounded), which lets :meth:`PolymarketFeed._on_delta` settle the usual
    case, equal tops, without calling here.
    """
    ours_bid, ours_ask = book.best_prices()
    if best_bid is not None and _venue_key(best_bid, ("", "0"), _BID_KEYS) != ours_bid:
        return Inconsistency.TOP_MISMATCH
    if best_ask is not None and _venue_key(best_ask, ("", "0", "1"), _ASK_KEYS) != ours_ask:
        return Inconsistency.TOP_MISMATCH
    return None


def _venue_key(text: str, empty: tuple[str, ...], memo: dict[str, float | None]) -> float | None:
    """The float key of one side of the venue's top (``None`` for an empty side), remembered."""
    key = None if text in empty else price_key(text)
    if len(memo) >= _TOP_KEYS_MAX:
        memo.clear()
    memo[text] = key
    return key


def _state(token: str, ts_recv: int, state: SyncState, reason: str) -> BookState:
    return BookState(
        venue=_VENUE,
        instrument=token,
        ts_venue=0,
        ts_recv=ts_recv,
        state=state.value,
        reason=reason,
    )
