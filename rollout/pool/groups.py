"""The bookkeeping of `stream_groups`: a call's groups, their extra samples, and when one is complete.

A group is every request of the call with one `group_id` (default: one task's samples). With
`extra_samples=k` the group gets k more requests, after its own: the i-th copies the group's
i-th request (round-robin, so a group over several tasks gets extras of each), with the next
sample number free for that request's task and a seed derived from it. A group is complete when
n of its requests (n: the samples asked for) are scored, or when all of them ended; it yields
its first n scored, else what ended. The group's other requests are then stragglers, and the
call cancels them (only its own jobs: other calls over the same tasks are not touched).

Groups are added as the call starts them (`extend`), and a group can be run again from the
start (`restart`, the staleness rule's regeneration): every request has a position in the
call, and ends of a group's earlier run are ignored.
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
    """See the module doc. `requests`: every (checked) request the call has started, in position
    order (each group's own, then its extras, whose seeds are derived from `base_seed`, the
    pool's); `positions[g]`: where group g's current run is in it."""

    def __init__(self, requests: list[ValidRequest], extra_samples: int, base_seed: int = 0):
        self.extra = check_extra_samples(extra_samples)
        self.base_seed = base_seed
        self.requests: list[ValidRequest] = []
        self.positions: dict[str, list[int]] = {}
        self.wanted: dict[str, int] = {}
        self.finished: dict[str, list[Trajectory]] = {}
        self.closed: set[str] = set()
        self._own: dict[str, list[ValidRequest]] = {}  # a group's requests as given (for a restart)
        self._next_sample: dict[tuple[str, str], int] = {}
        self.extend(requests)

    def extend(self, requests: list[ValidRequest]) -> list[ValidRequest]:
        """Add groups (whole: every request of a group at once; InvalidInput for a group id
        already added) and return their requests with the extras, as they are to be started."""
        members: dict[str, list[ValidRequest]] = {}
        for r in requests:
            if r.group in self.wanted:
                raise InvalidInput(
                    f"group_id '{r.group}' comes back after its group was started: give a group's requests together"
                )
            members.setdefault(r.group, []).append(r)
            task = (r.episode.domain, r.episode.task_id)
            self._next_sample[task] = max(self._next_sample.get(task, 0), r.episode.sample + 1)
        for g, rs in members.items():
            self._own[g] = rs
            self.wanted[g] = len(rs)
            self._reset(g)
        extras = [r for g in members for r in self._extras(g)]
        return self._place(list(requests) + extras)

    def restart(self, group: str) -> list[ValidRequest]:
        """Run a closed group again from the start (new positions; its earlier run's ends are ignored)."""
        self.closed.discard(group)
        self._reset(group)
        return self._place(list(self._own[group]) + self._extras(group))

    def _reset(self, group: str) -> None:
        self.positions[group] = []
        self.finished[group] = []

    def _extras(self, group: str) -> list[ValidRequest]:
        """k more samples of the group, after its own."""
        rs, out = self._own[group], []
        for i in range(self.extra):
            base = rs[i % len(rs)]
            task = (base.episode.domain, base.episode.task_id)
            out.append(base.resampled(self._next_sample[task], self.base_seed))
            self._next_sample[task] += 1
        return out

    def _place(self, requests: list[ValidRequest]) -> list[ValidRequest]:
        for r in requests:
            self.positions[r.group].append(len(self.requests))
            self.requests.append(r)
        return requests

    def add(self, trajectory: Trajectory, position: Optional[int] = None) -> Optional[list[Trajectory]]:
        """The group, if this trajectory (of the request at `position`) completes it (its first
        n scored, else what ended)."""
        g = trajectory.group_id
        if g in self.closed or (position is not None and position not in self.positions[g]):
            return None  # a straggler's end after its group was yielded, or an end of its earlier run
        done = self.finished[g]
        done.append(trajectory)
        scored = [t for t in done if t.ok]
        if len(scored) < self.wanted[g] and len(done) < self.wanted[g] + self.extra:
            return None
        self.closed.add(g)
        return (scored + [t for t in done if not t.ok])[: self.wanted[g]]

    def stragglers(self, group: str) -> bool:
        return len(self.finished[group]) < self.wanted[group] + self.extra
