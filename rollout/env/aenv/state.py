"""The state behind this project's AEnvironment env module (`rollout/env/aenv/module/src/`).

One aenv MCP server process holds one `Tau2EnvState`: one environment session (a
`LocalSession`, the same code as the local backend), reset per episode, so one instance
serves many episodes. Two ways in:

- this project's protocol (`tau2_reset`, `tau2_step`, the reward): one call per agent
  generation, exact tau2 semantics; used by `AenvSession`;
- the upstream `tau2-env` functions (`tau2_get_system_prompt`, `tau2_get_available_tools`,
  `tau2_get_task_info`, `tau2_get_status`, `tau2_send_message`, `tau2_done`, the reward at
  /task/reward) and one MCP tool per tau2 tool, configured by the same TAU2_* variables,
  so AEnvironment's own example agent runs against it unchanged.

Nothing returned ever contains a secret: the user simulator's API key stays in this
process's environment. Failures come back as `{"failure": {"class", "message"}}`.
"""

from __future__ import annotations

import json
import os
from typing import Any, Optional

from rollout.core.config import UserLLMConfig
from rollout.core.failures import EpisodeFailure, Failure, FailureClass, redact
from rollout.env.local import LocalSession
from rollout.env.protocol import Opening, RawToolCall, ResetRequest, Scored, from_wire, to_wire

UPSTREAM_MAX_STEPS = 50  # the upstream env's TAU2_MAX_STEPS default


def _truthy(value: Optional[str], default: bool) -> bool:
    return default if value is None or value == "" else value.strip().lower() in ("1", "true", "yes")


class Tau2EnvState:
    """See module doc. `environ` is read once: TAU2_DOMAIN, TAU2_TASK_ID, TAU2_SOLO_MODE,
    TAU2_MAX_STEPS, TAU2_USER_LLM, TAU2_USER_LLM_API_BASE, TAU2_USER_LLM_API_KEY."""

    def __init__(self, environ: dict[str, str] = os.environ):
        self.domain = environ.get("TAU2_DOMAIN") or None
        self.task_id = environ.get("TAU2_TASK_ID") or None
        self.max_steps = int(environ.get("TAU2_MAX_STEPS") or UPSTREAM_MAX_STEPS)
        self.user_model = environ.get("TAU2_USER_LLM") or None
        self.user_base_url = environ.get("TAU2_USER_LLM_API_BASE") or None
        self._user_key = environ.get("TAU2_USER_LLM_API_KEY") or None
        self.solo = _truthy(environ.get("TAU2_SOLO_MODE"), default=self.user_model is None)
        self._session: Optional[LocalSession] = None
        self._session_user_cfg: Optional[UserLLMConfig] = None
        self._session_client = None
        self._session_model_resolved = False
        self.opening: Optional[Opening] = None
        self.termination: Optional[str] = None
        self.scored: Optional[Scored] = None
        self.steps = 0
        self.last_observation = ""
        self.rewards: list[float] = []
        self.failed: Optional[dict] = None  # the episode's infrastructure failure, if it had one

    # ---- this project's protocol ---------------------------------------------------------
    async def reset(self, user_llm: Optional[dict] = None, **request: Any) -> dict:
        """Start a fresh episode on this instance; returns the Opening.

        `request` holds the fields of `ResetRequest` (domain, task_id, solo, ... as the
        agent side's `asdict(request)`); fields this version does not know are ignored, so
        a newer client still works. `user_llm`: the user simulator's sampling settings."""
        missing = [k for k in ("domain", "task_id", "solo") if request.get(k) is None]
        if missing:
            return _failed(FailureClass.INVALID_INPUT, f"tau2_reset needs {', '.join(missing)}")
        req = from_wire(ResetRequest, {**request, "task_id": str(request["task_id"])})
        try:
            session = await self._session_for(user_llm or {}, need_user=not req.solo)
            self.opening = await session.reset(req)
        except EpisodeFailure as e:
            return self._failure(e)
        self.domain, self.task_id, self.solo = req.domain, req.task_id, req.solo
        self.termination, self.scored, self.steps, self.rewards = self.opening.termination, None, 0, []
        self.failed = None
        user_turns = [i["content"] for i in self.opening.conversation if i.get("role") == "user"]
        self.last_observation = user_turns[-1] if user_turns else ""
        return to_wire(self.opening)

    async def step(self, text: Optional[str] = None, tool_calls: Optional[list[dict]] = None) -> dict:
        """One agent generation: the StepOutcome {"results" (per call, in order), "user_reply", "termination", "seen"}."""
        if self._session is None or self.opening is None:
            return _failed(FailureClass.ENV_ERROR, "no episode: call tau2_reset first")
        calls = [RawToolCall(id=c["id"], name=c["name"], arguments=c.get("arguments") or "") for c in tool_calls or []]
        try:
            outcome = await self._session.agent_step(text, calls)
        except EpisodeFailure as e:
            return self._failure(e)
        self.steps += 1
        self.termination = outcome.termination
        if outcome.user_reply is not None:
            self.last_observation = outcome.user_reply
        elif outcome.results:
            self.last_observation = outcome.results[-1]
        return to_wire(outcome)

    async def end(self, reason: str) -> dict:
        """End the episode now with tau2 termination `reason` (the agent side's budget)."""
        if self._session is None or self.opening is None:
            return _failed(FailureClass.ENV_ERROR, "no episode: call tau2_reset first")
        try:
            await self._session.end(reason)
        except (EpisodeFailure, ValueError) as e:
            return self._failure(e) if isinstance(e, EpisodeFailure) else _failed(FailureClass.INVALID_INPUT, str(e))
        self.termination = self._session.termination
        return {"termination": self.termination}

    async def reward(self) -> dict:
        """tau2's reward for the finished episode (computed once), plus the upstream fields. An
        episode that failed (user simulator, environment) has no reward: its failure, with
        `total_reward: null` (never a 0.0 for an infrastructure failure)."""
        if self.failed is not None:
            return {**self.failed, "rewards": [], "total_reward": None, "done": True}
        if self.termination is None:
            return {
                "rewards": self.rewards,
                "total_reward": 0.0,
                "done": False,
                "steps": self._session.recorder.step_count if self._session and self._session.recorder else 0,
            }
        if self.scored is None:
            try:
                self.scored = await self._session.finish()
            except EpisodeFailure as e:
                return self._failure(e)
            self.rewards = [self.scored.reward]
        return {**to_wire(self.scored), "rewards": self.rewards, "total_reward": self.scored.reward, "done": True}

    # ---- the upstream tau2-env functions ---------------------------------------------------
    async def ensure_episode(self) -> Optional[dict]:
        """Start the TAU2_* configured episode on first use (the upstream env starts at load)."""
        if self.opening is not None:
            return None
        if not (self.domain and self.task_id):
            return _failed(FailureClass.INVALID_INPUT, "set TAU2_DOMAIN and TAU2_TASK_ID, or call tau2_reset")
        out = await self.reset(domain=self.domain, task_id=self.task_id, solo=self.solo, max_steps=self.max_steps)
        return out if "failure" in out else None

    async def send_message(self, message: str) -> dict:
        failed = await self.ensure_episode()
        if failed:
            return failed
        out = await self.step(text=message)
        if "failure" in out:
            return out
        reward = await self._reward_if_done()
        return {"observation": self.last_observation, "reward": reward, "done": self.termination is not None}

    async def done(self) -> dict:
        failed = await self.ensure_episode()
        if failed:
            return failed
        if self.termination is None:  # as tau2's gym `done`: the agent stops the episode
            self.termination = self._session.agent_stop()
            self.steps += 1
        await self._reward_if_done()
        return {
            "done": self.termination is not None,
            "total_reward": None if self.failed else sum(self.rewards),
            "steps": self.steps,
            "final_observation": self.last_observation,
        }

    async def call_tool(self, name: str, arguments: dict) -> dict:
        """One MCP tool call as a single-call agent generation (upstream tool result shape)."""
        failed = await self.ensure_episode()
        if failed:
            return {"error": failed["failure"]["message"], "done": True}
        call_id = f"mcp_{self.steps}"
        out = await self.step(tool_calls=[{"id": call_id, "name": name, "arguments": json.dumps(arguments)}])
        if "failure" in out:
            return {"error": out["failure"]["message"], "done": True}
        reward = await self._reward_if_done()
        observation = out["results"][0] if out["results"] else self.last_observation
        return {"observation": observation, "reward": reward, "done": self.termination is not None, "step": self.steps}

    async def status(self) -> dict:
        """Upstream's status, without the secrets upstream echoes (only non-secret settings)."""
        await self.ensure_episode()
        return {
            "step": self.steps,
            "max_steps": self.max_steps,
            "done": self.termination is not None,
            "termination": self.termination,
            "last_observation": self.last_observation,
            "rewards": self.rewards,
            "total_reward": sum(self.rewards),
            "environment": {
                "TAU2_DOMAIN": self.domain,
                "TAU2_TASK_ID": self.task_id,
                "TAU2_SOLO_MODE": str(self.solo).lower(),
                "TAU2_USER_LLM": self.user_model,
            },
        }

    async def system_prompt(self) -> Any:
        failed = await self.ensure_episode()
        return failed or self.opening.system_prompt

    async def available_tools(self) -> Any:
        failed = await self.ensure_episode()
        return failed or self.opening.tools

    async def task_info(self) -> dict:
        failed = await self.ensure_episode()
        if failed:
            return failed
        return {
            "task_id": self.task_id,
            "domain": self.domain,
            "tools": [t["function"]["name"] for t in self.opening.tools],
            "max_steps": self.max_steps,
            "solo_mode": self.solo,
        }

    # ---- internals -----------------------------------------------------------------------------
    async def _reward_if_done(self) -> Optional[float]:
        """0.0 while the episode runs (upstream's), tau2's reward once it ended, None if it failed."""
        if self.termination is None and self.failed is None:
            return 0.0
        out = await self.reward()
        return None if out.get("total_reward") is None else float(out["total_reward"])

    async def _session_for(self, user_llm: dict, need_user: bool) -> LocalSession:
        """The session, rebuilt only when the user simulator settings change.

        The user model is resolved as on the local backend (`rollout.core.clients.resolve_model`):
        TAU2_USER_LLM, else the first model the user endpoint lists at /models. A user
        endpoint that cannot be asked raises EpisodeFailure(USER_SIM_ERROR), never ENV_ERROR.
        """
        cfg = from_wire(UserLLMConfig, {**user_llm, "base_url": self.user_base_url, "model": self.user_model})
        if self._session is None or cfg != self._session_user_cfg:
            client = None
            if self.user_base_url or self.user_model:
                from rollout.core.clients import make_client

                client = make_client(cfg, api_key=self._user_key, role="user_llm")
            self._session = LocalSession(
                user_client=client, user_model=self.user_model, user_cfg=cfg, secrets=[self._user_key] if self._user_key else []
            )
            self._session_user_cfg = cfg
            self._session_client = client
            self._session_model_resolved = self.user_model is not None
        if need_user and not self._session_model_resolved and self._session_client is not None:
            from rollout.core.clients import resolve_model

            model = await resolve_model(
                self._session_client, None, role="user_llm", secrets=[self._user_key] if self._user_key else []
            )
            self._session = LocalSession(
                user_client=self._session_client,
                user_model=model,
                user_cfg=cfg,
                secrets=[self._user_key] if self._user_key else [],
            )
            self._session_model_resolved = True
        return self._session

    def _failure(self, e: EpisodeFailure) -> dict:
        self.failed = _failed(e.failure_class, redact(e.failure.message, [self._user_key]))
        return self.failed


def _failed(failure_class: FailureClass, message: str) -> dict:
    """A failure as the env module's tools answer it: `{"failure": {"class", "message"}}`."""
    return {"failure": Failure(failure_class, message).to_dict()}
