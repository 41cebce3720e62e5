"""SkyRL's GeneratorOutput of the pool's trajectories: which rows, which rewards, what a failure becomes.

No SkyRL import: the SkyRL facts it relies on (SkyRL 0.3.0, file:line in `skyrl/`):

- GRPO, RLOO and MAXRL score a row by the sum of its token rewards and normalise within the rows
  that share a uid (`backends/skyrl_train/utils/ppo_utils.py:1287-1336`, `:1203-1252`,
  `:1340-1371`); GAE and REINFORCE++ read the token rewards as they are (`:1256-1283`,
  `:1168-1199`) and whiten over the batch's response tokens;
- step-wise (`generator.step_wise_trajectories`, default False, `train/config/config.py:841`):
  the uid of a row is its `trajectory_ids[i].instance_id` (`train/trainer.py:364-367`), any
  number of rows per trajectory is valid (`train/utils/trainer_utils.py:711-712`), the
  advantage of a trajectory is computed from its last step's row alone and broadcast to its
  steps, "so we ignore per-step rewards" (`train/trainer.py:1128-1165`), and SkyRL refuses
  GAE / REINFORCE++ there (`train/utils/utils.py:345-353`);
- stitched (step-wise off): exactly one row per sample (`trainer_utils.py:711-712`), grouped by
  the dataset uid (`trainer.py:345-354`): a row cannot be left out of its group.

So (the `Layout` checks these before any episode runs):

- a failed (`mask`, `retry`, `drop`) episode, and in stitched mode an episode that is not one
  clean sequence, is "unusable". With `mask_group_on_failure` (the default) every sample of its
  group becomes a placeholder row (zero loss mask, reward 0, stop reason "error"): the group is
  out of the update and no real sample is compared with a placeholder. Without it (step-wise
  only) the unusable sample has no row at all, so the group's statistics are those of the
  samples that were scored; a group with no usable sample keeps placeholder rows (SkyRL needs
  one row per prompt for its mini-batches, `train/dataset/preprocess.py:223-290`), which only
  meet each other;
- `train_zero` (context overflow) trains with reward 0: its rows, or, when no call was captured,
  a placeholder with reward 0 and stop reason "context_length" that stays in its group;
- per-turn credit (`credit=True`) only where an estimator reads token rewards: stitched mode
  with GAE or REINFORCE++; each call's share of tau2's expected actions on its last token,
  tau2's reward on the episode's last token;
- finish reasons one to one: the engine's stop (chat's `tool_calls` is vLLM's stop after tool
  parsing), length and abort keep their names; anything else passes through as reported.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional

from rollout.trajectory import Trajectory

# SkyRL's built-in estimators (ppo_utils.py:405-410) that read a row's token rewards themselves
# (returns to go); the others (grpo, rloo, maxrl) read one score per row, the sum of its token rewards
TOKEN_ESTIMATORS = ("gae", "reinforce++")
STOP_REASONS = {"stop": "stop", "tool_calls": "stop", "length": "length", "abort": "abort"}
PLACEHOLDER = {"prompt": [0], "response": [0], "mask": [0], "logprobs": [0.0]}
ROW_KEYS = (
    "prompt_token_ids",
    "response_ids",
    "rewards",
    "loss_masks",
    "stop_reasons",
    "rollout_logprobs",
    "trajectory_ids",
    "is_last_step",
)


@dataclass(frozen=True)
class Layout:
    """How trajectories become SkyRL rows: `step_wise` as SkyRL's
    `generator.step_wise_trajectories`, `estimator` as `trainer.algorithm.advantage_estimator`.
    Raises ValueError (one line, naming the fix) on a combination SkyRL would not train as meant."""

    step_wise: bool = False
    credit: bool = False
    mask_group_on_failure: bool = True
    estimator: str = "grpo"

    def __post_init__(self):
        if self.credit and self.step_wise:
            raise ValueError(
                "credit=True with step-wise trajectories: SkyRL computes each trajectory's advantage from its last step "
                "alone and ignores the other steps' rewards (and refuses gae / reinforce++ step-wise); per-turn credit "
                "needs generator.step_wise_trajectories=false with advantage_estimator gae or reinforce++"
            )
        if self.credit and self.estimator not in TOKEN_ESTIMATORS:
            raise ValueError(
                f"credit=True with advantage_estimator={self.estimator!r}: it scores a row by the sum of its token "
                "rewards, so per-turn credit would only reshape the outcome (up to 2.0); valid with credit: "
                f"{', '.join(TOKEN_ESTIMATORS)} (stitched), or credit=False"
            )
        if not self.mask_group_on_failure and not self.step_wise:
            raise ValueError(
                "mask_group_on_failure=False with stitched trajectories: SkyRL keeps one row per sample grouped by the "
                "prompt's uid, so a failed sample's placeholder reward would enter its group's mean and std; use "
                "generator.step_wise_trajectories=true (merge_stepwise_output=true trains split-free runs as one "
                "sequence) or keep mask_group_on_failure=True"
            )


def stop_reason(finish_reason: Optional[str]) -> str:
    """SkyRL's stop reason for an engine's finish reason (module doc)."""
    if finish_reason is None:
        return "unknown"
    return STOP_REASONS.get(finish_reason, finish_reason)


def usable(t: Trajectory, layout: Layout) -> bool:
    """Whether the episode has rows of its own in this layout (module doc)."""
    if t.train_action == "train_zero":
        return True
    if t.train_action != "train":
        return False
    return bool(_steps(t)) if layout.step_wise else t.clean


def generator_output(
    trajectories: list[Trajectory], layout: Layout, trajectory_id: Callable[[str, int], Any] = lambda i, r: (i, r)
) -> dict[str, Any]:
    """SkyRL's GeneratorOutput of the batch's trajectories, in the batch's order (module doc).
    `trajectory_id(instance_id, repetition_id)` builds SkyRL's TrajectoryID."""
    bad = {id(t) for t in trajectories if not usable(t, layout)}
    groups: dict[str, list[Trajectory]] = {}
    for t in trajectories:
        groups.setdefault(t.group_id, []).append(t)
    masked = {g for g, ts in groups.items() if any(id(t) in bad for t in ts)}
    if not layout.mask_group_on_failure:  # only groups with nothing usable keep placeholders
        masked = {g for g in masked if all(id(t) in bad for t in groups[g])}
    rows: dict[str, list] = {k: [] for k in ROW_KEYS}
    left_out = 0
    for t in trajectories:
        tid = trajectory_id(t.tags["instance_id"], t.tags["repetition_id"])
        if t.group_id in masked:
            _placeholder(rows, tid, 0.0, "error", layout)
        elif id(t) in bad:
            left_out += 1
        elif layout.step_wise and _steps(t):
            _step_rows(rows, t, tid)
        elif not layout.step_wise and t.clean:
            _stitched_row(rows, t, tid, layout)
        else:  # train_zero with no row of its tokens (none captured, or not one sequence): reward 0, no tokens
            _placeholder(rows, tid, 0.0, "context_length", layout)
    out: dict[str, Any] = dict(rows)
    if not layout.step_wise:
        out.pop("is_last_step")
    out["rollout_metrics"] = metrics(trajectories, layout, masked, left_out)
    return out


def _steps(t: Trajectory) -> list:
    return [turn for turn in t.turns if turn is not None and turn.message_index is not None and turn.prompt_token_ids]


def _placeholder(rows: dict, tid, reward: float, reason: str, layout: Layout) -> None:
    p = PLACEHOLDER
    _row(rows, p["prompt"], p["response"], p["mask"], p["logprobs"], [reward] if layout.credit else reward, reason, tid, True)


def _step_rows(rows: dict, t: Trajectory, tid) -> None:
    steps = _steps(t)
    for n, turn in enumerate(steps):
        last = n == len(steps) - 1
        ids = turn.completion_token_ids
        reward = float(t.reward or 0.0) if last else 0.0
        _row(
            rows,
            turn.prompt_token_ids,
            ids,
            [1] * len(ids),
            list(turn.completion_logprobs),
            reward,
            stop_reason(turn.finish_reason),
            tid,
            last,
        )


def _stitched_row(rows: dict, t: Trajectory, tid, layout: Layout) -> None:
    [segment] = t.segments
    reward = float(t.reward or 0.0)
    value: Any = reward
    if layout.credit:
        value = [0.0] * len(segment.response_ids)
        shares = t.credit.actions if t.credit else [0.0] * len(t.turns)
        for i, end in zip(segment.turns, _turn_ends(segment)):
            value[end] += shares[i]
        value[-1] += reward
    last = t.turns[segment.turns[-1]]
    _row(
        rows,
        segment.prompt_ids,
        segment.response_ids,
        segment.response_mask,
        segment.response_logprobs,
        value,
        stop_reason(last.finish_reason),
        tid,
        True,
    )


def _row(rows, prompt, response, mask, logprobs, reward, stop, tid, last) -> None:
    rows["prompt_token_ids"].append(list(prompt))
    rows["response_ids"].append(list(response))
    rows["loss_masks"].append(list(mask))
    rows["rollout_logprobs"].append(list(logprobs))
    rows["rewards"].append(reward)
    rows["stop_reasons"].append(stop)
    rows["trajectory_ids"].append(tid)
    rows["is_last_step"].append(last)


def _turn_ends(segment) -> list[int]:
    """The index in `response_ids` of each stitched call's last token."""
    mask = segment.response_mask
    return [i for i, m in enumerate(mask) if m and (i + 1 == len(mask) or not mask[i + 1])]


def metrics(trajectories: list[Trajectory], layout: Layout, masked_groups: set[str], left_out: int) -> dict[str, float]:
    """SkyRL rollout metrics of a batch: tau2's outcome, what was masked or left out, the token
    capture, finish reasons and weight versions (requested and, where the engine reports one,
    served) of the policy calls."""
    scored = [t.reward for t in trajectories if t.ok]
    failed = Counter(t.failure.failure_class.value for t in trajectories if not t.ok)
    calls = [turn for t in trajectories for turn in t.turns if turn is not None]
    finish = Counter(stop_reason(turn.finish_reason) for turn in calls)
    out = {
        "tau2/episodes": float(len(trajectories)),
        "tau2/scored": float(len(scored)),
        "tau2/reward_mean": sum(scored) / len(scored) if scored else 0.0,
        "tau2/masked_groups": float(len(masked_groups)),
        "tau2/left_out": float(left_out),
        "tau2/split_masked": float(0 if layout.step_wise else sum(bool(t.ok and t.turns and not t.clean) for t in trajectories)),
        "tau2/policy_calls": float(sum(len(t.turns) for t in trajectories)),
        "tau2/boundaries_clean": float(sum(t.drift.clean for t in trajectories)),
        "tau2/boundaries_split": float(sum(t.drift.split for t in trajectories)),
        "tau2/trajectories_clean": float(sum(t.clean for t in trajectories)),
    }
    out.update({f"tau2/failed_{cls}": float(n) for cls, n in failed.items()})
    out.update({f"tau2/finish_{reason}": float(n) for reason, n in finish.items()})
    for name, values in (
        ("weight_version", [turn.weight_version for turn in calls]),
        ("served_version", [turn.served_version for turn in calls]),
    ):
        numbers = [float(v) for v in values if _number(v)]
        if numbers:
            out[f"tau2/{name}_min"], out[f"tau2/{name}_max"] = min(numbers), max(numbers)
    return out


def _number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
