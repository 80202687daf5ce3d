"""Rendezvous hashing: a membership change moves only what it must (about 1/N)."""

from __future__ import annotations

from venuefeed.cluster.hashing import assign, owner_of, shard_of

SHARDS = 1024


def _owners(members: set[str]) -> dict[int, str | None]:
    return {n: owner_of("kalshi", n, members) for n in range(SHARDS)}


def test_a_new_member_takes_about_a_quarter_and_nothing_else_moves() -> None:
    before = _owners({"w1", "w2", "w3"})
    after = _owners({"w1", "w2", "w3", "w4"})
    moved = [n for n in range(SHARDS) if before[n] != after[n]]
    assert all(after[n] == "w4" for n in moved)  # only to the newcomer
    assert 0.20 < len(moved) / SHARDS < 0.30  # about 1/N with N = 4


def test_a_member_leaving_moves_only_its_own_shards() -> None:
    before = _owners({"w1", "w2", "w3"})
    after = _owners({"w1", "w3"})
    moved = {n for n in range(SHARDS) if before[n] != after[n]}
    assert moved == {n for n in range(SHARDS) if before[n] == "w2"}
    assert 0.25 < len(moved) / SHARDS < 0.42  # about 1/3


def test_instruments_keep_their_shard_and_spread_evenly() -> None:
    instruments = [f"KX-{n}" for n in range(8000)]
    groups = assign("kalshi", instruments, 16)
    assert sorted(i for g in groups.values() for i in g) == sorted(instruments)
    assert all(shard_of("kalshi", i, 16) == n for n, g in groups.items() for i in g)
    assert max(len(g) for g in groups.values()) < 1.25 * 8000 / 16
    assert owner_of("kalshi", 0, set()) is None
