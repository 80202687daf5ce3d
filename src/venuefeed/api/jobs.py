"""Background jobs for ``?background=true`` control calls.

Discovery or a full snapshot pass can take longer than an HTTP client wants
to wait, so the API can run them as jobs and answer with an id at once;
``GET /api/v1/jobs/{id}`` then reports progress and the result. The registry
is bounded (ARCHITECTURE rule 5) twice: at most ``max_running`` jobs run at
once (``api.max_running_jobs``) and a new one beyond is refused -- the API
answers 429 with ``Retry-After`` -- rather than queued; and finished jobs are
kept for polling up to ``capacity`` in all, forgotten oldest first.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Job", "JobRegistry", "TooManyJobs"]


RETRY_AFTER_SECONDS = 5
"""What a refused client is told to wait; a discovery or snapshot pass takes seconds."""


class TooManyJobs(Exception):
    """As many jobs as allowed are still running; try again after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int = RETRY_AFTER_SECONDS) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(eq=False)
class Job:
    id: str
    kind: str
    state: str = "pending"
    """pending -> running -> succeeded | failed | cancelled."""
    progress: dict[str, Any] = field(default_factory=dict)
    result: Any = None
    error: str | None = None
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    task: asyncio.Task[None] | None = None

    @property
    def done(self) -> bool:
        return self.state in ("succeeded", "failed", "cancelled")

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "state": self.state,
            "progress": dict(self.progress),
            "result": self.result,
            "error": self.error,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }


JobFn = Callable[[Job], Awaitable[Any]]


class JobRegistry:
    def __init__(self, capacity: int = 100, max_running: int = 4) -> None:
        if not 1 <= max_running <= capacity:
            raise ValueError("need 1 <= max_running <= capacity")
        self.capacity = capacity
        self.max_running = max_running
        self._jobs: dict[str, Job] = {}

    @property
    def running(self) -> int:
        """Jobs started and not finished yet."""
        return sum(1 for job in self._jobs.values() if not job.done)

    def submit(self, kind: str, fn: JobFn) -> Job:
        """Start ``fn(job)`` as a task; its return value becomes the job's result.

        Raises :class:`TooManyJobs` when ``max_running`` jobs are unfinished.
        """
        if self.running >= self.max_running:
            raise TooManyJobs(f"{self.max_running} jobs are still running; try again later")
        self._make_room()
        job = Job(id=uuid.uuid4().hex, kind=kind)
        self._jobs[job.id] = job
        job.task = asyncio.create_task(self._run(job, fn), name=f"job:{kind}:{job.id}")
        return job

    def _make_room(self) -> None:
        """Forget the oldest finished job when full (there is one: fewer than capacity run)."""
        if len(self._jobs) < self.capacity:
            return
        oldest_done = next(job_id for job_id, job in self._jobs.items() if job.done)
        del self._jobs[oldest_done]

    async def _run(self, job: Job, fn: JobFn) -> None:
        job.state, job.started_at = "running", time.time()
        try:
            job.result = await fn(job)
        except asyncio.CancelledError:
            job.state = "cancelled"
            raise
        except Exception as exc:
            job.state, job.error = "failed", f"{type(exc).__name__}: {exc}"
        else:
            job.state = "succeeded"
        finally:
            job.finished_at = time.time()

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def jobs(self) -> list[Job]:
        """Newest first."""
        return list(reversed(self._jobs.values()))

    async def close(self) -> None:
        """Cancel running jobs (at shutdown) and wait for them to end."""
        tasks = [j.task for j in self._jobs.values() if j.task is not None and not j.task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
