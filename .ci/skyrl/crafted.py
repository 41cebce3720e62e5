"""Crafted trajectories for the SkyRL checks: two GRPO groups with a clean, a split, a failed and an
overflowed episode, GRPO by hand, and the advantages SkyRL gave each trajectory's rows."""

from __future__ import annotations


def episode(group: str, rep: int, reward, calls, failure=None, finish="stop"):
    """A Trajectory of crafted policy calls ((prompt ids, completion ids), ...) in group `group`."""
    from rollout.core.failures import Failure, FailureClass
    from rollout.core.results import EpisodeResult
    from rollout.core.tokens import TurnRecord
    from rollout.trajectory import Trajectory

    turns = [
        TurnRecord(
            prompt_token_ids=list(p),
            completion_token_ids=list(c),
            completion_logprobs=[-0.1 * (k + 1) for k in range(len(c))],
            finish_reason=finish if n == len(calls) - 1 else "tool_calls",
            weight_version=7,
            message_index=2 * n + 1,
            served_version="8" if rep == 0 else "7",
        )
        for n, (p, c) in enumerate(calls)
    ]
    fail = None if failure is None else Failure(FailureClass(failure[0]), failure[1])
    result = EpisodeResult("airline", f"t{group}", sample=rep, reward=reward, failure=fail, turns=turns)
    return Trajectory.of(result, group_id=group, weight_version=7, tags={"instance_id": group, "repetition_id": rep})


CLEAN = [([1, 2, 3], [10, 11]), ([1, 2, 3, 10, 11, 4, 5], [12, 13])]  # the second prompt extends the first
SPLIT = [([1, 2, 3], [20, 21]), ([1, 2, 3, 99, 4, 5], [22])]  # history re-rendered: not a prefix


def crafted():
    """Group "0": rewards 1 (clean), 0 (split), 1, and a user-simulator failure; group "1": rewards
    1, 0, a context overflow before any captured call (train_zero), 1 (ends on `length`/`abort`)."""
    return [
        episode("0", 0, 1.0, CLEAN),
        episode("0", 1, 0.0, SPLIT),
        episode("0", 2, 1.0, CLEAN[:1]),
        episode("0", 3, None, CLEAN[:1], failure=("user_sim_error", "user simulator: HTTP 500")),
        episode("1", 0, 1.0, CLEAN[:1], finish="length"),
        episode("1", 1, 0.0, CLEAN, finish="abort"),
        episode("1", 2, None, [], failure=("model_error", "maximum context length is 4096 tokens")),
        episode("1", 3, 1.0, CLEAN),
    ]


def grpo(rewards: list[float]) -> list[float]:
    """GRPO's advantage of each reward in its group, by hand (mean, unbiased std, epsilon 1e-6)."""
    n = len(rewards)
    mean = sum(rewards) / n
    std = (sum((r - mean) ** 2 for r in rewards) / (n - 1)) ** 0.5
    return [(r - mean) / (std + 1e-6) for r in rewards]


def advantages(batch) -> dict[tuple[str, int], list[float]]:
    """Per trajectory, the advantage SkyRL gave each of its rows (constant over a row's response)."""
    out: dict[tuple[str, int], list[float]] = {}
    for r, tid in enumerate(batch.metadata["rows"]["trajectory_ids"]):
        values = batch["advantages"][r][batch["response_mask"][r].bool()].tolist()
        assert max(values) - min(values) < 1e-6, f"row {r}: advantage not constant over its response"
        out.setdefault((tid.instance_id, tid.repetition_id), []).append(round(values[0], 4))
    return out
