"""The chaos table (text for people, JSON for machines) and the verdict."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from venuefeed.chaos.compare import VenueResult
from venuefeed.chaos.run import ScenarioResult

__all__ = ["as_json", "failures", "table"]

_HEAD = ("scenario", "store", "venue", "emitted", "stored", "missing", "pre-sub", "dup",
         "conn faults", "seq skips", "gaps det/healed", "books equal", "exits")  # fmt: skip


def _row(s: ScenarioResult, r: VenueResult) -> tuple[str, ...]:
    gaps = "n/a" if r.gaps_detected is None else f"{r.gaps_detected}/{r.gaps_healed}"
    books = "n/a" if not r.books_total else f"{r.books_equal}/{r.books_total}"
    exits = ",".join(str(c) for c in s.exit_codes) or "-"
    return (s.name, r.store, r.venue, str(r.emitted), str(r.stored), str(r.missing),
            str(r.missing_before_subscribe), str(r.duplicated), str(r.connection_faults),
            str(r.sequence_skips), gaps, books, exits)  # fmt: skip


def table(scenarios: Sequence[ScenarioResult]) -> str:
    rows: list[tuple[str, ...]] = [_HEAD]
    for s in scenarios:
        if s.skipped is not None or (s.error is not None and not s.results):
            rows.append((s.name, "-", "-", *["-"] * (len(_HEAD) - 3)))
        rows.extend(_row(s, r) for r in s.results)
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEAD))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
             for row in rows]  # fmt: skip
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for s in scenarios:
        lines.append("")
        lines.append(f"{s.name} ({s.seconds:.0f} s):")
        if s.skipped is not None:
            lines.append(f"  skipped: {s.skipped}")
            continue
        if s.error is not None:
            lines.append(f"  ERROR: {s.error}")
        lines.extend(f"  {note}" for note in s.notes)
        lines.append("  status during the run: " + (
            "unhealthy: " + "; ".join(s.unhealthy_seen) if s.unhealthy_seen else "always healthy"
        ))  # fmt: skip
        for r in s.results:
            detail = []
            if r.gap_causes:
                detail.append(
                    "gaps " + ", ".join(f"{k} {n}" for k, n in sorted(r.gap_causes.items()))
                )
            if r.frame_faults or r.http_faults:
                detail.append(f"frame faults {r.frame_faults}, http faults {r.http_faults}")
            if r.books_unequal:
                detail.append("books differ: " + ", ".join(i[:18] for i in r.books_unequal[:4]))
            if r.missing_examples:
                detail.append("missing e.g. " + ", ".join(r.missing_examples[:2]))
            if detail:
                lines.append(f"  {r.store}/{r.venue}: " + "; ".join(detail))
        verdict = failures([s])
        lines.append("  criteria failed: " + ("; ".join(verdict) if verdict else "none"))
    return "\n".join(lines)


def failures(scenarios: Sequence[ScenarioResult]) -> list[str]:
    """Every failed criterion, one line each. Missing or duplicated trades set the exit code."""
    out: list[str] = []
    for s in scenarios:
        if s.skipped is not None:
            continue
        if s.error is not None:
            out.append(f"{s.name}: harness error: {s.error}")
        for r in s.results:
            where = f"{s.name}/{r.store}/{r.venue}"
            if r.missing:
                out.append(f"{where}: {r.missing} of {r.emitted} trades missing")
            if r.duplicated:
                out.append(f"{where}: {r.duplicated} trades stored more than once")
            if r.books_total and r.books_equal != r.books_total:
                out.append(
                    f"{where}: {r.books_total - (r.books_equal or 0)} books differ at the end"
                )
            if r.gaps_detected and r.gaps_healed != r.gaps_detected:
                out.append(f"{where}: {r.gaps_detected - (r.gaps_healed or 0)} gaps never healed")
        if s.final_exit not in (None, 0):
            out.append(f"{s.name}: SIGTERM at the end exited {s.final_exit}, not 0")
        if s.name == "disk-full" and not s.unhealthy_seen:
            out.append(f"{s.name}: status said healthy while the disk was full")
    return out


def as_json(scenarios: Sequence[ScenarioResult]) -> list[dict[str, Any]]:
    return [dataclasses.asdict(s) | {"failed": failures([s])} for s in scenarios]
