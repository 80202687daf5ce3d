"""One batch on its way into one sink, isolating the records the sink proves invalid.

A batch is written whole -- the fast path, one call. When the sink answers
:class:`~venuefeed.sinks.base.InvalidRecords` (a constraint or data error,
never an outage), the failing part is split in halves and each half written
on its own, down to the single records the sink still refuses: only those are
proven invalid, and they go to the dead-letter store with the sink's reason.
One bad record among 500 costs about 2·log2(500) ≈ 18 writes, never its
neighbours. A sink that knows each refusal individually (Kafka's delivery
reports) names the refused records instead, and nothing is written again.

Any other failure -- :class:`~venuefeed.sinks.base.SinkUnavailable` or an
exception nobody classified -- stops the run and propagates: bisecting on an
outage would only multiply failing writes. The parts not yet written stay in
the :class:`Delivery`, so the owner retries exactly those later, without
writing a stored part again or setting a record aside twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from venuefeed.sinks.base import InvalidRecords, Record, Sink
from venuefeed.sinks.deadletter import DeadLetterStore

__all__ = ["Delivery"]


class Delivery:
    """The unwritten parts of one batch (see the module docstring)."""

    __slots__ = ("_todo",)

    def __init__(self, batch: Sequence[Record]) -> None:
        self._todo: list[Sequence[Record]] = [batch] if batch else []
        """A stack of parts still to write; the next one is last."""

    @property
    def done(self) -> bool:
        return not self._todo

    @property
    def remaining(self) -> int:
        """Records not yet stored nor set aside."""
        return sum(len(part) for part in self._todo)

    def records(self) -> list[Record]:
        """The records not yet stored nor set aside, in their original order."""
        return [record for part in reversed(self._todo) for record in part]

    async def run(
        self,
        sink: Sink,
        dead_letters: DeadLetterStore,
        on_written: Callable[[Sequence[Record]], None] | None = None,
    ) -> int:
        """Write what remains; return how many records were set aside.

        Raises whatever is not :class:`InvalidRecords` (the remaining parts are
        kept), including a failure of the dead-letter store itself.
        """
        set_aside = 0
        todo = self._todo
        while todo:
            part = todo[-1]
            try:
                await sink.write(part)
            except InvalidRecords as exc:
                if exc.records is not None:  # named by the sink; the rest of the part is stored
                    refused = {id(r) for r in exc.records}
                    for record in exc.records:
                        await dead_letters.put(exc.sink, exc.reason, record)
                    todo.pop()
                    set_aside += len(refused)
                    if on_written is not None:
                        on_written([r for r in part if id(r) not in refused])
                    continue
                if len(part) == 1:
                    await dead_letters.put(exc.sink, exc.reason, part[0])
                    todo.pop()
                    set_aside += 1
                    continue
                todo.pop()
                middle = len(part) // 2
                todo.append(part[middle:])
                todo.append(part[:middle])
                continue
            todo.pop()
            if on_written is not None:
                on_written(part)
        return set_aside
