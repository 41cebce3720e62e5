"""A pool job: one attempt of a checked request, and the one way the pool builds its trajectory.

A `Job` is frozen: a retry is a new `Job` with the same id, the next attempt number and the
failed attempt's failure appended (`retried`). The worker that runs it and the driver that ends
it without an episode (cancelled, its worker lost, unsendable) both build the trajectory with
`Job.trajectory`, which gives it the attempt count and earlier failures it ends with.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

from rollout.core.failures import Failure
from rollout.core.results import EpisodeResult
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
