"""The async episode core: one TAU2 episode of an Agents SDK agent, scored by tau2.

`run_episode(spec, cfg, endpoints)` opens a fresh environment for (domain, task_id), runs
the agent turn by turn against the tau2 user simulator (or solo, from the ticket), ends
the episode the way tau2's orchestrator does, scores it once with tau2's evaluator and
returns an `EpisodeResult`. It never raises for an episode's own failure: infrastructure
failures come back classified in `result.failure` (reward None). `CancelledError`
propagates.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from copy import deepcopy
from dataclasses import dataclass
from typing import Optional

from tau2.data_model.message import AssistantMessage, ToolMessage, UserMessage
from tau2.data_model.simulation import TerminationReason
from tau2.orchestrator.orchestrator import DEFAULT_FIRST_AGENT_MESSAGE
from tau2.utils.utils import get_now

from rollout.clients import Endpoints, user_sim_configured
from rollout.config import RolloutConfig
from rollout.domains import DomainAssets, check_domain, load_domain
from rollout.evaluation import score_async, simulation_run
from rollout.failures import EpisodeFailure, Failure, FailureClass, InvalidInput, redact
from rollout.policy import AgentTurns, history_to_input
from rollout.results import EpisodeResult
from rollout.trajectory import EpisodeRecorder, StopEpisode
from rollout.user_sim import Tau2UserSimulator as Tau2User
from rollout.user_sim import UserSimulator



@dataclass(frozen=True)
class EpisodeSpec:
    """Which episode to run. `solo` None means: decide from the config (see `resolve`)."""

    domain: str
    task_id: str
    sample: int = 0
    seed: Optional[int] = None
    solo: Optional[bool] = None


@dataclass(frozen=True)
class Resolved:
    assets: DomainAssets
    task: object
    solo: bool


def resolve(spec: EpisodeSpec, cfg: RolloutConfig) -> Resolved:
    """Validate an episode before any model call. Raises InvalidInput naming what is valid.

    Solo mode: `spec.solo`, else `cfg.episode.solo`, else solo exactly when no user
    simulator endpoint is configured. Airline and retail cannot run solo.
    """
    check_domain(spec.domain)
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
        raise InvalidInput(f"solo=false needs a user simulator endpoint (user_llm.base_url / user_llm.model)")
    return Resolved(assets, task, solo)


async def run_episode(spec: EpisodeSpec, cfg: RolloutConfig, endpoints: Endpoints) -> EpisodeResult:
    """Run one episode; see the module docstring for the contract."""
    started = time.perf_counter()
    result = EpisodeResult(domain=spec.domain, task_id=str(spec.task_id), sample=spec.sample, seed=spec.seed)
    try:
        resolved = resolve(spec, cfg)
        result.solo = resolved.solo
        await asyncio.wait_for(_play(spec, resolved, cfg, endpoints, result), timeout=cfg.episode.timeout_s)
    except asyncio.TimeoutError:
        result.failure = Failure(FailureClass.TIMEOUT, f"episode exceeded episode.timeout_s={cfg.episode.timeout_s}")
    except EpisodeFailure as e:
        result.failure = e.failure
    except Exception as e:  # a bug or an unexpected tau2 error: classified, never scored
        result.failure = Failure(FailureClass.ENV_ERROR, redact(f"{type(e).__name__}: {e}", cfg.secrets()))
    if result.failure is not None:
        result.reward = None
        result.reward_info = None
    result.durations["total_s"] = round(time.perf_counter() - started, 4)
    return result


async def _play(spec: EpisodeSpec, resolved: Resolved, cfg: RolloutConfig, endpoints: Endpoints, result: EpisodeResult) -> None:
    task, solo = resolved.task, resolved.solo
    start_time, t0 = get_now(), time.perf_counter()
    env = resolved.assets.new_environment(solo)
    initial = task.initial_state
    history = deepcopy(initial.message_history) if initial is not None and initial.message_history else []
    for m in history:
        m.turn_idx = None
    env.set_state(
        initialization_data=initial.initialization_data if initial is not None else None,
        initialization_actions=initial.initialization_actions if initial is not None else None,
        message_history=history,
    )
    recorder = EpisodeRecorder(env, solo=solo, max_steps=cfg.episode.max_steps, max_errors=cfg.episode.max_errors, history=history)
    result.durations["env_setup_s"] = round(time.perf_counter() - t0, 4)

    episode_id = uuid.uuid4().hex
    secrets = cfg.secrets()

    def headers(role: str) -> dict[str, str]:
        if not cfg.episode.tag_requests:
            return {}
        return {"X-Rollout-Episode": episode_id, "X-Rollout-Domain": spec.domain, "X-Rollout-Task-Id": str(task.id),
                "X-Rollout-Sample": str(spec.sample), "X-Rollout-Role": role, "X-Rollout-Mode": "solo" if solo else "user"}

    agent = AgentTurns(env=env, task=task, solo=solo, recorder=recorder, client=endpoints.agent_client,
                       model=endpoints.agent_model, sampling=cfg.sampling, seed=spec.seed, headers=headers("agent"), secrets=secrets)
    user = None
    if not solo:
        user = UserSimulator(env=env, task=task, recorder=recorder, client=endpoints.user_client, model=endpoints.user_model,
                             cfg=cfg.user_llm, seed=spec.seed, headers=headers("user"), secrets=secrets, history=history)

    next_is_user, to_user = _first_turn(recorder, history, solo)
    conversation = history_to_input(recorder.messages)  # tau2's agent sees its greeting too
    termination: Optional[TerminationReason] = None
    try:
        while True:
            if next_is_user:
                recorder.check_limits()
                reply = await user.respond(to_user)
                conversation = conversation + [{"role": "user", "content": reply}]
                next_is_user = False
            else:
                conversation = await agent.run_turn(conversation)
                recorder.flush_tool_results()
                to_user = recorder.messages[-1]
                recorder.check_limits()
                next_is_user = True
    except StopEpisode as stop:
        termination = stop.reason

    messages = recorder.final_messages()
    duration = time.perf_counter() - t0
    sim = simulation_run(task=task, messages=messages, termination=termination, start_time=start_time,
                         end_time=get_now(), duration=duration, seed=spec.seed, trial=spec.sample)
    t1 = time.perf_counter()
    reward_info = await score_async(sim, task, domain=spec.domain, solo=solo)
    result.durations["evaluation_s"] = round(time.perf_counter() - t1, 4)
    result.reward = float(reward_info.reward)
    result.reward_info = reward_info.model_dump(mode="json")
    result.termination = termination.value
    result.messages = [m.model_dump(mode="json") for m in messages]
    result.invalid_tool_calls = recorder.invalid_tool_calls
    result.steps = recorder.step_count
    result.tool_errors = recorder.num_errors
    result.usage = {"agent": vars(agent.usage).copy(), "user": vars(user.usage).copy() if user else {}}


def _first_turn(recorder: EpisodeRecorder, history: list, solo: bool):
    """Who generates first, and the message they respond to (tau2's Orchestrator.initialize)."""
    if not history:
        if solo:
            return False, None
        greeting = deepcopy(DEFAULT_FIRST_AGENT_MESSAGE)
        recorder.add_opening(greeting)
        return True, greeting
    last = history[-1]
    if isinstance(last, AssistantMessage):
        if last.is_tool_call():
            raise InvalidInput("task message history ends with an unanswered agent tool call")
        return True, last
    if isinstance(last, ToolMessage):
        return last.requestor == "user", last
    if isinstance(last, UserMessage) and not last.is_tool_call() and Tau2User.is_stop(last):
        raise InvalidInput("task message history ends with the user's stop signal; nothing is left to play")
    return False, last
