"""Cursor and offset paging: when to stop, and how to resume."""

from __future__ import annotations

from structlog.testing import capture_logs

from venuefeed.transport import Page, paginate_cursor, paginate_offset


async def test_cursor_stops_on_end_marker_and_records_cursors() -> None:
    pages = {None: ([1, 2], "MA=="), "MA==": ([3], "MTA="), "MTA=": ([4], "LTE=")}
    calls: list[str | None] = []

    async def fetch(cursor: str | None) -> tuple[list[int], str | None]:
        calls.append(cursor)
        return pages[cursor]

    got = [p async for p in paginate_cursor(fetch, end_markers=("LTE=",))]
    assert got == [
        Page([1, 2], None, "MA=="),
        Page([3], "MA==", "MTA="),
        Page([4], "MTA=", "LTE="),
    ]
    assert calls == [None, "MA==", "MTA="]


async def test_cursor_loop_guard_stops_on_a_repeated_cursor() -> None:
    async def fetch(cursor: str | None) -> tuple[list[str], str | None]:
        return {None: (["a"], "x"), "x": (["b"], "y"), "y": (["c"], "x")}[cursor]

    with capture_logs() as logs:
        got = [p.items for p in [p async for p in paginate_cursor(fetch)]]
    assert got == [["a"], ["b"], ["c"]]  # "x" again after "y": stop, do not loop
    assert [e["event"] for e in logs] == ["pagination cursor repeated; stopping"]


async def test_cursor_stops_on_empty_page_none_cursor_and_max_pages() -> None:
    async def empty_next(cursor: str | None) -> tuple[list[int], str | None]:
        return ([1], "more") if cursor is None else ([], "more")

    assert [p.items async for p in paginate_cursor(empty_next)] == [[1]]

    async def endless(cursor: str | None) -> tuple[list[int], str | None]:
        n = int(cursor or 0)
        return [n], str(n + 1)

    got = [p.items async for p in paginate_cursor(endless, start="5", max_pages=3)]
    assert got == [[5], [6], [7]]

    async def last(cursor: str | None) -> tuple[list[int], str | None]:
        return [1], None

    assert len([p async for p in paginate_cursor(last)]) == 1


async def test_offset_continues_past_short_pages_and_stops_on_empty() -> None:
    rows = list(range(7))
    calls: list[tuple[int, int]] = []

    async def fetch(offset: int, limit: int) -> list[int]:
        calls.append((offset, limit))
        return rows[offset : offset + min(limit, 3)]  # the server silently caps limit at 3

    got = [p async for p in paginate_offset(fetch, limit=5)]
    assert [p.items for p in got] == [[0, 1, 2], [3, 4, 5], [6]]
    assert [(p.cursor, p.next_cursor) for p in got] == [("0", "3"), ("3", "6"), ("6", "7")]
    assert calls == [(0, 5), (3, 5), (6, 5), (7, 5)]

    resumed = [
        p.items async for p in paginate_offset(fetch, limit=5, start=int(got[0].next_cursor))
    ]
    assert resumed == [[3, 4, 5], [6]]


async def test_offset_respects_max_offset() -> None:
    calls: list[int] = []

    async def fetch(offset: int, limit: int) -> list[int]:
        calls.append(offset)
        return list(range(offset, offset + limit))

    got = [p.items async for p in paginate_offset(fetch, limit=10, max_offset=20)]
    assert calls == [0, 10, 20] and len(got) == 3
