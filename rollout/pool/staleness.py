"""The staleness bound of an asynchronous training loop: how old a group's tokens may be.

A token's version is the weight version that sampled it (`TurnRecord.completion_versions`); a
trajectory's age when the trainer takes it is the pool's current weight version minus its
oldest token's version. `max_staleness` = η bounds that age (AReaL's η, SkyRL's
`max_staleness_steps`, prime-rl's `max_off_policy_steps`): η = 0 trains only on tokens of the
weights being trained.

Three rules keep a `stream_groups` call inside the bound:

- **Admission** (the rule of AReaL and SkyRL): with `groups_per_step` = B groups per training
  step, the call starts its n-th group (counting from 0) only while
  `n < (V - V0 + η + 1) * B`, V the current version and V0 the version when the call began.
- **Hand-over in start order**: groups are handed back in the order they started; a group that
  completes early waits for those started before it (the pool keeps running others meanwhile).
  With the trainer taking B groups per step, the n-th group is then taken at version
  V0 + n // B, and admission makes that at most its start version + η: the bound holds
  exactly, nothing is dropped for having been overtaken, and long tasks are not starved by
  short ones (out-of-order hand-over would drop slow groups again and again).
- **At hand-over**, a group older than the bound all the same (a trainer that takes more or
  fewer groups per step than it said) is not handed to the trainer: the whole group is dropped
  (a group's samples are only comparable together) and its requests run again from the start,
  behind the groups already started; both are counted in `stats()["stale_groups"]`.

Without a weight version (none set on the pool and none on the tokens) nothing is bounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from rollout.core.failures import InvalidInput
from rollout.trajectory import Trajectory


def _count(value, name: str, *, minimum: int) -> Optional[int]:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise InvalidInput(f"{name}={value!r}: valid: an integer >= {minimum}, or None")
    return value


@dataclass(frozen=True)
class StalenessBound:
    """η (`max_staleness`) and B (`groups_per_step`); see the module doc."""

    max_staleness: int
    groups_per_step: int

    @classmethod
    def of(cls, max_staleness, groups_per_step) -> Optional[StalenessBound]:
        """The bound of a `stream_groups` call's arguments (None: unbounded). Raises InvalidInput."""
        eta = _count(max_staleness, "max_staleness", minimum=0)
        per_step = _count(groups_per_step, "groups_per_step", minimum=1)
        if eta is None:
            if per_step is not None:
                raise InvalidInput(f"groups_per_step={per_step} paces admission under a staleness bound: set max_staleness too")
            return None
        if per_step is None:
            raise InvalidInput(
                f"max_staleness={eta} needs groups_per_step (the groups the trainer takes per step, which paces admission)"
            )
        return cls(eta, per_step)

    def may_start(self, started_groups: int, version: Optional[int], first_version: Optional[int]) -> bool:
        """Whether the call may start its next group (the admission rule)."""
        steps = (version or 0) - (first_version or 0)
        return started_groups < (steps + self.max_staleness + 1) * self.groups_per_step

    def too_old(self, group: list[Trajectory], version: Optional[int]) -> bool:
        """Whether a finished group is older than the bound at `version` (the hand-over rule)."""
        oldest = oldest_version(group)
        return version is not None and oldest is not None and version - oldest > self.max_staleness


def oldest_version(group: list[Trajectory]) -> Optional[int]:
    """The oldest token version in a group (None: no trajectory knows its tokens' versions)."""
    known = [t.oldest_version for t in group if t.oldest_version is not None]
    return min(known) if known else None
