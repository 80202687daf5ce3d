"""Mutation fuzzer for every venue's parsers and the code that consumes them.

``make fuzz`` (``python -m venuefeed.testing.fuzz``) feeds seeded mutations of
the recorded captures (:mod:`.mutate`) through every target of every venue --
each WebSocket frame entry point, each REST page parser, and each venue's
per-frame consumer with its books (:mod:`.entries`) -- and sorts every input
into one outcome:

* ``accepted``: events came out, and every one keeps the invariants
  (:mod:`.invariants`);
* ``rejected``: no event, and the input was counted as a rejection (by reason);
* ``ignored``: no event and no rejection (a heartbeat, an acknowledgement);
* ``escaped``: an exception left the parser or the consumer -- a bug;
* ``invalid``: an event broke an invariant -- a bug.

It prints counts per venue, target and outcome, the rejection reasons, and
every distinct escape site and invariant with a reproducer, and exits 1 if
anything escaped or was accepted invalid. Input ``i`` of a target is a pure
function of ``(seed, target, i)``: ``--replay polymarket:frame:1234`` prints it.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from venuefeed.book import OrderBook
from venuefeed.testing.invariants import book_violations, violations
from venuefeed.testing.mutate import mutate, rng_for
from venuefeed.venues.rejects import Rejects

__all__ = ["Runner", "Seed", "Tally", "Target", "fuzz", "generate", "main"]

_UNMUTATED = 0.05
"""Share of inputs that are the seed itself: keeps consumers' books live, so
mutated deltas meet real books."""


@dataclass(frozen=True)
class Seed:
    data: bytes
    ts_recv: int
    args: Mapping[str, Any] = field(default_factory=dict)


class Runner(Protocol):
    """One target's code under test; may keep state (books) from input to input."""

    rejects: Rejects

    def run(self, data: bytes, ts_recv: int, args: Mapping[str, Any]) -> list[object]:
        """Feed one input; return the canonical events it produced (to be checked)."""
        ...

    def books(self) -> Iterable[OrderBook]:
        """The books the target keeps (checked after every input)."""
        ...


@dataclass(frozen=True)
class Target:
    venue: str
    entry: str
    seeds: Sequence[Seed]
    make: Callable[[], Runner]
    history: bool = False
    """A REST history page: venue times have no past limit."""

    @property
    def name(self) -> str:
        return f"{self.venue}:{self.entry}"


@dataclass
class Tally:
    """What happened to one target's inputs."""

    target: Target
    mutated: int = 0
    """Inputs that were mutations (the rest are the seeds themselves, see ``_UNMUTATED``)."""
    outcomes: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    escapes: dict[str, tuple[int, int, str]] = field(default_factory=dict)
    """site -> (count, first input index, message)."""
    invalid: dict[str, tuple[int, int, str]] = field(default_factory=dict)
    """invariant -> (count, first input index, event)."""

    @property
    def inputs(self) -> int:
        return sum(self.outcomes.values())

    @property
    def failures(self) -> int:
        return self.outcomes["escaped"] + self.outcomes["invalid"]


def generate(target: Target, seed: int, index: int) -> tuple[bytes, Seed, bool]:
    """Input ``index`` of ``target`` and whether it is a mutation: a pure function
    of the arguments."""
    rng = rng_for(seed, target.name, index)
    base = rng.choice(list(target.seeds))
    if rng.random() < _UNMUTATED:
        return base.data, base, False
    return mutate(rng, base.data), base, True


def _site(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/venuefeed/" in f.filename and "/testing/" not in f.filename]
    chosen = ours or list(frames)
    where = "?"
    if chosen:
        frame = chosen[-1]
        where = f"{frame.filename.rsplit('/venuefeed/', 1)[-1]}:{frame.lineno}"
    return f"{type(exc).__name__} at {where}"


def _note(table: dict[str, tuple[int, int, str]], key: str, index: int, text: str) -> None:
    count, first, example = table.get(key, (0, index, text))
    table[key] = (count + 1, first, example)


def _one(runner: Runner, target: Target, data: bytes, base: Seed, index: int, tally: Tally) -> None:
    before = dict(runner.rejects.counts)
    window = runner.rejects.window
    bounds = window.history(base.ts_recv) if target.history else window.live(base.ts_recv)
    try:
        events = runner.run(data, base.ts_recv, base.args)
        problems = [(p, e) for e in events for p in violations(e, bounds)]
        problems += [(p, None) for p in book_violations(runner.books())]
    except Exception as exc:  # the point of the exercise: nothing may escape
        tally.outcomes["escaped"] += 1
        _note(tally.escapes, _site(exc), index, f"{exc!r}"[:300])
        return
    after = runner.rejects.counts
    new = {r: n - before.get(r, 0) for r, n in after.items() if n != before.get(r, 0)}
    tally.reasons.update(new)
    if "parser_bug" in new:  # caught at an item boundary, but a bug all the same
        tally.outcomes["escaped"] += 1
        _note(tally.escapes, "parser_bug (caught; traceback in the log)", index, repr(data[:120]))
    elif problems:
        tally.outcomes["invalid"] += 1
        problem, event = problems[0]
        kind = problem.split(" ", 1)[0] if " " in problem else problem
        _note(tally.invalid, f"{type(event).__name__}: {kind}", index, f"{problem}; {event!r}")
    elif events:
        tally.outcomes["accepted"] += 1
    elif new:
        tally.outcomes["rejected"] += 1
    else:
        tally.outcomes["ignored"] += 1


def fuzz(
    targets: Sequence[Target],
    frames: int,
    seed: int = 1,
    seconds: float | None = None,
    chunk: int = 500,
) -> list[Tally]:
    """Feed at least ``frames`` mutated inputs, spread evenly over ``targets``
    (or stop when ``seconds`` have passed)."""
    quota = -(-frames // max(1, len(targets)))
    runners = {t.name: t.make() for t in targets}
    tallies = {t.name: Tally(t) for t in targets}
    index = dict.fromkeys(runners, 0)
    deadline = time.monotonic() + seconds if seconds is not None else None
    while any(t.mutated < quota for t in tallies.values()):
        for target in targets:
            runner, tally = runners[target.name], tallies[target.name]
            stop = min(quota, tally.mutated + chunk)
            while tally.mutated < stop:
                data, base, mutated = generate(target, seed, index[target.name])
                _one(runner, target, data, base, index[target.name], tally)
                tally.mutated += mutated
                index[target.name] += 1
        if deadline is not None and time.monotonic() > deadline:
            break
    return list(tallies.values())


def report(tallies: Sequence[Tally], seed: int, elapsed: float, out: Any = sys.stdout) -> int:
    """Print the counts; return the number of inputs that escaped or were accepted invalid."""
    cols = ("accepted", "rejected", "ignored", "escaped", "invalid")
    head = f"{'target':<28}{'inputs':>10}{'mutated':>10}" + "".join(f"{c:>10}" for c in cols)
    print(head, file=out)
    venues: dict[str, Counter[str]] = {}
    for t in tallies:
        row = "".join(f"{t.outcomes[c]:>10}" for c in cols)
        print(f"{t.target.name:<28}{t.inputs:>10}{t.mutated:>10}{row}", file=out)
        venues.setdefault(t.target.venue, Counter()).update(t.outcomes, mutated=t.mutated)
    print(file=out)
    for venue, counts in venues.items():
        total = sum(counts[c] for c in cols)
        row = "".join(f"{counts[c]:>10}" for c in cols)
        print(f"{venue + ' (all targets)':<28}{total:>10}{counts['mutated']:>10}{row}", file=out)
    total_inputs = sum(t.inputs for t in tallies)
    total_mutated = sum(t.mutated for t in tallies)
    failures = sum(t.failures for t in tallies)
    print("\nrejected by reason (counted rejections, several per input possible):", file=out)
    for venue in venues:
        reasons: Counter[str] = Counter()
        for t in tallies:
            if t.target.venue == venue:
                reasons.update(t.reasons)
        shown = ", ".join(f"{r} {n}" for r, n in reasons.most_common())
        print(f"  {venue}: {shown or '-'}", file=out)
    sites = [(t, site, v) for t in tallies for site, v in t.escapes.items()]
    kinds = [(t, kind, v) for t in tallies for kind, v in t.invalid.items()]
    if sites:
        print(f"\nescaped exceptions at {len(sites)} site(s):", file=out)
        for t, site, (count, first, example) in sorted(sites, key=lambda x: -x[2][0]):
            print(f"  {count:>7}  {t.target.name:<24} {site}", file=out)
            print(f"           e.g. --replay {t.target.name}:{first}  {example[:160]}", file=out)
    if kinds:
        print(f"\naccepted invalid values, {len(kinds)} kind(s):", file=out)
        for t, kind, (count, first, example) in sorted(kinds, key=lambda x: -x[2][0]):
            print(f"  {count:>7}  {t.target.name:<24} {kind}", file=out)
            print(f"           e.g. --replay {t.target.name}:{first}  {example[:200]}", file=out)
    rate = total_inputs / elapsed if elapsed else 0.0
    print(
        f"\n{total_inputs} inputs ({total_mutated} mutated), seed {seed}, {elapsed:.1f} s "
        f"({rate:,.0f}/s): {failures} escaped or accepted invalid",
        file=out,
    )
    return failures


def main(argv: Sequence[str] | None = None) -> int:
    from venuefeed.log import configure
    from venuefeed.testing.entries import targets as venue_targets

    parser = argparse.ArgumentParser(prog="python -m venuefeed.testing.fuzz", description=__doc__)
    parser.add_argument("--captures", type=Path, default=Path("tests/captures"))
    parser.add_argument("--frames", type=int, default=1_000_000, help="inputs in total")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=None, help="stop after this long")
    parser.add_argument("--venue", action="append", help="only these venues (repeatable)")
    parser.add_argument("--replay", help="print input <venue>:<entry>:<index> and its outcome")
    args = parser.parse_args(argv)
    configure(level="CRITICAL")  # rejections log their first examples; the tally says it all
    chosen = [t for t in venue_targets(args.captures) if not args.venue or t.venue in args.venue]
    if args.replay:
        name, _, index = args.replay.rpartition(":")
        target = next(t for t in chosen if t.name == name)
        data, base, _ = generate(target, args.seed, int(index))
        print(f"input ({len(data)} bytes, ts_recv {base.ts_recv}, args {dict(base.args)}):")
        print(repr(data[:2000]))
        tally = Tally(target)
        _one(target.make(), target, data, base, int(index), tally)
        print(dict(tally.outcomes), dict(tally.reasons), tally.escapes, tally.invalid)
        return 0
    started = time.monotonic()
    tallies = fuzz(chosen, args.frames, args.seed, args.seconds)
    failures = report(tallies, args.seed, time.monotonic() - started)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
