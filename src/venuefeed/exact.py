"""Exact decimal numbers as canonical strings.

Venues send prices and sizes as decimal text (``"0.535"``, ``"4.00000200"``,
``"13.00"``). On the hot path we keep that text instead of building a
``Decimal`` per level: ``msgspec`` decodes a ``str`` field four times faster
than a ``Decimal`` one, and a string is already exact. The one thing text gets
wrong is identity -- ``"0.5"`` and ``"0.50"`` are the same level -- so every
number entering a canonical event goes through :func:`canon`, which strips the
trailing fractional zeros. Two canonical strings are equal exactly when the
numbers are.

Text from a venue is untrusted: :func:`checked` (strings) and
:func:`checked_decimal` (JSON numbers decoded as ``Decimal``) are the boundary
(ARCHITECTURE rule 3). They accept only a plain, finite, ASCII decimal of
bounded length -- no spaces, signs other than a leading ``-``, exponents,
``NaN``/``Infinity`` or full-width digits -- and return its canonical text, or
``None``. Prices and sizes repeat (a book has a few hundred levels near the
touch), so :func:`checked` remembers its answer per distinct string in a
bounded memo: the check costs one dict lookup on the hot path. :func:`canon`
trusts its input and is for text that already passed the boundary.

``Decimal`` is built only at the edges (storage, API, arithmetic on a few
values such as Kalshi's ``1 - price``) through :func:`to_decimal`.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Final

__all__ = [
    "MAX_FRACTION_DIGITS",
    "MAX_INTEGER_DIGITS",
    "add",
    "canon",
    "checked",
    "checked_decimal",
    "from_cents",
    "from_decimal",
    "from_number",
    "is_zero",
    "to_decimal",
    "validate",
]


MAX_INTEGER_DIGITS = 18
"""Digits before the point a venue number may have (10^18 exceeds any price,
size or volume the venues publish; more is garbage, and would lose the book's
float keys their exactness)."""
MAX_FRACTION_DIGITS = 18
"""Digits after the point (venues send at most 8; float artefacts of the Data
API reach 16)."""
_MAX_TEXT = 1 + MAX_INTEGER_DIGITS + 1 + MAX_FRACTION_DIGITS

_CHECKED: dict[str, str] = {}
"""Venue text -> canonical text, or ``""`` for text that is not a finite decimal."""
_CHECKED_MAX = 1 << 17


def checked(text: str) -> str | None:
    """The canonical form of ``text`` if it is a plain finite decimal, else ``None``.

    ``"0.50" -> "0.5"``, ``"007" -> "7"``, ``"-0.0" -> "0"``; ``" 0.5"``,
    ``"0.5 "``, ``""``, ``".5"``, ``"5."``, ``"+5"``, ``"1e5"``, ``"NaN"``,
    ``"inf"``, ``"０.５"`` (full-width) and anything longer than the digit
    limits are ``None``. Memoized per distinct string (bounded: the memo is
    dropped and rebuilt at its limit, so hostile input cannot grow it).
    """
    out = _CHECKED.get(text)
    if out is None:
        out = _check(text)
        if len(_CHECKED) >= _CHECKED_MAX:
            _CHECKED.clear()
        _CHECKED[text] = out
    return out or None


_PLAIN: Final = re.compile(r"(?:[1-9][0-9]{0,17}|0)(?:\.[0-9]{1,18})?").fullmatch
"""What venues send nearly always: no sign, no leading zero, digit limits kept. ``[0-9]``,
not ``\\d``: a ``str`` pattern's ``\\d`` also matches full-width and other digits."""


def _check(text: str) -> str:
    """Canonical text, or ``""`` (unmemoized core of :func:`checked`).

    One C-level match settles the common shape (a venue's own spelling: no
    sign, no leading zeros); only then is the text cut, and only when it has a
    point. Anything else takes the general path below.
    """
    if _PLAIN(text) is not None:
        if "." not in text:
            return text
        text = text.rstrip("0")
        return text[:-1] if text[-1] == "." else text
    return _check_general(text)


def _check_general(text: str) -> str:
    if not 0 < len(text) <= _MAX_TEXT or not text.isascii():
        return ""
    sign = "-" if text[0] == "-" else ""
    whole, dot, frac = text[len(sign) :].partition(".")
    # For ASCII text isdigit() is exactly [0-9]: no signs, spaces or exponents.
    if not whole.isdigit() or (dot and not frac.isdigit()):
        return ""
    if len(whole) > MAX_INTEGER_DIGITS or len(frac) > MAX_FRACTION_DIGITS:
        return ""
    whole = whole.lstrip("0") or "0"
    frac = frac.rstrip("0")
    out = f"{whole}.{frac}" if frac else whole
    return sign + out if out != "0" else "0"


def checked_decimal(value: Decimal) -> str | None:
    """The canonical text of a ``Decimal`` decoded from a JSON number, or ``None``.

    ``None`` for ``NaN``/``Infinity`` (msgspec accepts them in strings) and for
    magnitudes beyond the digit limits. ``str()`` of a ``Decimal`` switches to
    exponent notation for large exponents, so it is short and cheap for any
    value (``1E+999999999`` never becomes a gigabyte of zeros); plain text --
    what venues send -- is checked on the spot, anything else takes the
    careful path.
    """
    text = str(value)
    if "E" in text or "N" in text or "n" in text:  # exponent, NaN/sNaN, Infinity
        return _checked_exponent(value)
    return checked(text)


def _checked_exponent(value: Decimal) -> str | None:
    if not value.is_finite():
        return None
    if value and not -MAX_FRACTION_DIGITS <= value.adjusted() < MAX_INTEGER_DIGITS:
        return None
    return checked(from_decimal(value))


def canon(text: str) -> str:
    """Return the canonical form of a decimal string: no trailing fractional zeros.

    ``"0.50" -> "0.5"``, ``"13.00" -> "13"``, ``"0.00000000" -> "0"``,
    ``"-54.00" -> "-54"``. Text without a ``.`` is returned unchanged, so
    integers cost one ``in`` test. The input is trusted to be decimal text that
    already passed :func:`checked`; never call it on venue input.
    """
    if "." in text:
        text = text.rstrip("0").rstrip(".")
        if text in ("", "-", "-0"):
            return "0"
    return text


def validate(text: str) -> str:
    """Canonicalize ``text`` after checking it is a finite decimal number.

    Raises ``ValueError`` naming the bad text. Used where input is not from a
    venue frame with a fixed schema (config values, CLI arguments, CSV rows).
    """
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"not a decimal number: {text!r}") from None
    if not value.is_finite():
        raise ValueError(f"not a finite decimal number: {text!r}")
    return from_decimal(value)


def from_decimal(value: Decimal) -> str:
    """Format a ``Decimal`` as a canonical string, never in exponent notation.

    ``str()`` is the fast path (about 3x cheaper than ``format``); it only falls
    back to ``format`` when ``str()`` would use an exponent (``1E+2``, ``1E-7``).
    """
    text = str(value)
    if "E" in text:
        return "0" if value == 0 else canon(f"{value:f}")
    return "0" if text == "-0" else canon(text)


def from_number(value: int | float | Decimal | str) -> str:
    """Canonicalize a JSON number or string as sent by a venue.

    Floats use Python's shortest round-trip ``repr``, which for the short
    decimals venues send (``94.37``, ``0.52``) reproduces the text on the wire.
    Prefer decoding such fields straight into ``Decimal`` with msgspec where
    the exact text matters more than the speed.
    """
    if isinstance(value, str):
        return canon(value)
    if isinstance(value, bool):
        raise ValueError(f"not a number: {value!r}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return from_decimal(Decimal(repr(value)))
    return from_decimal(value)


def add(a: str, b: str) -> str:
    """Exact ``a + b`` of two decimal strings, as a canonical string.

    Fixed-point integers instead of ``Decimal``: about four times cheaper,
    and this runs once per Kalshi book delta.
    """
    a_int, _, a_frac = a.partition(".")
    b_int, _, b_frac = b.partition(".")
    scale = max(len(a_frac), len(b_frac))
    total = _scaled(a_int, a_frac, scale) + _scaled(b_int, b_frac, scale)
    if not scale:
        return str(total)
    sign = "-" if total < 0 else ""
    digits = str(abs(total)).rjust(scale + 1, "0")
    return canon(f"{sign}{digits[:-scale]}.{digits[-scale:]}")


def _scaled(int_part: str, frac: str, scale: int) -> int:
    magnitude = int((int_part.lstrip("+-") or "0") + frac.ljust(scale, "0"))
    return -magnitude if int_part.startswith("-") else magnitude


def from_cents(cents: int) -> str:
    """Convert a legacy integer-cents price (Kalshi before March 2026) to dollars."""
    return from_decimal(Decimal(cents).scaleb(-2))


def to_decimal(text: str) -> Decimal:
    """Build the ``Decimal`` for a canonical string (at the edges only)."""
    return Decimal(text)


def is_zero(text: str) -> bool:
    """True for a canonical zero. Canonical strings make this a comparison."""
    return text == "0"
