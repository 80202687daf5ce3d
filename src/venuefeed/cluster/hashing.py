"""Which shard an instrument is in, and which worker owns a shard: rendezvous hashing.

An instrument's shard never changes (a stable hash of venue and instrument,
modulo the configured shard count), so a shard is a fixed set of instruments
and its lease, fences and completeness mark keep meaning the same thing across
restarts. A shard's owner is the live member with the highest hash weight for
it (highest random weight): adding a member moves only the shards the new
member now wins -- about 1/N of them -- and removing one moves only its own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable

__all__ = ["assign", "owner_of", "shard_of"]


def _weight(*parts: str) -> int:
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def shard_of(venue: str, instrument: str, shards: int) -> int:
    """The shard (``0 .. shards-1``) that holds ``instrument`` of ``venue``."""
    return _weight(venue, instrument) % shards


def owner_of(venue: str, shard: int, members: Collection[str]) -> str | None:
    """The member that should own ``shard`` of ``venue`` (None without members)."""
    if not members:
        return None
    key = f"{venue}.{shard}"
    return max(members, key=lambda member: (_weight(key, member), member))


def assign(venue: str, instruments: Iterable[str], shards: int) -> dict[int, list[str]]:
    """Instruments grouped by shard (every shard present, possibly empty), each sorted."""
    out: dict[int, list[str]] = {n: [] for n in range(shards)}
    for instrument in instruments:
        out[shard_of(venue, instrument, shards)].append(instrument)
    for members in out.values():
        members.sort()
    return out
