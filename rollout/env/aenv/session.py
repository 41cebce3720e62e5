"""The aenv backend: an environment session on an aenv MCP server, through the aenv SDK.

`open_aenv_session(cfg)` gets one instance of this project's env (`rollout/env/aenv/module`):

- local mode (no `env.aenv.system_url`): starts its own server on a loopback address
  (`LocalAenvServer`) and talks to it with the SDK's `Environment` in its no-scheduler
  mode;
- cluster mode (`env.aenv.system_url`, i.e. AENV_SYSTEM_URL, + `env.aenv.api_key`): the
  SDK's `Environment(env_name, environment_variables, aenv_url, api_key)` creates the
  instance through the api-service and reaches it through its MCP gateway.

The session is reused across episodes through the env's `tau2_reset`; each generation is
one `tau2_step` call, the reward one `/task/reward` call. `close()` always releases the
instance (cluster: DELETE) and stops a local server. Transport errors are
`EpisodeFailure(ENV_ERROR)`; failures the env reports keep their class.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict
from typing import Optional

from rollout.core.config import RolloutConfig, api_key_of
from rollout.core.failures import EpisodeFailure, Failure, FailureClass, described, redact
from rollout.env.protocol import Opening, RawToolCall, ResetRequest, Scored, StepOutcome, from_wire
from rollout.env.user_sim import strip_provider_prefix

log = logging.getLogger(__name__)
RELEASE_TIMEOUT_S = 60.0


def _silence_sdk_logs() -> None:
    """The SDK logs every call with its arguments at INFO on stdout; keep warnings (idempotent)."""
    from aenv.core.logging import setup_logging

    setup_logging(logging.StreamHandler(), level=logging.WARNING)


def user_sim_env_vars(cfg: RolloutConfig) -> dict[str, str]:
    """TAU2_USER_LLM* variables for the env server's user simulator (AEnvironment's names).

    The key is read now (`api_key_of`: literal, file or variable) and handed to the server
    process's environment (local mode) or the instance's (cluster mode). With no model
    configured, TAU2_USER_LLM is left out and the env server asks the endpoint's /models,
    as the local backend does. Raises InvalidInput for a missing key file or variable."""
    u = cfg.user_llm
    out = {}
    if u.model:
        out["TAU2_USER_LLM"] = strip_provider_prefix(u.model)
    if u.base_url:
        out["TAU2_USER_LLM_API_BASE"] = u.base_url
    key = api_key_of(u)
    if key:
        out["TAU2_USER_LLM_API_KEY"] = key
    return out


class AenvSession:
    """An EnvSession over one aenv env instance (see module doc)."""

    def __init__(self, env, cfg: RolloutConfig, secrets: list[str], server=None):
        self._env = env
        self._cfg = cfg
        self._server = server  # LocalAenvServer in local mode
        self._timeout = cfg.env.aenv.request_timeout_s
        self._secrets = secrets

    async def _call(self, function: str, args: dict) -> dict:
        try:
            if function == "reward":
                data = await self._env.call_reward(args, timeout=self._timeout)
            else:
                data = await self._env.call_function(function, args, timeout=self._timeout)
        except (asyncio.CancelledError, EpisodeFailure):
            raise
        except Exception as e:
            where = f" (server {self._server.host}: {'alive' if self._server.alive else 'dead'})" if self._server else ""
            raise EpisodeFailure(
                FailureClass.ENV_ERROR, described(e, self._secrets, prefix=f"aenv {function} failed{where}: ")
            ) from None
        if isinstance(data, dict) and data.get("failure"):
            failure = Failure.from_dict(data["failure"])  # as the env module's state.py wrote it
            raise EpisodeFailure(failure.failure_class, failure.message)
        return data

    async def reset(self, request: ResetRequest) -> Opening:
        user = self._cfg.user_llm
        args = {
            **asdict(request),
            "user_llm": {
                "temperature": user.temperature,
                "extra_body": dict(user.extra_body),
                "max_retries": user.max_retries,
                "request_timeout_s": user.request_timeout_s,
            },
        }
        return from_wire(Opening, await self._call("tau2_reset", args))

    async def agent_step(self, text: Optional[str], tool_calls: list[RawToolCall]) -> StepOutcome:
        calls = [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in tool_calls]
        return from_wire(StepOutcome, await self._call("tau2_step", {"text": text, "tool_calls": calls}))

    async def end(self, reason: str) -> None:
        await self._call("tau2_end", {"reason": reason})

    async def finish(self) -> Scored:
        return from_wire(Scored, await self._call("reward", {}))

    async def close(self) -> None:
        """Release the instance (always) and stop a local server."""
        await _release(self._env)
        if self._server is not None:
            await asyncio.shield(self._server.stop())


async def _release(env) -> None:
    """Release an instance (cluster: DELETE), shielded from cancellation and bounded in time
    (the SDK retries an api-service that does not answer); a failure is logged, not raised."""
    try:
        await asyncio.wait_for(asyncio.shield(env.release()), RELEASE_TIMEOUT_S)
    except Exception:
        log.warning("releasing aenv instance %s failed", getattr(getattr(env, "_instance", None), "id", "?"), exc_info=True)


async def open_aenv_session(cfg: RolloutConfig, secrets: list[str]) -> AenvSession:
    """A new instance of the env and a session on it (`secrets`: the config's keys, for
    redaction). Raises EpisodeFailure(ENV_ERROR)."""
    from aenv.core.environment import Environment

    _silence_sdk_logs()
    a = cfg.env.aenv
    if a.system_url:
        env = Environment(
            env_name=a.name,
            environment_variables=user_sim_env_vars(cfg),
            aenv_url=a.system_url,
            api_key=api_key_of(a),
            ttl=a.ttl,
            timeout=a.request_timeout_s,
            startup_timeout=a.startup_timeout_s,
        )
        try:  # bounded: the SDK retries an unreachable api-service for ~17 minutes
            await asyncio.wait_for(env.initialize(), a.startup_timeout_s)
        except BaseException as e:
            await _release(env)
            if isinstance(e, TimeoutError):
                raise EpisodeFailure(
                    FailureClass.ENV_ERROR,
                    f"aenv instance not ready within env.aenv.startup_timeout_s="
                    f"{a.startup_timeout_s:g} (api-service {a.system_url})",
                ) from None
            if isinstance(e, Exception):
                raise EpisodeFailure(FailureClass.ENV_ERROR, redact(f"aenv instance failed to start: {e}", secrets)) from None
            raise
        return AenvSession(env, cfg, secrets)
    from rollout.env.aenv.servers import LocalAenvServer

    server = await LocalAenvServer.start(user_sim_env_vars(cfg), startup_timeout_s=a.startup_timeout_s)
    try:
        env = Environment(env_name=a.name, aenv_url=server.url, timeout=a.request_timeout_s, skip_for_healthy=True)
        env.dummy_instance_ip = server.host  # the SDK's no-scheduler mode, for this instance only
        await env.initialize()
    except BaseException:
        await server.stop()
        raise
    return AenvSession(env, cfg, secrets, server=server)
