"""The local backend: an environment session with tau2 in-process.

`LocalSession` opens each episode on a fresh tau2 environment (a private copy of the
domain's warm database), runs tau2's user simulator over the configured endpoint, records
the trajectory with tau2's accounting and scores it with tau2's evaluator. The aenv env
server hosts the same class, so both backends share one implementation of the episode.
"""

from __future__ import annotations

import time
from copy import deepcopy
from typing import Optional

from tau2.data_model.message import AssistantMessage, ToolMessage, UserMessage
from tau2.orchestrator.orchestrator import DEFAULT_FIRST_AGENT_MESSAGE
from tau2.utils.utils import get_now

from rollout.core.config import UserLLMConfig
from rollout.core.failures import EpisodeFailure, FailureClass, InvalidInput
from rollout.env.agent_view import agent_view
from rollout.env.domains import load_domain
from rollout.env.evaluation import score_async, simulation_run
from rollout.env.protocol import Opening, RawToolCall, ResetRequest, Scored, StepOutcome, StopEpisode, request_headers
from rollout.env.recorder import EpisodeRecorder
from rollout.env.user_sim import Tau2UserSimulator, UserSimulator


def start_environment(assets, task, solo: bool):
    """(a fresh environment of the domain in the task's initial state, the task's message history
    to continue from), as tau2's Orchestrator starts an episode."""
    env = assets.new_environment(solo)
    initial = task.initial_state
    history = deepcopy(initial.message_history) if initial is not None and initial.message_history else []
    for m in history:
        m.turn_idx = None
    env.set_state(
        initialization_data=initial.initialization_data if initial is not None else None,
        initialization_actions=initial.initialization_actions if initial is not None else None,
        message_history=history,
    )
    return env, history


class LocalSession:
    """One environment slot with tau2 in-process (see module doc and protocol.EnvSession)."""

    def __init__(
        self,
        *,
        user_client=None,
        user_model: Optional[str] = None,
        user_cfg: UserLLMConfig = UserLLMConfig(),
        secrets: list[str] = (),
    ):
        self._user_client = user_client
        self._user_model = user_model
        self._user_cfg = user_cfg
        self._secrets = list(secrets)
        self._reset_state()

    def _reset_state(self) -> None:
        self.request: Optional[ResetRequest] = None
        self.task = None
        self.recorder: Optional[EpisodeRecorder] = None
        self.user: Optional[UserSimulator] = None
        self.termination: Optional[str] = None
        self._start_time = ""
        self._t0 = 0.0
        self._durations: dict[str, float] = {}

    async def reset(self, req: ResetRequest) -> Opening:
        self._reset_state()
        assets = load_domain(req.domain)
        task = assets.task(req.task_id)
        if req.solo:
            assets.check_solo(task)
        elif self._user_client is None:
            raise InvalidInput(f"domain '{req.domain}' needs a user simulator endpoint (user_llm.base_url / user_llm.model)")
        self.request, self.task = req, task
        self._start_time, self._t0 = get_now(), time.perf_counter()
        env, history = start_environment(assets, task, req.solo)
        self.recorder = EpisodeRecorder(
            env,
            solo=req.solo,
            max_steps=req.max_steps,
            max_errors=req.max_errors,
            history=history,
            invalid_args=req.invalid_tool_args,
        )
        user_first, to_user = self._first_turn(history)
        if not req.solo:
            # tau2's Orchestrator.initialize: the message the user answers first is not in its history
            user_history = history[:-1] if user_first and history else history
            self.user = UserSimulator(
                domain=req.domain,
                task=task,
                recorder=self.recorder,
                client=self._user_client,
                model=self._user_model,
                cfg=self._user_cfg,
                seed=req.seed,
                headers=request_headers(req, "user"),
                secrets=self._secrets,
                history=user_history,
                empty_retries=req.empty_reply_retries,
            )
        system_prompt, tools = agent_view(req.domain, req.solo, task.id if req.solo else None)
        self._durations["env_setup_s"] = round(time.perf_counter() - self._t0, 4)
        if user_first:
            try:
                self.recorder.check_limits()
                await self.user.respond(to_user)
                self.recorder.check_limits()  # as tau2's loop after each step: the agent may not get a turn
            except StopEpisode as stop:
                self.termination = stop.reason.value
        return Opening(
            system_prompt=system_prompt, tools=list(tools), conversation=self.recorder.agent_view(0), termination=self.termination
        )

    def _first_turn(self, history: list):
        """Who generates first, and the message they answer (tau2's Orchestrator.initialize)."""
        if not history:
            if self.request.solo:
                return False, None
            greeting = deepcopy(DEFAULT_FIRST_AGENT_MESSAGE)
            self.recorder.add_opening(greeting)
            return True, greeting
        last = history[-1]
        if isinstance(last, AssistantMessage):
            if last.is_tool_call():
                raise InvalidInput("task message history ends with an unanswered agent tool call")
            return True, last
        if isinstance(last, ToolMessage):
            return last.requestor == "user", last
        if isinstance(last, UserMessage) and not last.is_tool_call() and Tau2UserSimulator.is_stop(last):
            raise InvalidInput("task message history ends with the user's stop signal; nothing is left to play")
        return False, last

    async def agent_step(self, text: Optional[str], tool_calls: list[RawToolCall]) -> StepOutcome:
        if self.recorder is None:
            raise EpisodeFailure(FailureClass.ENV_ERROR, "agent_step before reset")
        if self.termination is not None:
            return StepOutcome(termination=self.termination)
        outcome = StepOutcome()
        rec = self.recorder
        start = len(rec.messages)
        try:
            rec.check_limits()
            results = rec.record_agent_response(text, tool_calls)
            if results is not None:
                outcome.results = results
            else:
                rec.check_limits()
                outcome.user_reply = await self.user.respond(rec.messages[-1])
            rec.check_limits()
        except StopEpisode as stop:
            self.termination = outcome.termination = stop.reason.value
        outcome.seen = rec.agent_view(start)
        if len(rec.messages) > start and isinstance(rec.messages[start], AssistantMessage):
            outcome.message_index = start
        return outcome

    def agent_stop(self) -> str:
        """End the episode as the agent's stop (tau2's gym `done`, for the upstream env API)."""
        if self.termination is None:
            self.termination = self.recorder.record_agent_stop().reason.value
        return self.termination

    async def end(self, reason: str) -> None:
        from tau2.data_model.simulation import TerminationReason

        if self.recorder is None:
            raise EpisodeFailure(FailureClass.ENV_ERROR, "end before reset")
        if self.termination is None:
            self.termination = self.recorder.stop(TerminationReason(reason)).reason.value

    async def finish(self) -> Scored:
        from tau2.data_model.simulation import TerminationReason

        if self.recorder is None or self.termination is None:
            raise EpisodeFailure(FailureClass.ENV_ERROR, "finish before the episode ended")
        req, rec = self.request, self.recorder
        messages = rec.final_messages()
        sim = simulation_run(
            task_id=self.task.id,
            messages=messages,
            termination=TerminationReason(self.termination),
            start_time=self._start_time,
            end_time=get_now(),
            duration=time.perf_counter() - self._t0,
            seed=req.seed,
            trial=req.sample,
        )
        t1 = time.perf_counter()
        reward_info = await score_async(sim, self.task, domain=req.domain, solo=req.solo)
        self._durations["evaluation_s"] = round(time.perf_counter() - t1, 4)
        return Scored(
            reward=float(reward_info.reward),
            reward_info=reward_info.model_dump(mode="json"),
            termination=self.termination,
            messages=[m.model_dump(mode="json") for m in messages],
            steps=rec.step_count,
            tool_errors=rec.num_errors,
            invalid_tool_calls=rec.invalid_tool_calls,
            user_usage=vars(self.user.usage).copy() if self.user else {},
            durations=dict(self._durations),
        )

    async def close(self) -> None:
        self._reset_state()
