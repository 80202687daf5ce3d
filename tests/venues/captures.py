"""The one way tests read recorded venue payloads: ``tests/captures/<venue>/``.

Captures live in the repository with their provenance (``tests/captures/SOURCES.md``);
how a parser reads each one, and at which receive time, is its venue's
``captures.toml`` (see :mod:`venuefeed.testing.corpus`). :func:`shape_errors`
is the one comparison of a simulator's document with a capture's shape.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from venuefeed.testing import corpus

__all__ = ["ROOT", "capture", "json_type", "load", "path", "read", "shape_errors"]

ROOT = Path(__file__).resolve().parents[1] / "captures"


def path(venue: str, name: str) -> Path:
    return ROOT / venue / name


def read(venue: str, name: str) -> bytes:
    return path(venue, name).read_bytes()


def load(venue: str, name: str) -> Any:
    """A capture file decoded as JSON."""
    return json.loads(read(venue, name))


def capture(venue: str, name: str, entry: str | None = None) -> corpus.Capture:
    """A capture as its manifest describes it: payloads with receive times, parser args."""
    for found in corpus.load(ROOT, venue):
        if found.file == name and (entry is None or found.entry == entry):
            return found
    raise KeyError(f"{venue}/{name} is not in {venue}/{corpus.MANIFEST}")


def json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    return "array" if isinstance(value, list) else "object"


def shape_errors(
    real: Any, other: Any, where: str, extras: set[str] | None = None, exact: bool = True
) -> list[str]:
    """Differences in keys and JSON value types between a capture and another document.

    ``exact``: keys must equal the capture's (plus ``extras``, keys the
    reference documents but the capture lacks); otherwise the other
    document's keys need only be a subset (for Gamma's 90-key objects).
    Lists are compared by their first element.
    """
    errors: list[str] = []
    if json_type(real) != json_type(other) and not (real is None or other is None):
        return [f"{where}: {json_type(other)} where the capture has {json_type(real)}"]
    if isinstance(real, dict):
        missing = set(real) - set(other)
        extra = set(other) - set(real) - (extras or set())
        if exact and missing:
            errors.append(f"{where}: missing keys {sorted(missing)}")
        if extra:
            errors.append(f"{where}: keys not in the capture {sorted(extra)}")
        for key in set(real) & set(other):
            errors += shape_errors(real[key], other[key], f"{where}.{key}", set(), exact)
    elif isinstance(real, list) and real and other:
        errors += shape_errors(real[0], other[0], f"{where}[0]", extras, exact)
    return errors
