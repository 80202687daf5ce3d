"""Every capture of every registered venue, through its parser, against a golden file.

One harness for all venues (the tardis-node mapper tests are the model): each
venue's ``tests/captures/<venue>/captures.toml`` names the parser entry point
(:data:`venuefeed.testing.entries.ENTRIES`) and receive time for each capture,
and ``tests/captures/<venue>/golden/`` holds what the parser returned --
events, venue-specific items and the rejections it counted, by reason.

A parser change that alters any output fails here. To accept it, regenerate
and review the diff like code::

    .venv/bin/python -m pytest tests/venues/test_conformance.py --update-golden
    git diff tests/captures/*/golden
"""

from __future__ import annotations

import enum
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.venues.captures import ROOT
from venuefeed.testing import corpus
from venuefeed.testing.entries import ENTRIES
from venuefeed.venues.base import known_venues
from venuefeed.venues.rejects import Rejects

CASES = [capture for venue in known_venues() for capture in corpus.load(ROOT, venue)]


def describe(value: Any) -> Any:
    """A parser result as plain JSON data that names each item's type."""
    if isinstance(value, msgspec.Struct):
        fields = {f: describe(getattr(value, f)) for f in value.__struct_fields__}
        return {"_type": type(value).__name__, **fields}
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a NamedTuple
        return {
            "_type": type(value).__name__,
            **{f: describe(getattr(value, f)) for f in value._fields},
        }
    if isinstance(value, list | tuple):
        return [describe(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    return value


def render(capture: corpus.Capture) -> list[dict[str, Any]]:
    entry = ENTRIES[capture.venue][capture.entry]
    out = []
    for payload, ts_recv in capture.payloads:
        rejects = Rejects(capture.venue)
        result = entry(payload, ts_recv, rejects, capture.args)
        out.append({"ts_recv": ts_recv, "result": describe(result), "rejected": rejects.counts})
    return out


def golden_path(capture: corpus.Capture) -> Path:
    name = capture.file.replace("/", "__")
    return ROOT / capture.venue / "golden" / f"{name}.{capture.entry}.json"


@pytest.mark.parametrize("capture", CASES, ids=lambda c: c.name)
def test_capture_matches_its_golden_output(
    capture: corpus.Capture, request: pytest.FixtureRequest
) -> None:
    rendered = render(capture)
    path = golden_path(capture)
    if request.config.getoption("--update-golden"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(rendered, indent=1, ensure_ascii=False) + "\n")
        return
    assert path.exists(), f"{path} missing: run with --update-golden, then review it"
    assert rendered == json.loads(path.read_text())


@pytest.mark.parametrize("venue", known_venues())
def test_every_registered_venue_is_covered(venue: str) -> None:
    """A registered venue has parser entries, captures for its frame entry, and nothing stale."""
    captures = corpus.load(ROOT, venue)
    entries = {c.entry for c in captures}
    assert "frame" in entries
    assert entries <= set(ENTRIES[venue]), entries - set(ENTRIES[venue])
    goldens = {p.name for p in (ROOT / venue / "golden").glob("*.json")}
    assert goldens == {golden_path(c).name for c in captures}, "stale or missing golden files"


def test_every_capture_file_has_provenance() -> None:
    sources = (ROOT / "SOURCES.md").read_text()
    files = [
        p.relative_to(ROOT).as_posix()
        for p in ROOT.rglob("*")
        if p.is_file()
        and "golden" not in p.parts
        and p.suffix in (".json", ".jsonl", ".md")
        and p.name != "SOURCES.md"
    ]
    assert files
    missing = [f for f in files if f"`{f}`" not in sources]
    assert missing == []


def test_tests_never_read_outside_the_repository() -> None:
    """A bare clone must pass: no test reaches beside the repository for its data.

    The sibling folder's name is assembled below so that a grep for it lists real uses only.
    """
    folder = "sh" + "ared"
    needles = (f"{folder}/captures", f'"{folder}"', f"'{folder}'", "/work/")
    here = Path(__file__).resolve()
    offenders = [
        f"{p}: {needle}"
        for p in here.parents[1].rglob("*.py")
        if p != here
        for needle in needles
        if needle in p.read_text()
    ]
    assert offenders == []
