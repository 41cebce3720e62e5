"""The trainer-neutral trajectory: one TAU2 episode, its tau2 outcome and its policy calls token for token.

A `Trajectory` is the episode's `EpisodeResult` (tau2's reward, `reward_info`, termination or a
classified failure, the transcript, and `turns`: one `TurnRecord` per policy call as the
server sent it) plus what a trainer needs on top:

- the request's identity in the batch: `group_id` (GRPO's group: the samples of one task),
  `weight_version` (the trainer's tag; servers do not report it), `tags`;
- the stitched view (`segments`: contiguous sequences with a loss mask and aligned logprobs;
  `drift`: how many call boundaries were clean and how many split; stitch.py);
- `train_action` (train, train_zero, mask, retry, drop: outcome.py) and the optional per-turn
  `credit` derived from tau2's checks (credit.py);
- how the pool got it: `attempts` and the failures of earlier attempts;
- `oldest_version` / `newest_version`: the weight versions that produced its completion tokens
  (from each call's `completion_versions`), for a trainer's staleness rules.

Per-turn view: `turns` (None where the server's answer lacked the tokens; `capture_errors` says
why). Both views are built in the worker that ran the episode.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from rollout.core.failures import Failure
from rollout.core.results import EpisodeResult
from rollout.trajectory.credit import Credit, turn_credit
from rollout.trajectory.outcome import train_action
from rollout.trajectory.stitch import Drift, Segment, stitch


@dataclass
class Trajectory:
    result: EpisodeResult
    group_id: str
    weight_version: Optional[int] = None
    tags: dict[str, Any] = field(default_factory=dict)
    train_action: str = "train"
    segments: list[Segment] = field(default_factory=list)
    drift: Drift = field(default_factory=Drift)
    credit: Optional[Credit] = None
    attempts: int = 1
    earlier_failures: list[Failure] = field(default_factory=list)

    # ---- the episode ---------------------------------------------------------------------
    domain = property(lambda self: self.result.domain)
    task_id = property(lambda self: self.result.task_id)
    sample = property(lambda self: self.result.sample)
    reward = property(lambda self: self.result.reward)
    failure = property(lambda self: self.result.failure)
    termination = property(lambda self: self.result.termination)
    turns = property(lambda self: self.result.turns)
    ok = property(lambda self: self.result.ok)

    @property
    def oldest_version(self) -> Optional[int]:
        """The oldest weight version that produced a completion token of this episode (None: no
        version is known); each call's `completion_versions` say which produced which."""
        versions = self._versions()
        return min(versions) if versions else None

    @property
    def newest_version(self) -> Optional[int]:
        """The newest weight version that produced a completion token (None: none is known)."""
        versions = self._versions()
        return max(versions) if versions else None

    def _versions(self) -> set[int]:
        return {v for t in self.result.turns if t is not None for v in t.completion_versions or () if v is not None}

    @property
    def clean(self) -> bool:
        """Every call's tokens captured and the whole episode one stitched sequence."""
        return bool(self.result.turns) and not self.result.capture_errors and len(self.segments) == 1 and self.drift.split == 0

    @classmethod
    def of(
        cls,
        result: EpisodeResult,
        *,
        group_id: str,
        weight_version: Optional[int] = None,
        tags: Optional[dict] = None,
        attempts: int = 1,
        earlier_failures: Sequence[Failure] = (),
    ) -> Trajectory:
        """The trajectory of an episode's result, a failed one included: both views, train action
        and credit (the one constructor: a trajectory is not edited once built)."""
        segments, drift = stitch(result.turns)
        credit = None
        if result.ok and result.reward_info and result.turns:
            credit = turn_credit([t.message_index if t else None for t in result.turns], result.messages, result.reward_info)
        return cls(
            result=result,
            group_id=group_id,
            weight_version=weight_version,
            tags=dict(tags or {}),
            train_action=train_action(result.failure),
            segments=segments,
            drift=drift,
            credit=credit,
            attempts=attempts,
            earlier_failures=list(earlier_failures),
        )
