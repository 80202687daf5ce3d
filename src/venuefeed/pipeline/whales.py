"""Whale watch: which wallets we follow, and which trades are whale trades.

The ``whales`` table is the source of truth, edited by ``venuefeed whales``
while the service runs; :class:`WhaleWatch` re-reads it periodically, so a
wallet added from the CLI is watched without a restart. A trade is a whale
trade when its maker or taker is a watched, enabled wallet, or when its
notional (price × size) reaches the configured threshold -- large trades by
wallets nobody listed yet are exactly the ones worth noticing. The threshold
depends on the venue and asset class (``whales.thresholds``): ten thousand is
a whale on a prediction market and noise on a Binance BTC pair.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from venuefeed import exact, schema
from venuefeed.config import load_yaml_file
from venuefeed.metrics import ACTIVE_WHALES, WHALE_TRADES
from venuefeed.models import Trade, WhaleTrade

__all__ = ["WhaleWatch", "format_whale_trade", "load_whale_file", "whale_event", "whale_store"]

_FIELDS = tuple(c.name for c in schema.WHALES.columns if c.name not in ("added_at", "updated_at"))
_BOOL_FIELDS = {"famous", "confirmed", "copying_enabled", "enabled"}
_SEED_KEYS = {f"is_{name}": name for name in _BOOL_FIELDS} | {"cluster": "cluster_name"}
"""The record keys of seed 001's ``FAMOUS_WHALES`` (``is_famous`` ...) and friendlier ones."""


@dataclass(slots=True)
class WhaleWatch:
    """Detects whale trades; refreshed from the store by the service."""

    threshold: Decimal
    thresholds: Mapping[str, Decimal] = field(default_factory=dict)
    """``venue`` or ``venue:SUFFIX`` (an asset class by quote currency) -> threshold."""
    addresses: frozenset[str] = frozenset()
    detected: int = 0
    _by_instrument: dict[tuple[str, str], Decimal] = field(default_factory=dict)

    def threshold_for(self, venue: str, instrument: str) -> Decimal:
        """The most specific configured threshold for this venue and instrument."""
        key = (venue, instrument)
        found = self._by_instrument.get(key)
        if found is None:
            best: tuple[int, Decimal] = (-1, self.threshold)
            for name, value in self.thresholds.items():
                where, _, suffix = name.partition(":")
                if where != venue or not instrument.upper().endswith(suffix.upper()):
                    continue
                if len(suffix) > best[0]:
                    best = (len(suffix), value)
            found = best[1]
            if len(self._by_instrument) < 100_000:
                self._by_instrument[key] = found
        return found

    def update(self, addresses: Iterable[str]) -> None:
        self.addresses = frozenset(a.lower() for a in addresses)
        ACTIVE_WHALES.set(len(self.addresses))

    def inspect(self, trade: Trade) -> WhaleTrade | None:
        trader = None
        for wallet in (trade.taker, trade.maker):
            if wallet is not None and wallet.lower() in self.addresses:
                trader = wallet.lower()
                break
        amount = Decimal(trade.price) * Decimal(trade.size)
        if trader is None and amount < self.threshold_for(trade.venue, trade.instrument):
            return None
        self.detected += 1
        known = trader is not None
        address = trader or (trade.taker or trade.maker or "unknown").lower()
        WHALE_TRADES.labels(address if known else "other", trade.side).inc()
        return WhaleTrade(
            venue=trade.venue, instrument=trade.instrument, ts_venue=trade.ts_venue,
            ts_recv=trade.ts_recv, trade_id=trade.trade_id, trader_address=address,
            side=trade.side, price=trade.price, size=trade.size,
            amount=exact.from_decimal(amount), market_id=trade.market_id, known_whale=known,
        )  # fmt: skip


def whale_event(w: WhaleTrade) -> dict[str, Any]:
    """The documented ``whale_trade`` event shape (bus topic ``whale_activity``, dashboard).

    ``{event_type, trade_id, trader_address, market_id, token_id, side, size,
    price, amount, timestamp, detected_at}`` -- timestamps in ns -- plus the
    venue and whether the wallet is a watched one.
    """
    return {
        "event_type": "whale_trade",
        "venue": w.venue,
        "trade_id": w.trade_id,
        "trader_address": w.trader_address,
        "market_id": w.market_id,
        "token_id": w.instrument,
        "side": w.side,
        "size": w.size,
        "price": w.price,
        "amount": w.amount,
        "timestamp": w.ts_venue,
        "detected_at": w.ts_recv,
        "known_whale": w.known_whale,
    }


def format_whale_trade(w: WhaleTrade, title: str | None = None) -> str:
    """The console line, as seed 001 shows it, with the venue and the market it traded.

    ``whale trade polymarket "Will X happen?" 0x1f2dd6… BUY 1000 @ 0.54 ($540.00)``
    """
    address = w.trader_address
    if address == "unknown":
        short = "(anonymous)"  # a WebSocket print: the venue does not say who traded
    else:
        short = address[:8] + "…" if len(address) > 10 else address
    amount = Decimal(w.amount).quantize(Decimal("0.01"))
    market = f'"{title}"' if title else (w.market_id or w.instrument)
    return (f"whale trade {w.venue} {market} {short} {w.side.upper()} {w.size} @ {w.price} "
            f"(${amount:,})")  # fmt: skip


TitleLookup = Callable[[str, str | None, str], "str | None"]
"""``(venue, market_id, instrument) -> title`` of the market, when known."""


class _WhaleStore:
    """The ``whales`` table in a SQLite database (CLI edits, service reads)."""

    def __init__(self, path: Path) -> None:
        from venuefeed.sinks.sqlite import migrate

        migrate(path)
        self.path = path

    def _conn(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30)
        conn.row_factory = sqlite3.Row
        return conn

    def upsert(self, address: str, **fields: Any) -> None:
        unknown = set(fields) - set(_FIELDS)
        if unknown:
            raise ValueError(f"unknown whale field(s): {', '.join(sorted(unknown))}")
        now = time.time_ns()
        row = {"address": address.lower(), **fields}
        for name in _BOOL_FIELDS & set(row):
            row[name] = bool(row[name])
        for name in ("estimated_pnl", "win_rate", "total_volume"):
            if row.get(name) is not None:
                row[name] = exact.validate(str(row[name]))
        cols = list(row)
        placeholders = ", ".join("?" for _ in cols)
        updates = ", ".join(f'"{c}" = excluded."{c}"' for c in cols if c != "address")
        sql = (
            f"INSERT INTO whales ({', '.join(cols)}, added_at, updated_at) "
            f"VALUES ({placeholders}, ?, ?) ON CONFLICT (address) DO UPDATE SET "
            + (updates + ", " if updates else "")
            + "updated_at = excluded.updated_at"
        )
        with self._conn() as conn:
            conn.execute(sql, (*row.values(), now, now))

    def set_enabled(self, address: str, enabled: bool) -> bool:
        with self._conn() as conn:
            cur = conn.execute(
                "UPDATE whales SET enabled = ?, updated_at = ? WHERE address = ?",
                (enabled, time.time_ns(), address.lower()),
            )
            return cur.rowcount > 0

    def all(self) -> list[dict[str, Any]]:
        with self._conn() as conn:
            return [dict(r) for r in conn.execute("SELECT * FROM whales ORDER BY address")]

    def enabled_addresses(self) -> list[str]:
        with self._conn() as conn:
            return [r[0] for r in conn.execute("SELECT address FROM whales WHERE enabled = 1")]


def whale_store(path: str | Path) -> _WhaleStore:
    return _WhaleStore(Path(path))


def load_whale_file(path: str | Path) -> list[dict[str, Any]]:
    """Read ``FILE.yaml``: a list of whales, or ``{whales: [...]}``; each needs ``address``."""
    data = load_yaml_file(Path(path), "whale file")  # bounded: an alias bomb is an error
    if isinstance(data, Mapping):
        data = data.get("whales")
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a list of whales (or a 'whales:' key)")
    entries: list[dict[str, Any]] = []
    for n, entry in enumerate(data, 1):
        if not isinstance(entry, Mapping) or not entry.get("address"):
            raise ValueError(f"{path}: entry {n} has no address")
        entries.append({_SEED_KEYS.get(str(k), str(k)): v for k, v in entry.items()})
    return entries
