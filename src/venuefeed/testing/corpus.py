"""The one loader of recorded venue payloads (``tests/captures/<venue>/``).

Each venue folder holds the capture files, unmodified, a ``SOURCES.md`` entry
per file (repository, path, commit) and a ``captures.toml`` that says how a
parser reads each file:

.. code-block:: toml

    [[capture]]
    file = "nautilus_it_ws_messages_ws_spot_trade.json"
    entry = "frame"                 # the parser entry point (see entries.py)
    ts_recv = 1639351063243000000   # the receive time the golden output assumes
                                    # (a list: one per payload)
    # optional: how the file becomes payloads
    lines = true                    # one payload per non-empty line (JSONL)
    wrap_stream = "btcusdt@depth@100ms"  # a bare Binance event, wrapped as the
                                    # combined stream delivers it
    each_value = true               # a JSON object of examples: one payload each,
                                    # each value wrapped in a one-element array
    as_list = true                  # one object, read as a one-element list page
    keyset = "markets"              # an object (or an array of them) as the items of a
                                    # Gamma keyset page: {"markets": [...]}, no cursor
    examples = true                 # the ``example: |-`` JSON blocks of a doc page
    json_after = "### Example Response"  # the first ``json`` block after a heading
    [capture.args]                  # keyword arguments of the entry point
    symbol = "BTCUSDT"

The conformance harness and the fuzzer both read captures only through
:func:`load`, so a new capture is one ``[[capture]]`` entry.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["MANIFEST", "Capture", "load", "venues"]

MANIFEST = "captures.toml"


@dataclass(frozen=True)
class Capture:
    """One capture file as payloads for one parser entry point, each with its receive time."""

    venue: str
    file: str
    entry: str
    payloads: list[tuple[bytes, int]]
    args: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """``<venue>/<file>[#<entry>]``: unique per manifest entry, used for golden files."""
        return f"{self.venue}/{self.file}#{self.entry}"


def venues(root: Path) -> list[str]:
    """Venue folders under ``root`` that have a manifest."""
    return sorted(p.parent.name for p in root.glob(f"*/{MANIFEST}"))


def load(root: Path, venue: str) -> list[Capture]:
    """Every capture of ``venue`` as its manifest describes it."""
    folder = root / venue
    with (folder / MANIFEST).open("rb") as fh:
        manifest = tomllib.load(fh)
    out = []
    for spec in manifest.get("capture", []):
        payloads = _payloads((folder / spec["file"]).read_bytes(), spec)
        ts = spec["ts_recv"]
        times = [int(t) for t in ts] if isinstance(ts, list) else [int(ts)] * len(payloads)
        if len(times) != len(payloads):
            raise ValueError(
                f"{venue}/{spec['file']}: {len(times)} ts_recv, {len(payloads)} payloads"
            )
        out.append(
            Capture(
                venue=venue,
                file=spec["file"],
                entry=spec["entry"],
                payloads=list(zip(payloads, times, strict=True)),
                args=dict(spec.get("args", {})),
            )
        )
    return out


def _payloads(raw: bytes, spec: dict[str, Any]) -> list[bytes]:
    if spec.get("lines"):
        return [line for line in raw.splitlines() if line.strip()]
    if "wrap_stream" in spec:
        data = json.loads(raw)
        return [_compact({"stream": spec["wrap_stream"], "data": data})]
    if spec.get("as_list"):
        return [_compact([json.loads(raw)])]
    if "keyset" in spec:
        doc = json.loads(raw)
        return [_compact({spec["keyset"]: doc if isinstance(doc, list) else [doc]})]
    if spec.get("each_value"):
        return [_compact([value]) for value in json.loads(raw).values()]
    if spec.get("examples"):
        return [_compact(doc) for doc in _doc_examples(raw.decode())]
    if "json_after" in spec:
        return [_json_after(raw.decode(), spec["json_after"])]
    return [raw]


def _compact(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def _doc_examples(text: str) -> list[Any]:
    """The ``example: |-`` JSON blocks of an AsyncAPI doc page mirror, in order."""
    out = []
    for match in re.finditer(r"example: \|-\n((?: {10,}.*\n)+)", text):
        block = "\n".join(line[10:] for line in match.group(1).splitlines())
        out.append(json.loads(block))
    return out


def _json_after(text: str, heading: str) -> bytes:
    start = text.index(heading)
    match = re.search(r"```json[^\n]*\n(.*?)```", text[start:], re.S)
    if match is None:
        raise ValueError(f"no json block after {heading!r}")
    return match.group(1).encode()
