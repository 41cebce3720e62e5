"""The AReaL workflow `Tau2Agent` and AEnvironment's `run_agent_return_reward` (no Ray inside).

    trainer.train(workflow="rollout.areal.Tau2Agent", workflow_kwargs={"sampling": "train", ...})

AReaL calls `Tau2Agent(**workflow_kwargs)` once and then `await agent.run(data, base_url=...,
api_key=..., http_client=...)` concurrently, n_samples times on the same `data` dict (never
mutated here). In AReaL's subproc mode no kwargs come; `OPENAI_BASE_URL` / `OPENAI_API_KEY`
are read from the process environment at call time. `run` returns a Python float; an
infrastructure failure raises `EpisodeFailure` (AReaL then drops the group); bad input
raises `InvalidInput` (also an EpisodeFailure, and a ValueError).
"""

from __future__ import annotations

import numbers
from typing import Any, Optional

from rollout.clients import open_endpoints
from rollout.config import RolloutConfig, load_config
from rollout.env.backends import session_factory
from rollout.episode import EpisodeSpec, resolve, run_episode
from rollout.failures import EpisodeFailure, InvalidInput
from rollout.results import EpisodeResult

DATA_KEYS = ("domain", "task_id", "split", "seed", "sample", "solo", "overrides")


def spec_from_data(data: dict[str, Any]) -> EpisodeSpec:
    """An EpisodeSpec from an AReaL / AEnvironment data row, checked strictly. Raises InvalidInput.

    A row is a dict with `domain` (str) and `task_id` (str or int), and optionally `split`
    (str), `seed` (int), `sample` (int >= 0), `solo` (a boolean) and `overrides` (a dict of
    config overrides); null means unset. JSON rows carry typed values, so nothing is
    coerced: `"false"` is not a boolean, `"7"` and `1.7` are not seeds, `True` is not a
    sample. Each error names the key, the value and what is valid.
    """
    if not isinstance(data, dict):
        raise InvalidInput(f"data must be a dict with 'domain' and 'task_id', got {type(data).__name__}")
    missing = [k for k in ("domain", "task_id") if data.get(k) is None]
    if missing:
        raise InvalidInput(f"data is missing {', '.join(repr(k) for k in missing)}; got keys {sorted(map(str, data))}")
    unknown = sorted(map(str, set(data) - set(DATA_KEYS)))
    if unknown:
        raise InvalidInput(f"unknown data keys {unknown}; valid keys: {', '.join(DATA_KEYS)}")
    domain = _row_value(data, "domain", "a non-empty string (a tau2 domain name)", lambda v: isinstance(v, str) and v != "")
    task_id = _row_value(data, "task_id", "a string or an integer (a task id of the domain)",
                         lambda v: (isinstance(v, str) and v != "") or _is_int(v))
    _row_value(data, "split", "a string (a split name of the domain) or null", lambda v: isinstance(v, str))
    seed = _row_value(data, "seed", "an integer or null", _is_int)
    sample = _row_value(data, "sample", "a non-negative integer", lambda v: _is_int(v) and v >= 0)
    solo = _row_value(data, "solo", "true, false or null (a JSON boolean, not a string)", _is_bool)
    _row_value(data, "overrides", "a dict of config overrides (e.g. {\"episode\": {\"max_steps\": 50}}) or null",
               lambda v: isinstance(v, dict))
    return EpisodeSpec(domain=domain, task_id=str(task_id), sample=int(sample) if sample is not None else 0,
                       seed=int(seed) if seed is not None else None, solo=bool(solo) if solo is not None else None)


def _is_int(v: Any) -> bool:
    """An integer (Python's or numpy's), not a boolean, a float or a string of digits."""
    return isinstance(v, numbers.Integral) and not _is_bool(v)


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool) or (type(v).__module__ == "numpy" and type(v).__name__ in ("bool", "bool_"))


def _row_value(data: dict, key: str, valid: str, ok) -> Any:
    """data[key] if it is null/absent or passes `ok`; else InvalidInput naming key, value and what is valid."""
    value = data.get(key)
    if value is not None and not ok(value):
        raise InvalidInput(f"data[{key!r}] = {value!r} ({type(value).__name__}) is invalid: expected {valid}")
    return value


class Tau2Agent:
    """An AReaL agent workflow over the episode core. `workflow_kwargs` are config overrides.

    Keys are those of `rollout/defaults/defaults.yaml` (nested dicts), e.g.
    `{"sampling": "eval", "user_llm": {"base_url": ..., "model": ...}, "episode": {"timeout_s": 600}}`.
    """

    def __init__(self, **workflow_kwargs: Any):
        self._overrides = dict(workflow_kwargs)
        load_config(self._overrides)  # validate now: a typo fails at construction, not mid-training

    def config(self, row_overrides: Optional[dict] = None) -> RolloutConfig:
        """The config for one run: resolved now, so environment variables of this process apply."""
        merged = _deep_merge(self._overrides, row_overrides or {})
        return load_config(merged)

    async def run(self, data: dict[str, Any], **extra_kwargs: Any) -> float:
        result = await self.run_episode(data, **extra_kwargs)
        return result.reward_or_raise()

    async def run_episode(self, data: dict[str, Any], *, base_url: Optional[str] = None, api_key: Optional[str] = None,
                          http_client=None, **_ignored: Any) -> EpisodeResult:
        """Run one episode and return the full result (the `run` contract minus the float)."""
        spec = spec_from_data(data)
        cfg = self.config(data.get("overrides"))
        resolved = resolve(spec, cfg)  # InvalidInput before any client or model call
        if data.get("split") is not None and spec.task_id not in resolved.assets.task_ids(str(data["split"])):
            raise InvalidInput(f"task_id '{spec.task_id}' is not in split '{data['split']}' of domain '{spec.domain}'")
        api_key = api_key or cfg.llm.api_key
        if api_key:
            cfg.llm.api_key = api_key  # the episode redacts every configured key
        try:
            endpoints, owned = await open_endpoints(cfg, need_user=not resolved.solo and cfg.env.backend == "local", base_url=base_url or cfg.llm.base_url,
                                                    api_key=api_key, http_client=http_client)
        except EpisodeFailure as e:
            if isinstance(e, InvalidInput):
                raise
            return EpisodeResult(domain=spec.domain, task_id=spec.task_id, sample=spec.sample, seed=spec.seed,
                                 solo=resolved.solo, failure=e.failure)
        session = None
        try:
            session = await session_factory(cfg, endpoints)()
            return await run_episode(spec, cfg, endpoints, session)
        except EpisodeFailure as e:  # the environment slot could not be opened
            return EpisodeResult(domain=spec.domain, task_id=spec.task_id, sample=spec.sample, seed=spec.seed,
                                 solo=resolved.solo, failure=e.failure)
        finally:
            if session is not None:
                await session.close()
            for client in owned:
                await client.close()


def _deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


async def run_agent_return_reward(data: dict[str, Any]) -> float:
    """AEnvironment's example signature: one episode for `data` ({"domain", "task_id",
    optional "seed", "solo", ...}) with every setting from the process environment
    (OPENAI_BASE_URL, OPENAI_API_KEY, OPENAI_MODEL, TAU2_USER_LLM, TAU2_USER_LLM_API_BASE,
    TAU2_USER_LLM_API_KEY). Returns a Python float; raises EpisodeFailure as `Tau2Agent.run`."""
    return await Tau2Agent().run(data)
