"""The bookkeeping of `stream_groups`: a call's groups, their extra samples, and when one is complete.

A group is every request of the call with one `group_id` (default: one task's samples). With
`extra_samples=k` the group gets k more requests, after its own: the i-th copies the group's
i-th request (round-robin, so a group over several tasks gets extras of each), with the next
sample number free for that request's task and a seed derived from it. A group is complete when
n of its requests (n: the samples asked for) are scored, or when all of them ended; it yields
its first n scored, else what ended. The group's other requests are then stragglers, and the
call cancels them (only its own jobs: other calls over the same tasks are not touched).
"""

from __future__ import annotations

from typing import Any, Optional

from rollout.core.failures import InvalidInput
from rollout.pool.requests import ValidRequest
from rollout.trajectory import Trajectory

MAX_EXTRA_SAMPLES = 64  # more redundancy than this per group is queue, not protection against stragglers


def check_extra_samples(extra_samples: Any) -> int:
    """`extra_samples` if it is an integer in 0..MAX_EXTRA_SAMPLES; else InvalidInput."""
    if not isinstance(extra_samples, int) or isinstance(extra_samples, bool) or not 0 <= extra_samples <= MAX_EXTRA_SAMPLES:
        raise InvalidInput(f"extra_samples={extra_samples!r}: valid: an integer from 0 to {MAX_EXTRA_SAMPLES}")
    return extra_samples


class Groups:
    """See the module doc. `requests`: the call's (checked) requests followed by the extras, whose
    seeds are derived from `base_seed` (the pool's); `positions[g]`: where group g's requests are in it."""

    def __init__(self, requests: list[ValidRequest], extra_samples: int, base_seed: int = 0):
        self.extra = check_extra_samples(extra_samples)
        members: dict[str, list[ValidRequest]] = {}
        next_sample: dict[tuple[str, str], int] = {}
        for r in requests:
            members.setdefault(r.group, []).append(r)
            task = (r.episode.domain, r.episode.task_id)
            next_sample[task] = max(next_sample.get(task, 0), r.episode.sample + 1)
        self.wanted = {g: len(rs) for g, rs in members.items()}
        extras = []
        for rs in members.values():  # k more samples of each group, after its own
            for i in range(self.extra):
                base = rs[i % len(rs)]
                task = (base.episode.domain, base.episode.task_id)
                extras.append(base.resampled(next_sample[task], base_seed))
                next_sample[task] += 1
        self.requests = requests + extras
        self.positions: dict[str, list[int]] = {}
        for i, r in enumerate(self.requests):
            self.positions.setdefault(r.group, []).append(i)
        self.finished: dict[str, list[Trajectory]] = {g: [] for g in self.wanted}
        self.closed: set[str] = set()

    def add(self, trajectory: Trajectory) -> Optional[list[Trajectory]]:
        """The group, if this trajectory completes it (its first n scored, else what ended)."""
        g = trajectory.group_id
        if g in self.closed:
            return None  # a straggler's end after its group was yielded
        done = self.finished[g]
        done.append(trajectory)
        scored = [t for t in done if t.ok]
        if len(scored) < self.wanted[g] and len(done) < self.wanted[g] + self.extra:
            return None
        self.closed.add(g)
        return (scored + [t for t in done if not t.ok])[: self.wanted[g]]

    def stragglers(self, group: str) -> bool:
        return len(self.finished[group]) < self.wanted[group] + self.extra
