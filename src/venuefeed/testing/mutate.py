"""Seeded mutations of recorded payloads: the inputs the fuzzer feeds the parsers.

Each mutation is a plausible way for bytes from a venue (or a broken proxy, a
truncated read, a venue bug) to go wrong. JSON-aware mutations edit the
decoded document and re-encode it; byte mutations damage the encoding itself.
One ``random.Random`` drives everything, so ``(seed, target, index)`` always
reproduces the same input (:func:`rng_for`).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any, Final

__all__ = ["BAD_NUMBERS", "MUTATIONS", "mutate", "rng_for"]

BAD_NUMBERS: Final[tuple[Any, ...]] = (
    "NaN", "nan", "-NaN", "Infinity", "-Infinity", "inf", "-inf", "1e999", "1E+5", "1e-7",
    "-1", "-0.5", "-0", " 0.5", "0.5 ", "\t1", "", " ", "abc", "0x10", "+1", "1,5", "0.5.1",
    ".5", "5.", "１２３", "０.５", "٣", "1_000", "9" * 40, "0." + "1" * 40, "null", "true",
    "1.5", "-1.5", "99999999999999999999", "0.000000000000000000001",
    float("nan"), float("inf"), -float("inf"), -1, -0.5, 1e308, -1e308, 1.5, 2**70, -(2**70),
    0, 1, 10**400, True, None, [], {},
)  # fmt: skip
"""Replacements for numbers (as text or JSON numbers): NaN, infinities, huge,
negative, spaced, full-width and otherwise almost-numeric values."""

_STRINGS: Final = ("", " ", "x" * 5000, "\u0000", "\ud800", "é", "😀", "\u202e", "BUY", "SELL")
_SCALARS: Final[tuple[Any, ...]] = ("", 0, -1, 1.5, "0", "1", None, True, False, [], {}, "abc")
_BAD_UTF8: Final = (b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80")
_Json = Any


def rng_for(seed: int, target: str, index: int) -> random.Random:
    """The generator of input ``index`` of ``target``: stable across runs and machines."""
    return random.Random(f"{seed}/{target}/{index}")


# -- walking a JSON document ---------------------------------------------------------


def _slots(doc: _Json) -> list[tuple[Any, Any]]:
    """Every (container, key) in ``doc``, depth-first: the places a value can be changed."""
    out: list[tuple[Any, Any]] = []
    stack = [doc]
    while stack and len(out) < 10_000:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                out.append((node, key))
                stack.append(value)
        elif isinstance(node, list):
            for i, value in enumerate(node):
                out.append((node, i))
                stack.append(value)
    return out


def _looks_numeric(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    if isinstance(value, str) and value:
        return value.lstrip("-").replace(".", "", 1).isdigit()
    return False


def _drop_key(rng: random.Random, doc: _Json) -> _Json:
    dicts = [(c, k) for c, k in _slots(doc) if isinstance(c, dict)]
    if dicts:
        container, key = rng.choice(dicts)
        container.pop(key, None)
    return doc


def _swap_type(rng: random.Random, doc: _Json) -> _Json:
    slots = _slots(doc)
    if slots:
        container, key = rng.choice(slots)
        value = container[key]
        if isinstance(value, str) and _looks_numeric(value):
            container[key] = _num(value) if rng.random() < 0.5 else rng.choice(_SCALARS)
        elif _looks_numeric(value):
            container[key] = str(value) if rng.random() < 0.5 else rng.choice(_SCALARS)
        else:
            container[key] = rng.choice(_SCALARS)
    return doc


def _bad_number(rng: random.Random, doc: _Json) -> _Json:
    numeric = [(c, k) for c, k in _slots(doc) if _looks_numeric(c[k])]
    slots = numeric or _slots(doc)
    if slots:
        container, key = rng.choice(slots)
        container[key] = rng.choice(BAD_NUMBERS)
    return doc


def _shift_number(rng: random.Random, doc: _Json) -> _Json:
    """A believable-looking wrong number: scaled, negated, spaced, more digits."""
    numeric = [(c, k) for c, k in _slots(doc) if _looks_numeric(c[k])]
    if numeric:
        container, key = rng.choice(numeric)
        value = container[key]
        text = str(value)
        options = [
            f"-{text}",
            f"{text}000",
            text[:-3] or "0",
            f" {text}",
            f"{text}\u00a0",
            text.translate(str.maketrans("0123456789", "０１２３４５６７８９")),
            f"{text}e3",
            f"{text}.5",
            "1." + text,
        ]
        chosen = rng.choice(options)
        container[key] = chosen if isinstance(value, str) or rng.random() < 0.5 else _num(chosen)
    return doc


def _num(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _bad_string(rng: random.Random, doc: _Json) -> _Json:
    strings = [(c, k) for c, k in _slots(doc) if isinstance(c[k], str)]
    if strings:
        container, key = rng.choice(strings)
        container[key] = rng.choice(_STRINGS)
    return doc


def _reshape_list(rng: random.Random, doc: _Json) -> _Json:
    lists = [(c, k) for c, k in _slots(doc) if isinstance(c[k], list)]
    if lists:
        container, key = rng.choice(lists)
        items = container[key]
        choice = rng.randrange(4)
        if choice == 0:
            container[key] = []
        elif choice == 1:
            container[key] = items[::-1]
        elif choice == 2:
            container[key] = items + items
        elif items:
            container[key] = [items[0]] * rng.randint(2, 300)
    return doc


def _nest(rng: random.Random, doc: _Json) -> _Json:
    depth = rng.choice((50, 300, 3000))
    slots = _slots(doc)
    if not slots:
        return _nested(doc, depth)
    container, key = rng.choice(slots)
    container[key] = _nested(container[key], depth)
    return doc


class _Deep:
    """A pre-encoded deeply nested value (``json.dumps`` would recurse too deep)."""

    def __init__(self, value: Any, depth: int) -> None:
        inner: str = (
            value.text
            if isinstance(value, _Deep)
            else json.dumps(value, allow_nan=True, ensure_ascii=False, default=str)
        )
        self.text: str = "[" * depth + inner + "]" * depth


def _nested(value: Any, depth: int) -> Any:
    return _Deep(value, depth)


def _duplicate_key_object(rng: random.Random, doc: _Json) -> _Json:
    """An extra unknown key, or the document wrapped in an array (frames can be arrays)."""
    if isinstance(doc, dict) and rng.random() < 0.5:
        doc[rng.choice(("event_type", "type", "ev", "stream", "zzz"))] = rng.choice(_SCALARS)
        return doc
    return [doc, doc] if rng.random() < 0.5 else [doc]


_JSON_MUTATIONS: Final[tuple[Callable[[random.Random, _Json], _Json], ...]] = (
    _drop_key,
    _swap_type,
    _bad_number,
    _bad_number,
    _shift_number,
    _bad_string,
    _reshape_list,
    _nest,
    _duplicate_key_object,
)


# -- encoding --------------------------------------------------------------------------


def _encode(doc: _Json) -> bytes:
    deep: dict[int, tuple[str, str]] = {}

    def default(value: Any) -> Any:
        if isinstance(value, _Deep):
            marker = deep.setdefault(id(value), (f"__deep_{len(deep)}__", value.text))[0]
            return marker
        raise TypeError(type(value).__name__)

    text = json.dumps(doc, allow_nan=True, ensure_ascii=False, default=default)
    for marker, raw in deep.values():
        text = text.replace(f'"{marker}"', raw)
    return text.encode("utf-8", "surrogatepass")


# -- byte mutations -----------------------------------------------------------------------


def _truncate(rng: random.Random, data: bytes) -> bytes:
    return data[: rng.randrange(len(data))] if data else data


def _bad_utf8(rng: random.Random, data: bytes) -> bytes:
    at = rng.randrange(len(data) + 1)
    return data[:at] + rng.choice(_BAD_UTF8) + data[at:]


def _flip(rng: random.Random, data: bytes) -> bytes:
    if not data:
        return data
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        buf[rng.randrange(len(buf))] = rng.randrange(256)
    return bytes(buf)


def _splice(rng: random.Random, data: bytes) -> bytes:
    choice = rng.randrange(4)
    if choice == 0:
        return data + data
    if choice == 1:
        return b" \n\t" + data + b"\r\n"
    if choice == 2:
        return b""
    return data.replace(b'"', b"'", 1)


_BYTE_MUTATIONS: Final[tuple[Callable[[random.Random, bytes], bytes], ...]] = (
    _truncate,
    _bad_utf8,
    _flip,
    _splice,
)

MUTATIONS: Final = tuple(f.__name__.lstrip("_") for f in (*_JSON_MUTATIONS, *_BYTE_MUTATIONS))


def mutate(rng: random.Random, seed: bytes) -> bytes:
    """One mutated copy of ``seed``: one to three mutations, JSON-aware when it decodes."""
    try:
        doc: _Json = json.loads(seed)
    except ValueError:
        doc = None
    rounds = rng.choice((1, 1, 1, 2, 3))
    data = seed
    if doc is not None and rng.random() < 0.8:
        for _ in range(rounds):
            doc = rng.choice(_JSON_MUTATIONS)(rng, doc)
        data = _encode(doc)
        if rng.random() < 0.15:
            data = rng.choice(_BYTE_MUTATIONS)(rng, data)
        return data
    for _ in range(rounds):
        data = rng.choice(_BYTE_MUTATIONS)(rng, data)
    return data
