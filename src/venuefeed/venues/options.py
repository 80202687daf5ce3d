"""Typed, strict venue options: ``venues.<name>.options`` checked once, at start-up.

Each venue declares its options as a frozen struct deriving from
:class:`VenueOptions` (every field documented, with its default). Loading is
strict: an unknown key is an error naming ``venues.<name>.options.<key>`` --
``audit_interval`` where ``audit_interval_seconds`` was meant must not be
silently ignored -- and so is a value of the wrong type or out of range.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec

__all__ = ["OptionsError", "VenueOptions", "load_options"]


class OptionsError(ValueError):
    """A venue option is unknown, mistyped or out of range (the message names the key)."""


class VenueOptions(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Base of every venue's ``Options``."""

    def problems(self) -> dict[str, str]:
        """Fields whose value is out of range, with why (override to check ranges)."""
        return {}


OptionsT = TypeVar("OptionsT", bound=VenueOptions)

_PATH = re.compile(r" - at `\$\.([A-Za-z0-9_]+)`")


def load_options(cls: type[OptionsT], venue: str, raw: Mapping[str, Any]) -> OptionsT:
    """``raw`` (the config's mapping) as ``cls``, or :class:`OptionsError` naming the key."""
    prefix = f"venues.{venue}.options"
    known = cls.__struct_fields__
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise OptionsError(
            f"{prefix}.{unknown[0]}: unknown option; known: {', '.join(sorted(known)) or 'none'}"
        )
    try:
        options = msgspec.convert(dict(raw), cls, strict=False)
    except msgspec.ValidationError as exc:
        text = str(exc)
        found = _PATH.search(text)
        where = f"{prefix}.{found.group(1)}" if found else prefix
        raise OptionsError(f"{where}: {_PATH.sub('', text)}") from None
    bad = options.problems()
    if bad:
        key, why = next(iter(sorted(bad.items())))
        raise OptionsError(f"{prefix}.{key}: {why} (got {getattr(options, key)!r})")
    return options
