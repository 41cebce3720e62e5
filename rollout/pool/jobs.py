"""The pool's jobs: one attempt of a checked request each, the retry rule, and the queue they wait in.

A `Job` is frozen: a retry is a new `Job` with the same id, the next attempt number and the
failed attempt's failure appended (`retried`). The worker that runs it and the driver that ends
it without an episode (cancelled, its worker lost, unsendable) both build the trajectory with
`Job.trajectory`, which gives it the attempt count and earlier failures it ends with.
`retry_delay` is the retry rule; `JobQueue` holds the jobs waiting to run (in order, retries
after their backoff) and the cancels asked for from any thread. None of this touches Ray.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Optional

from rollout.core.failures import Failure
from rollout.core.results import EpisodeResult
from rollout.pool.config import RetryConfig
from rollout.pool.requests import ValidRequest
from rollout.trajectory import Trajectory


@dataclass(frozen=True)
class Job:
    """Attempt number `attempt` (from 1) of the request `valid`; `earlier_failures`: the failures
    of the attempts before it, oldest first."""

    id: int
    valid: ValidRequest
    attempt: int = 1
    earlier_failures: tuple[Failure, ...] = ()

    @property
    def group(self) -> str:
        return self.valid.group

    def trajectory(self, result: EpisodeResult, worker: Optional[int] = None) -> Trajectory:
        """This attempt's trajectory of `result`; `worker` (the worker's id) goes into its tags
        unless the request's tags name one."""
        request = self.valid.request
        tags = {"worker": worker, **request.tags} if worker is not None else request.tags
        return Trajectory.of(
            result,
            group_id=request.group,
            weight_version=request.weight_version,
            tags=tags,
            attempts=self.attempt,
            earlier_failures=self.earlier_failures,
        )

    def ended(self, failure: Failure) -> Trajectory:
        """The trajectory of this attempt ending without an episode (cancelled, its worker lost)."""
        return self.trajectory(self.valid.episode.result(failure))

    def retried(self, failure: Failure) -> Job:
        """The next attempt, after this one failed with `failure`."""
        return dataclasses.replace(self, attempt=self.attempt + 1, earlier_failures=(*self.earlier_failures, failure))


def retry_delay(job: Job, failure: Optional[Failure], retry: RetryConfig) -> Optional[float]:
    """The retry rule: seconds until the next attempt of `job`, whose attempt ended with `failure`
    (None: scored), or None when the job ends with this attempt. An infrastructure failure (a
    retryable class) is retried while attempts are left (`retry.max_attempts`), after
    `retry.delay(attempt)`; a score, bad input and a cancel end the job."""
    if failure is None or not failure.failure_class.retryable or job.attempt >= retry.max_attempts:
        return None
    return retry.delay(job.attempt)


class JobQueue:
    """The jobs waiting to run: submitted ones in order, then retries once their backoff is over;
    and the cancels asked for. `submit` and the cancels are safe from any thread; they take
    effect at the dispatcher's next `take_in`. Everything else: the dispatcher's thread."""

    def __init__(self):
        self._ids = itertools.count()
        self._ready: list[Job] = []  # popped from the end
        self._delayed: list[tuple[float, int, Job]] = []  # a heap of (not before, job id, job)
        self._inbox: list[Job] = []
        self._cancel_groups: set[str] = set()
        self._cancel_ids: set[int] = set()
        self._lock = threading.Lock()

    # ---- any thread ----------------------------------------------------------------------
    def submit(self, requests: Iterable[ValidRequest]) -> list[Job]:
        """New jobs for checked requests, run in the order given; their first attempts."""
        with self._lock:
            jobs = [Job(next(self._ids), r) for r in requests]
            self._inbox += jobs
        return jobs

    def cancel_group(self, group: str) -> None:
        with self._lock:
            self._cancel_groups.add(group)

    def cancel_jobs(self, ids: Iterable[int]) -> None:
        with self._lock:
            self._cancel_ids.update(ids)

    # ---- the dispatcher's thread ---------------------------------------------------------
    def take_in(self) -> Optional[Callable[[Job], bool]]:
        """Queue the jobs submitted since the last call (after those already queued); the cancel
        asked for meanwhile, as a test of a job (None: no cancel)."""
        with self._lock:
            inbox, self._inbox = self._inbox, []
            groups, self._cancel_groups = self._cancel_groups, set()
            ids, self._cancel_ids = self._cancel_ids, set()
        self._ready[:0] = list(reversed(inbox))
        if not groups and not ids:
            return None
        return lambda job: job.group in groups or job.id in ids

    def cancel(self, hit: Callable[[Job], bool]) -> list[Job]:
        """Take the queued and delayed jobs that `hit` out of the queue; them."""
        out = [job for job in self._ready if hit(job)] + [d[2] for d in self._delayed if hit(d[2])]
        self._ready = [job for job in self._ready if not hit(job)]
        self._delayed = [d for d in self._delayed if not hit(d[2])]
        heapq.heapify(self._delayed)
        return out

    def retry_later(self, job: Job, delay_s: float, now: Optional[float] = None) -> None:
        """Queue `job` (a next attempt) once `delay_s` seconds have passed."""
        now = time.monotonic() if now is None else now
        heapq.heappush(self._delayed, (now + delay_s, job.id, job))

    def release_due(self, now: Optional[float] = None) -> None:
        """Queue the delayed jobs whose backoff is over."""
        now = time.monotonic() if now is None else now
        while self._delayed and self._delayed[0][0] <= now:
            self._ready.append(heapq.heappop(self._delayed)[2])

    def pop(self) -> Job:
        """The next job to run (IndexError: none is ready)."""
        return self._ready.pop()

    @property
    def ready(self) -> int:
        """Jobs that can run now."""
        return len(self._ready)

    @property
    def delayed(self) -> int:
        """Jobs waiting for their backoff."""
        return len(self._delayed)

    def next_due(self) -> Optional[float]:
        """When the first delayed job's backoff is over (monotonic clock); None: none waits."""
        return self._delayed[0][0] if self._delayed else None

    def __len__(self) -> int:
        """Jobs submitted and not taken out: not yet taken in, ready or delayed."""
        return len(self._inbox) + len(self._ready) + len(self._delayed)
