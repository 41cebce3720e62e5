"""TAU2 in SkyRL: a `GeneratorInterface` whose `generate` runs the batch on the rollout pool.

SkyRL (PyPI `skyrl` 0.3.0, `skyrl/train/generators/base.py`) calls `generate(GeneratorInput)` once
per step with every row of the batch: `env_extras` (the dataset's extra columns: `domain` and
`task_id` here, see `dataset_rows`), `trajectory_ids` (`instance_id` = the dataset row, the
group; `repetition_id` = the sample), `sampling_params` (vLLM's native names) and
`batch_metadata.global_step`. Each row becomes a `RolloutRequest` on the pool, against the
trainer's inference router (`inference_engine_client.get_endpoint_url()`; an `X-Session-ID` per
episode keeps its calls on one server), with the step as the weight version and the trainer's
sampling parameters (temperature, top_p, top_k, min_p, max_tokens, stop) on every policy
request; the pool's config must have `llm.capture` on: `token_in` (the router's
`/v1/completions` with token-id prompts, `llm.tokenizer` = the policy's model directory) makes
every episode one sequence whatever the chat template does to history.

What comes back is what SkyRL trains on, from the tokens vLLM produced (never re-rendered):

- step-wise (the default, `generator.step_wise_trajectories`): one row per policy call, its
  prompt ids, its completion ids with loss mask 1 and their logprobs; the reward on the last
  step (tau2's), or per token with `credit=True` (each call's share of the expected actions on
  its last token, tau2's reward on the episode's last token); `is_last_step`,
  `trajectory_ids` repeated per step. Drift never invalidates a step;
- stitched (`step_wise=False`): one row per episode, from the stitched view; an episode that
  is not one clean sequence is masked (and counted: `tau2/split_masked`).

Failed episodes follow SkyRL's own convention (its Harbor generator): an episode the pool could
not score (`train_action` mask, retry, drop) is a placeholder row with a zero loss mask and
stop reason "error", never a silent 0.0, and by default every sample of its group is masked
too, since a masked sample still enters the group's GRPO mean and std. `train_zero` episodes
(context length exceeded) train with reward 0 and stop reason "context_length". Rollout
metrics: tau2's mean reward, failures by class, token-capture clean/split counts.

Python 3.11: SkyRL 0.3.0's `skyrl.tinker.types` builds pydantic models over `typing.TypedDict`,
which pydantic accepts only on Python >= 3.12. On 3.11, `typing.TypedDict` is bound to
`typing_extensions.TypedDict` while that one module is imported, then restored (`_skyrl`).
"""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any, Optional

from rollout.pool import Endpoint, RolloutPool, RolloutRequest
from rollout.trajectory import Trajectory


def _skyrl():
    """skyrl's generator types (see module doc for the Python 3.11 shim)."""
    if sys.version_info < (3, 12) and "skyrl.tinker.types" not in sys.modules:
        import typing

        import typing_extensions

        original = typing.TypedDict
        typing.TypedDict = typing_extensions.TypedDict
        try:
            import skyrl.tinker.types  # noqa: F401
        finally:
            typing.TypedDict = original
    from skyrl.train.generators import base

    return base


_base = _skyrl()
GeneratorInterface, TrajectoryID = _base.GeneratorInterface, _base.TrajectoryID

SAMPLING_KEYS = ("temperature", "top_p", "top_k", "min_p", "max_tokens", "stop", "min_tokens")
_STOP_REASONS = {"tool_calls": "stop", "stop": "stop", "length": "length"}
PLACEHOLDER = {"prompt": [0], "response": [0], "mask": [0], "logprobs": [0.0]}


def dataset_rows(rows: list[dict]) -> list[dict]:
    """SkyRL dataset rows for tau2 data rows ({"domain", "task_id"}): the prompt SkyRL requires
    (a placeholder: the pool builds tau2's own), the env class, and domain and task id as the
    extra columns SkyRL hands back as `env_extras`."""
    return [
        {
            "prompt": [{"role": "user", "content": f"{r['domain']}/{r['task_id']}"}],
            "env_class": "tau2",
            "domain": r["domain"],
            "task_id": str(r["task_id"]),
        }
        for r in rows
    ]


def chat_sampling(params: Optional[dict]) -> dict[str, Any]:
    """SkyRL's sampling params (vLLM's native names) as chat-completions fields vLLM accepts."""
    out = {k: params[k] for k in SAMPLING_KEYS if params and params.get(k) is not None}
    if out.get("top_k") == -1:
        out.pop("top_k")  # vLLM's "off"
    return out


class Tau2Generator(GeneratorInterface):
    """See the module doc. `policy_url`: the trainer's OpenAI-compatible endpoint (`.../v1`);
    `model`: the served model name (None: the server's first)."""

    def __init__(
        self,
        pool: RolloutPool,
        *,
        policy_url: str,
        model: Optional[str] = None,
        step_wise: bool = True,
        credit: bool = False,
        mask_group_on_failure: bool = True,
    ):
        if not pool.cfg.llm.capture:
            raise ValueError(
                "the pool's config must have llm.capture on (token_in with llm.tokenizer = the policy's model directory, "
                "or token_ids for append-only templates): SkyRL trains on the tokens"
            )
        self.pool = pool
        self.policy_url = policy_url
        self.model = model
        self.step_wise = step_wise
        self.credit = credit
        self.mask_group_on_failure = mask_group_on_failure
        self.last_trajectories: list[Trajectory] = []

    @classmethod
    def for_skyrl(cls, generator_cfg, inference_engine_client, pool: RolloutPool, **kwargs) -> Tau2Generator:
        """The generator of a SkyRL experiment (`BasePPOExp.get_generator`): its vLLM router's URL."""
        return cls(
            pool,
            policy_url=inference_engine_client.get_endpoint_url().rstrip("/") + "/v1",
            step_wise=bool(getattr(generator_cfg, "step_wise_trajectories", True)),
            **kwargs,
        )

    def requests(self, input_batch) -> list[RolloutRequest]:
        extras, ids = input_batch["env_extras"], input_batch["trajectory_ids"]
        meta = input_batch.get("batch_metadata")
        version = getattr(meta, "global_step", None)
        sampling = chat_sampling(input_batch.get("sampling_params"))
        return [
            RolloutRequest(
                extra["domain"],
                str(extra["task_id"]),
                sample=tid.repetition_id,
                group_id=tid.instance_id,
                weight_version=version,
                policy=Endpoint(  # the router keeps an X-Session-ID on one server (its prefix cache)
                    self.policy_url,
                    model=self.model,
                    headers={"X-Session-ID": f"{tid.instance_id}_{tid.repetition_id}"},
                    extra_body=sampling,
                ),
                tags={"instance_id": tid.instance_id, "repetition_id": tid.repetition_id},
            )
            for extra, tid in zip(extras, ids)
        ]

    async def generate(self, input_batch):
        """SkyRL's GeneratorOutput for the batch (see module doc); the trajectories stay in
        `last_trajectories` (for logging, and for checks against the tokens captured)."""
        trajectories = await self.pool.arun(self.requests(input_batch))
        self.last_trajectories = trajectories
        return self.output(trajectories)

    # ---- GeneratorOutput ------------------------------------------------------------------
    def output(self, trajectories: list[Trajectory]) -> dict[str, Any]:
        """SkyRL's GeneratorOutput of the pool's trajectories (in the batch's order)."""
        unusable = {
            id(t)
            for t in trajectories
            if t.train_action not in ("train", "train_zero") or (not self.step_wise and t.turns and not t.clean)
        }
        masked_groups = {t.group_id for t in trajectories if id(t) in unusable}
        rows: dict[str, list] = {
            k: []
            for k in (
                "prompt_token_ids",
                "response_ids",
                "rewards",
                "loss_masks",
                "stop_reasons",
                "rollout_logprobs",
                "trajectory_ids",
                "is_last_step",
            )
        }
        for t in trajectories:
            tid = TrajectoryID(instance_id=t.tags["instance_id"], repetition_id=t.tags["repetition_id"])
            masked = t.group_id in masked_groups if self.mask_group_on_failure else id(t) in unusable
            if masked:
                self._placeholder(rows, tid, "error")
            elif not t.turns:  # train_zero before any call was captured: nothing to train on
                self._placeholder(rows, tid, "context_length")
            elif self.step_wise:
                self._steps(rows, t, tid)
            else:
                self._stitched(rows, t, tid)
        out = dict(rows)
        if not self.step_wise:
            out.pop("is_last_step")
        out["rollout_metrics"] = metrics(trajectories, masked_groups)
        out["rollout_metrics"]["tau2/split_masked"] = float(
            sum(bool(t.ok and t.turns and not t.clean) for t in trajectories if not self.step_wise)
        )
        return out

    def _placeholder(self, rows: dict, tid, reason: str) -> None:
        self._row(
            rows,
            PLACEHOLDER["prompt"],
            PLACEHOLDER["response"],
            PLACEHOLDER["mask"],
            PLACEHOLDER["logprobs"],
            [0.0] if self.credit else 0.0,
            reason,
            tid,
            True,
        )

    def _steps(self, rows: dict, t: Trajectory, tid) -> None:
        steps = [(i, turn) for i, turn in enumerate(t.turns) if turn is not None and turn.message_index is not None]
        shares = t.credit.actions if (self.credit and t.credit) else [0.0] * len(t.turns)
        reward = float(t.reward or 0.0)
        for n, (i, turn) in enumerate(steps):
            last = n == len(steps) - 1
            ids = turn.completion_token_ids
            if self.credit:
                step_reward = [0.0] * len(ids)
                step_reward[-1] = shares[i] + (reward if last else 0.0)
            else:
                step_reward = reward if last else 0.0
            self._row(
                rows,
                turn.prompt_token_ids,
                ids,
                [1] * len(ids),
                list(turn.completion_logprobs),
                step_reward,
                _STOP_REASONS.get(turn.finish_reason or "", "stop"),
                tid,
                last,
            )

    def _stitched(self, rows: dict, t: Trajectory, tid) -> None:
        [segment] = t.segments
        reward = float(t.reward or 0.0)
        if self.credit:
            per_token = [0.0] * len(segment.response_ids)
            ends = _turn_ends(segment)
            for i, end in zip(segment.turns, ends):
                per_token[end] += t.credit.actions[i] if t.credit else 0.0
            per_token[-1] += reward
            reward_value: Any = per_token
        else:
            reward_value = reward
        last = t.turns[segment.turns[-1]]
        self._row(
            rows,
            segment.prompt_ids,
            segment.response_ids,
            segment.response_mask,
            segment.response_logprobs,
            reward_value,
            _STOP_REASONS.get(last.finish_reason or "", "stop"),
            tid,
            True,
        )

    @staticmethod
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


def metrics(trajectories: list[Trajectory], masked_groups: set[str]) -> dict[str, float]:
    """SkyRL rollout metrics of a batch: tau2's outcome and the token capture."""
    scored = [t.reward for t in trajectories if t.ok]
    failed = Counter(t.failure.failure_class.value for t in trajectories if not t.ok)
    calls = sum(len(t.turns) for t in trajectories)
    out = {
        "tau2/episodes": float(len(trajectories)),
        "tau2/scored": float(len(scored)),
        "tau2/reward_mean": sum(scored) / len(scored) if scored else 0.0,
        "tau2/masked_groups": float(len(masked_groups)),
        "tau2/policy_calls": float(calls),
        "tau2/boundaries_clean": float(sum(t.drift.clean for t in trajectories)),
        "tau2/boundaries_split": float(sum(t.drift.split for t in trajectories)),
        "tau2/trajectories_clean": float(sum(t.clean for t in trajectories)),
    }
    out.update({f"tau2/failed_{cls}": float(n) for cls, n in failed.items()})
    return out
