"""What verl trains of one tau2 trajectory: the rules, without verl's types (rollout/trainers/verl.py
wraps them in `AgentLoopOutput`s).

verl has two trainers, and they differ in what a sample may be:

- v1 (`trainer.use_v1: true`, the default in 0.9.1): `run` may return a list of outputs per
  session (`verl/trainer/ppo/v1/agent_loop_tq.py`, `_agent_loop_postprocess`), each stored under
  `{uid}_{session_id}_{index}`; an empty list stores nothing, so the session is not in its group.
  GRPO reads each session's last output and gives its advantage to the session's other outputs
  (`verl/trainer/ppo/v1/utils.py`, `compute_advantage_for_multi_trajectories`).
- v0 (deprecated): one padded sequence per sample (`AgentLoopWorker._agent_loop_postprocess`),
  every sample has a score, and GRPO's group statistics see every sample of the `uid`.

`plan` decides per trajectory, from its train action (rollout/trajectory/outcome.py):

| outcome | v1 | v0 |
|---|---|---|
| scored, one sequence within the budget | one output, tau2's reward | one sequence, tau2's reward |
| scored, split into k segments | k outputs, tau2's reward on each | dropped |
| overflow (`train_zero`) | its segments, reward 0.0 | its sequence (if one), reward 0.0; else dropped |
| failed (`mask`, `retry`, `drop`) | `[]`: not in the group | dropped |
| longer than the budget | `[]`, counted as over budget | dropped, counted as over budget |

The budget is verl's: every sequence's prompt within `prompt_length` and its response within
`response_length`. A sequence over it is never cut and trained with the whole episode's
reward (the actions after the cut would still count): it is dropped. A dropped v0 sample is one
masked token with reward 0.0 (v0 needs a row and a score per sample): it carries no loss, but
its 0.0 enters its group's mean and std, which v0 cannot avoid.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Optional

from rollout.pool import derive_seed
from rollout.trajectory import Segment, Trajectory


@dataclass(frozen=True)
class Budget:
    """verl's sequence shape: `rollout.prompt_length` and `rollout.response_length`."""

    prompt_length: int
    response_length: int

    def over(self, segment: Segment) -> str:
        """Why `segment` does not fit ("" when it does)."""
        if len(segment.prompt_ids) > self.prompt_length:
            return f"prompt of {len(segment.prompt_ids)} tokens > prompt_length {self.prompt_length}"
        if len(segment.response_ids) > self.response_length:
            return f"response of {len(segment.response_ids)} tokens > response_length {self.response_length}"
        return ""


@dataclass
class Plan:
    """What verl gets of a trajectory: the `segments` to train, each with `reward`; or none, and
    why (`dropped`; `over_budget` when the reason is the budget)."""

    segments: list[Segment] = field(default_factory=list)
    reward: float = 0.0
    dropped: str = ""
    over_budget: bool = False


def plan(t: Optional[Trajectory], budget: Budget, *, v1: bool) -> Plan:
    """The sequences verl trains of `t` (None: the episode never produced a trajectory). See the
    module doc for the table."""
    if t is None:
        return Plan(dropped="no trajectory")
    if t.train_action == "train":
        reward = float(t.reward)
    elif t.train_action == "train_zero":
        reward = 0.0
    else:
        return Plan(dropped=t.failure.failure_class.value if t.failure else t.train_action)
    if not t.segments:
        return Plan(dropped="tokens absent")
    if not v1 and not t.clean:
        why = f"split by drift ({t.drift.split} boundaries)" if t.drift.split else "tokens absent"
        return Plan(dropped=f"{why}: v0 trains one sequence per sample")
    for segment in t.segments:
        why = budget.over(segment)
        if why:
            return Plan(dropped=f"over budget: {why}", over_budget=True)
    return Plan(segments=list(t.segments), reward=reward)


def served_versions(t: Optional[Trajectory], fallback: Optional[int]) -> tuple[int, int]:
    """(min, max) weight version of the tokens that served `t`, for verl's `min_global_steps` /
    `max_global_steps`: the per-token versions where the calls recorded them
    (`TurnRecord.completion_versions`: the engine's reported version, else the pool's at
    sending), else each call's engine-reported version where it is an integer
    (`served_version`), else the version its request carried (`weight_version`); `fallback`
    (then -1) when nothing names one. verl reads both as ints."""
    versions = []
    for turn in (t.turns if t is not None else []) or []:
        if turn is None:
            continue
        per_token = [int(v) for v in turn.completion_versions or [] if v is not None]
        if per_token:
            versions += per_token
            continue
        served = _integer(turn.served_version)
        version = served if served is not None else turn.weight_version
        if version is not None:
            versions.append(int(version))
    if not versions:
        version = -1 if fallback is None else int(fallback)
        return version, version
    return min(versions), max(versions)


def _integer(value: Any) -> Optional[int]:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def sample_of(row: dict[str, Any]) -> tuple[int, bool]:
    """The sample number of a verl row within its group, and whether a rerun gets the same one.

    v1 passes `session_id` (0..n-1 in the group). v0 passes none: its `priority` (the row's
    position in the whole batch, set by `AgentLoopManager.generate_sequences` before the batch is
    split across workers) is unique and reproducible; without it (a worker driven directly) the
    sample is a random 62-bit number: unique, not reproducible. Never a count per worker: a group
    split across two workers would number its samples twice."""
    for key in ("session_id", "priority"):
        if row.get(key) is not None:
            return int(row[key]), True
    return uuid.uuid4().int >> 66, False


def episode_seed(base_seed: int, step: Optional[int], domain: str, task_id: str, sample: int) -> int:
    """The sampling seed of one episode: the pool's rule (`derive_seed`) over the run's base seed,
    the episode's identity and the trainer's step, so each step samples afresh and a rerun of
    the same step samples the same (no step: the identity alone)."""
    return derive_seed(base_seed, domain, str(task_id), sample, step)
