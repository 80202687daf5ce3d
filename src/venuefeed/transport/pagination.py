"""Paging through a venue's listing one page at a time, resumable.

Pages are yielded as they arrive so a caller streams a million-row history in
constant memory, and each :class:`Page` carries the cursor it was fetched with
and the one after it: a job that stores ``page.next_cursor`` after handling a
page can restart from exactly there (``start=``). Fetching (and so retrying)
is the caller's ``fetch``, normally a :class:`~venuefeed.transport.http.HttpClient`
call; this module only decides when to stop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Generic, TypeVar

from venuefeed.log import get_logger

__all__ = ["Page", "paginate_cursor", "paginate_offset"]

T = TypeVar("T")

_log = get_logger("venuefeed.transport.pagination")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    cursor: str | None
    """The cursor this page was fetched with (None for the first page)."""
    next_cursor: str | None
    """Where the next page starts; store it to resume after this page."""


async def paginate_cursor(
    fetch: Callable[[str | None], Awaitable[tuple[list[T], str | None]]],
    *,
    start: str | None = None,
    end_markers: Collection[str | None] = (None, ""),
    max_pages: int | None = None,
) -> AsyncIterator[Page[T]]:
    """Follow ``fetch(cursor) -> (items, next_cursor)`` until the listing ends.

    It ends on a next cursor in ``end_markers`` (venues disagree: None, ``""``,
    Polymarket's ``"LTE="``), on an empty page, after ``max_pages``, or when a
    cursor comes back that was already used -- a venue bug that would otherwise
    loop forever; that last case is logged.
    """
    cursor = start
    seen: set[str | None] = {cursor}
    pages = 0
    while max_pages is None or pages < max_pages:
        items, next_cursor = await fetch(cursor)
        pages += 1
        if not items:
            return
        yield Page(items, cursor, next_cursor)
        if next_cursor in end_markers:
            return
        if next_cursor in seen:
            _log.warning("pagination cursor repeated; stopping", cursor=next_cursor, pages=pages)
            return
        seen.add(next_cursor)
        cursor = next_cursor


async def paginate_offset(
    fetch: Callable[[int, int], Awaitable[list[T]]],
    *,
    limit: int,
    start: int = 0,
    max_offset: int | None = None,
) -> AsyncIterator[Page[T]]:
    """Call ``fetch(offset, limit)`` page after page until a page comes back empty.

    A short page does not end the listing: venues silently cap ``limit``
    (ask for 1000, get 500), so the next offset is advanced by the number of
    items actually received. ``max_offset`` bounds venues whose offset is
    capped (the request that would start beyond it is not sent).
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    offset = start
    while max_offset is None or offset <= max_offset:
        items = await fetch(offset, limit)
        if not items:
            return
        next_offset = offset + len(items)
        yield Page(items, str(offset), str(next_offset))
        offset = next_offset
