"""How one `stream_groups` call feeds the pool and hands groups back (no Ray here: the pool
submits what `to_submit` returns, tells `ended` each end, cancels what `to_cancel` names).

- Without `ahead` and without a staleness bound, every request is checked and started at once
  (a bad one refuses the call before any episode runs).
- With `ahead=k` the call keeps at most k groups started and not yet handed back: a buffer of
  k groups ahead of the trainer. `requests` may then be any iterable, even an endless
  generator: groups are read from it as they are started (a group's requests come together);
  a list is still checked whole before anything starts, a generator's groups as they are read.
- With `max_staleness` (and `groups_per_step`) the staleness bound's rules apply
  (rollout/pool/staleness.py): admission, groups handed back in the order they started (a
  group that completes early waits for those started before it), and at hand-over a group
  too old all the same is dropped whole and regenerated.

When nothing is running and the bound admits no group until the weight version moves, the call
raises instead of waiting forever (the trainer takes fewer groups per step than it said).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import groupby
from typing import Optional

from rollout.core.failures import InvalidInput
from rollout.pool.groups import Groups
from rollout.pool.requests import RolloutRequest, ValidRequest
from rollout.pool.staleness import StalenessBound
from rollout.trajectory import Trajectory


def _check_ahead(ahead) -> Optional[int]:
    if ahead is None:
        return None
    if not isinstance(ahead, int) or isinstance(ahead, bool) or ahead < 1:
        raise InvalidInput(f"ahead={ahead!r}: valid: an integer >= 1 (groups in flight ahead of the trainer), or None")
    return ahead


class GroupFlow:
    """See the module doc. `check(requests)` returns them checked (`ValidRequest`s, or raises
    InvalidInput); `version()` is the pool's current weight version; `base_seed` (the pool's)
    derives the seeds of the extra samples."""

    def __init__(
        self,
        requests: Iterable[RolloutRequest | ValidRequest],
        *,
        extra_samples: int,
        check: Callable[[list], list[ValidRequest]],
        version: Callable[[], Optional[int]],
        base_seed: int = 0,
        ahead: Optional[int] = None,
        max_staleness: Optional[int] = None,
        groups_per_step: Optional[int] = None,
    ):
        self.ahead = _check_ahead(ahead)
        self.bound = StalenessBound.of(max_staleness, groups_per_step)
        self.groups = Groups([], extra_samples, base_seed)
        self._check, self._version = check, version
        self._first_version = version()
        if isinstance(requests, Sequence) or (self.ahead is None and self.bound is None):
            requests = check(list(requests))
            self._check = list  # checked whole, before anything starts
        self._source: Optional[Iterator[list]] = (list(g) for _, g in groupby(requests, key=lambda r: r.group))
        self._eager = self.ahead is None and self.bound is None
        self._regenerate: list[str] = []
        self._cancel: list[int] = []
        self._in_start_order = self.bound is not None
        self._order: list[str] = []  # groups started and not yet released, in the order they started
        self._complete: dict[str, list[Trajectory]] = {}
        self._released: deque[tuple[str, list[Trajectory]]] = deque()
        self.started = 0  # groups started (regenerations not counted)
        self.open = 0  # groups started and not yet handed back
        self.stale_groups = 0  # dropped at hand-over and regenerated

    @property
    def done(self) -> bool:
        return self._source is None and self.open == 0

    def to_submit(self) -> list[ValidRequest]:
        """The requests to start now, in position order after those already started."""
        out: list[ValidRequest] = []
        for g in self._regenerate:
            out += self.groups.restart(g)
            self._order.append(g)  # behind the groups started before it was run again
        self._regenerate = []
        while self._source is not None and self._admits():
            group = next(self._source, None)
            if group is None:
                self._source = None
                break
            group = self._check(group)
            out += self.groups.extend(group)
            self._order.append(group[0].group)
            self.started += 1
            self.open += 1
        return out

    def check_waiting(self) -> None:
        """Before the call waits for an end: InvalidInput if nothing is running that could end
        (the bound admits no group until the weight version moves)."""
        if self.open == 0 and self._source is not None and not self._regenerate and self.bound is not None:
            raise InvalidInput(
                f"the staleness bound admits no group at weight version {self._version()} and none is running: "
                f"move the weight version after each groups_per_step={self.bound.groups_per_step} groups taken"
            )

    def _admits(self) -> bool:
        if self._eager:
            return True
        if self.ahead is not None and self.open >= self.ahead:
            return False
        return self.bound is None or self.bound.may_start(self.started, self._version(), self._first_version)

    def ended(self, position: int, trajectory: Trajectory) -> None:
        """Take one end; a group it completes is released (`next_group`): at once, or under a
        staleness bound once every group started before it is released too."""
        group = self.groups.add(trajectory, position)
        if group is None:
            return
        g = trajectory.group_id
        if self.groups.stragglers(g):
            self._cancel += self.groups.positions[g]
        self._complete[g] = group
        if not self._in_start_order:
            self._order.remove(g)
            self._released.append((g, self._complete.pop(g)))
        while self._order and self._order[0] in self._complete:
            head = self._order.pop(0)
            self._released.append((head, self._complete.pop(head)))

    def next_group(self) -> Optional[list[Trajectory]]:
        """The next released group to hand back (None: none now). A group older than the bound
        at this moment is dropped and run again instead (`stale_groups`)."""
        while self._released:
            g, group = self._released.popleft()
            if self.bound is not None and self.bound.too_old(group, self._version()):
                self.stale_groups += 1
                self._regenerate.append(g)
                continue
            self.open -= 1
            return group
        return None

    def to_cancel(self) -> list[int]:
        """Positions to cancel now (stragglers of complete groups; ended ones are ignored by the pool)."""
        out, self._cancel = self._cancel, []
        return out
