"""The AReaL workflow `Tau2Agent` and AEnvironment's `run_agent_return_reward` (no Ray inside).

    trainer.train(workflow="rollout.areal.Tau2Agent", workflow_kwargs={"sampling": "train", ...})

AReaL calls `Tau2Agent(**workflow_kwargs)` once and then `await agent.run(data, base_url=...,
api_key=..., http_client=...)` concurrently, n_samples times on the same `data` dict (never
mutated here). In AReaL's subproc mode no kwargs come; `OPENAI_BASE_URL` / `OPENAI_API_KEY`
are read from the process environment at call time. `run` returns a Python float; an
infrastructure failure raises `EpisodeFailure` (AReaL then drops the group); bad input
raises `InvalidInput` (also an EpisodeFailure, and a ValueError).

Episodes run as a sweep worker runs them: config, clients and environment sessions are kept
per process and reused (rollout/areal/runtime.py); each episode's API key goes with its own
requests only.
"""

from __future__ import annotations

from typing import Any, Optional

from rollout.agent.episode import check_episode
from rollout.agent.runner import PolicyEndpoint
from rollout.areal.rows import spec_from_data
from rollout.areal.runtime import RUNTIMES
from rollout.core.config import RolloutConfig, api_key_of
from rollout.core.failures import InvalidInput
from rollout.core.results import EpisodeResult
from rollout.env.domains import load_domain


def _deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


class Tau2Agent:
    """An AReaL agent workflow over the episode core. `workflow_kwargs` are config overrides.

    Keys are those of `rollout/defaults/defaults.yaml` (nested dicts), e.g.
    `{"sampling": "eval", "user_llm": {"base_url": ..., "model": ...}, "episode": {"timeout_s": 600}}`.
    """

    def __init__(self, **workflow_kwargs: Any):
        self._overrides = dict(workflow_kwargs)
        RUNTIMES.config(self._overrides)  # validate now: a typo fails at construction, not mid-training

    def config(self, row_overrides: Optional[dict] = None) -> RolloutConfig:
        """The config of a run with these row overrides (resolved once per process, see runtime.py)."""
        return RUNTIMES.config(_deep_merge(self._overrides, row_overrides or {}))[1]

    async def run(self, data: dict[str, Any], **extra_kwargs: Any) -> float:
        result = await self.run_episode(data, **extra_kwargs)
        return result.reward_or_raise()

    async def run_episode(
        self,
        data: dict[str, Any],
        *,
        base_url: Optional[str] = None,
        api_key: Optional[str] = None,
        http_client=None,
        **_ignored: Any,
    ) -> EpisodeResult:
        """Run one episode and return the full result (the `run` contract minus the float)."""
        spec = spec_from_data(data)
        runtime = RUNTIMES.runtime(_deep_merge(self._overrides, data.get("overrides") or {}))
        cfg = runtime.cfg
        episode = check_episode(spec, cfg)  # InvalidInput before any client or model call; not checked again
        if data.get("split") is not None and episode.task_id not in load_domain(episode.domain).task_ids(str(data["split"])):
            raise InvalidInput(f"task_id '{spec.task_id}' is not in split '{data['split']}' of domain '{spec.domain}'")
        policy = PolicyEndpoint(
            base_url=base_url,
            api_key=api_key or api_key_of(cfg.llm),
            http_client=http_client if cfg.llm.caller_http_client else None,
        )
        runner = await runtime.runner()
        return await runner.run(episode, policy)


async def run_agent_return_reward(data: dict[str, Any]) -> float:
    """AEnvironment's example signature: one episode for `data` ({"domain", "task_id",
    optional "seed", "solo", ...}) with every setting from the process environment
    (OPENAI_BASE_URL, OPENAI_API_KEY, OPENAI_MODEL, TAU2_USER_LLM, TAU2_USER_LLM_API_BASE,
    TAU2_USER_LLM_API_KEY). Returns a Python float; raises EpisodeFailure as `Tau2Agent.run`."""
    return await Tau2Agent().run(data)
