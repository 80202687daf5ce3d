"""Background jobs for ``?background=true`` control calls.

Discovery or a full snapshot pass can take longer than an HTTP client wants
to wait, so the API can run them as jobs and answer with an id at once;
``GET /api/v1/jobs/{id}`` then reports progress and the result. The registry
is bounded (ARCHITECTURE rule 5): finished jobs are forgotten oldest first,
and when too many are still running a new one is refused rather than queued.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Job", "JobRegistry", "TooManyJobs"]


class TooManyJobs(Exception):
    """Every slot holds a job that is still running."""


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
    def __init__(self, capacity: int = 100) -> None:
        self.capacity = capacity
        self._jobs: dict[str, Job] = {}

    def submit(self, kind: str, fn: JobFn) -> Job:
        """Start ``fn(job)`` as a task; its return value becomes the job's result."""
        self._make_room()
        job = Job(id=uuid.uuid4().hex, kind=kind)
        self._jobs[job.id] = job
        job.task = asyncio.create_task(self._run(job, fn), name=f"job:{kind}:{job.id}")
        return job

    def _make_room(self) -> None:
        if len(self._jobs) < self.capacity:
            return
        for job_id, job in list(self._jobs.items()):  # insertion order: oldest first
            if job.done:
                del self._jobs[job_id]
                return
        raise TooManyJobs(f"{self.capacity} jobs are still running; try again later")

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
