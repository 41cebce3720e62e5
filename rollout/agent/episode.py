"""The async episode core: one TAU2 episode of an Agents SDK agent, scored by tau2.

`check_episode(spec, cfg)` checks an `EpisodeSpec` against its domain and the config once,
into a `ValidEpisode`; `run_episode(episode, cfg, endpoints, session)` resets an environment
session (any backend)
to a fresh episode of (domain, task_id), runs the agent turn by turn against the tau2
user simulator (or solo, from the ticket) until the episode ends the way tau2's
orchestrator ends it, has the session score it once with tau2's evaluator and returns an
`EpisodeResult`. It never raises for an episode's own failure: infrastructure
failures come back classified in `result.failure` (reward None). `CancelledError`
propagates.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Optional

from rollout.agent.model import PolicyModel
from rollout.agent.policy_route import PolicyRoute
from rollout.agent.token_in import TokenInCalls
from rollout.agent.turns import AgentTurns
from rollout.core.clients import EpisodeClients, user_sim_configured
from rollout.core.clock import EpisodeClock
from rollout.core.config import RolloutConfig
from rollout.core.failures import EpisodeFailure, Failure, FailureClass, InvalidInput, described, frames
from rollout.core.results import EpisodeResult
from rollout.core.tokenin.chat_format import load_chat_format
from rollout.env.domains import check_domain, load_domain
from rollout.env.protocol import EnvSession, ResetRequest, StopEpisode, request_headers
from rollout.env.task_sets import register_task_sets

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EpisodeSpec:
    """Which episode to run, as asked for. `solo` None means: decide from the config (see
    `check_episode`, which turns a spec into the `ValidEpisode` that is run)."""

    domain: str
    task_id: str
    sample: int = 0
    seed: Optional[int] = None
    solo: Optional[bool] = None
    weight_version: Optional[int] = None  # the trainer's tag of the policy's weights (recorded with captured tokens)


@dataclass(frozen=True)
class ValidEpisode:
    """An episode checked against its domain and a config, ready to run: made by `check_episode`
    only, and run as it is (`run_episode` does not check it again). Small and plain, so that it
    can be checked in one process (a pool's driver) and run in another (its worker): `solo` is
    decided, `tau2_domain` is the tau2 domain its environment runs in (a task set's domain)."""

    domain: str
    task_id: str
    sample: int
    seed: Optional[int]
    solo: bool
    tau2_domain: str
    weight_version: Optional[int] = None

    def result(self, failure: Optional[Failure] = None) -> EpisodeResult:
        """This episode's result: its identity with `failure` (it could not be played or scored),
        or with no outcome yet (`run_episode` fills one in)."""
        return EpisodeResult(
            domain=self.domain,
            task_id=self.task_id,
            sample=self.sample,
            seed=self.seed,
            solo=self.solo,
            tau2_domain=self.tau2_domain,
            failure=failure,
        )


def check_episode(spec: EpisodeSpec, cfg: RolloutConfig) -> ValidEpisode:
    """The episode of `spec` under `cfg`, checked before any model call. Raises InvalidInput
    naming what is valid.

    `spec.domain` is any name tau2's registry knows or a task set of `cfg.task_sets` (registered
    here, once per process). Solo mode: `spec.solo`, else `cfg.episode.solo`, else solo exactly
    when no user simulator endpoint is configured. Airline and retail cannot run solo.
    """
    register_task_sets(cfg.task_sets)
    check_domain(spec.domain)
    if spec.domain in cfg.task_sets and cfg.env.backend != "local":
        raise InvalidInput(
            f"task set '{spec.domain}' runs on env.backend=local only (the {cfg.env.backend} environment server "
            f"knows tau2's registered domains and task sets, not the config's task_sets)"
        )
    assets = load_domain(spec.domain)
    task = assets.task(spec.task_id)
    solo = spec.solo if spec.solo is not None else cfg.episode.solo
    if solo is None:
        solo = not user_sim_configured(cfg.user_llm)
        if solo and not assets.supports_solo:
            raise InvalidInput(
                f"domain '{spec.domain}' needs a user simulator endpoint: set user_llm.base_url and "
                f"user_llm.model (or TAU2_USER_LLM_API_BASE and TAU2_USER_LLM)"
            )
    if solo:
        assets.check_solo(task)
    elif not user_sim_configured(cfg.user_llm):
        raise InvalidInput("solo=false needs a user simulator endpoint (user_llm.base_url / user_llm.model)")
    return ValidEpisode(
        domain=spec.domain,
        task_id=str(spec.task_id),
        sample=spec.sample,
        seed=spec.seed,
        solo=bool(solo),
        tau2_domain=assets.domain,
        weight_version=spec.weight_version,
    )


async def run_episode(
    episode: ValidEpisode,
    cfg: RolloutConfig,
    endpoints: EpisodeClients,
    session: EnvSession,
    *,
    secrets: list[str],
    requested: Optional[float] = None,
    clock: Optional[EpisodeClock] = None,
    route: Optional[PolicyRoute] = None,
) -> EpisodeResult:
    """Run one checked episode on `session` (a free environment slot); see the module docstring.
    `secrets` are the config's keys (`cfg.secrets()`), redacted from every message.
    `requested` (perf_counter) is when the episode was asked for: `durations["start_s"]` is
    the time from then until its environment was reset (waiting for a slot included).
    `clock` (default: a new one) holds the `episode.timeout_s` budget, which does not run while
    a request waits for an endpoint cap (rollout/core/clock.py). `route` (default: `endpoints`,
    never held) says where each policy call goes: the runner's weight state holds and re-routes
    it (rollout/agent/policy_route.py)."""
    started = time.perf_counter()
    clock = clock or EpisodeClock(cfg.episode.timeout_s)
    requested = started if requested is None else requested
    secrets = [*secrets, endpoints.agent_api_key]
    route = route or PolicyRoute(endpoints)
    route.secrets = secrets
    result = episode.result()
    try:
        async with clock.limit():
            await _play(episode, cfg, route, session, result, secrets, requested)
    except TimeoutError:
        result.failure = Failure(
            FailureClass.TIMEOUT,
            f"episode exceeded episode.timeout_s={cfg.episode.timeout_s} (waits for endpoint caps not counted)",
        )
    except EpisodeFailure as e:
        result.failure = e.failure
    except Exception as e:  # a bug or an unexpected tau2 error: classified, never scored
        result.failure = Failure(FailureClass.ENV_ERROR, described(e, secrets))
        log.warning(
            "episode %s/%s/%s: unexpected error, classified env_error: %s\n%s",
            episode.domain,
            episode.task_id,
            episode.sample,
            result.failure.message,
            frames(e),
        )
    if result.failure is not None:
        result.reward = None
        result.reward_info = None
    result.durations["total_s"] = round(time.perf_counter() - started, 4)
    return result


async def _play(
    episode: ValidEpisode,
    cfg: RolloutConfig,
    route: PolicyRoute,
    session: EnvSession,
    result: EpisodeResult,
    secrets: list[str],
    requested: float,
) -> None:
    ep = cfg.episode
    request = ResetRequest(
        domain=episode.domain,
        task_id=str(episode.task_id),
        solo=episode.solo,
        sample=episode.sample,
        seed=episode.seed,
        episode_id=uuid.uuid4().hex,
        max_steps=ep.max_steps,
        max_errors=ep.max_errors,
        tag_requests=ep.tag_requests,
        invalid_tool_args=ep.invalid_tool_args,
        empty_reply_retries=ep.empty_reply_retries,
    )
    result.episode_id = request.episode_id
    opening = await session.reset(request)
    result.durations["start_s"] = round(time.perf_counter() - requested, 4)
    agent_usage = {}
    if opening.termination is None:
        token_in = None
        if cfg.llm.capture == "token_in":
            token_in = TokenInCalls(
                load_chat_format(cfg.llm.tokenizer, cfg.llm.chat_template_kwargs),
                cfg.llm,
                secrets=secrets,
                weight_version=episode.weight_version,
                max_prompt_tokens=ep.max_prompt_tokens,
                max_response_tokens=ep.max_response_tokens,
            )
        policy = PolicyModel(
            route=route,
            opening=opening,
            session=session,
            secrets=secrets,
            empty_retries=ep.empty_reply_retries,
            capture=cfg.llm.capture,
            weight_version=episode.weight_version,
            token_in=token_in,
        )
        agent = AgentTurns(
            policy,
            solo=episode.solo,
            sampling=cfg.sampling,
            seed=episode.seed,
            headers=request_headers(request, "agent"),  # the endpoint's own go with each request (the route's)
        )
        try:
            while True:
                await agent.run_turn()
        except StopEpisode:
            pass
        finally:
            agent_usage = {**vars(policy.usage), "continued": policy.continued, "restarted": policy.restarted}
            result.turns, result.capture_errors = policy.turns, policy.capture_errors
            result.budget_reached = policy.budget_reached
    scored = await session.finish()
    result.reward = scored.reward
    result.reward_info = scored.reward_info
    result.termination = scored.termination
    result.messages = scored.messages
    result.invalid_tool_calls = scored.invalid_tool_calls
    result.steps = scored.steps
    result.tool_errors = scored.tool_errors
    result.usage = {"agent": agent_usage, "user": scored.user_usage}
    result.durations.update(scored.durations)
