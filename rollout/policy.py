"""The policy side of an episode: an OpenAI Agents SDK agent over tau2's prompt and tools.

`AgentTurns.run_turn(conversation)` runs the agent until it speaks to the user (or the
episode stops), through `Runner.run` with `OpenAIChatCompletionsModel` on the caller's
`AsyncOpenAI` client. The system prompt and tool schemas come from the environment
session, which builds them with tau2's own agent classes (`LLMAgent`, or `LLMSoloAgent`
with the ticket and the `done` tool), so the policy sees what tau2's agent sees and
nothing of the task's evaluation criteria or user scenario. Tools are those schemas as
`FunctionTool`s; each generation goes to the session, which executes its calls in order
with requestor 'assistant'.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Optional

from agents import Agent, FunctionTool, ModelSettings, RunConfig, Runner
from agents.items import ModelResponse
from agents.models.openai_chatcompletions import OpenAIChatCompletionsModel
from agents.run_config import ToolExecutionConfig
from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage

from tau2.data_model.simulation import TerminationReason

from rollout.config import SamplingConfig
from rollout.failures import EpisodeFailure, FailureClass, redact
from rollout.session import Opening
from rollout.trajectory import RawToolCall, StopEpisode

MAX_RUNNER_TURNS = 10_000  # the recorder enforces tau2's max_steps; this only guards the SDK loop


@dataclasses.dataclass
class Usage:
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0

    def add(self, requests: int, input_tokens: int, output_tokens: int) -> None:
        self.requests += requests
        self.input_tokens += input_tokens or 0
        self.output_tokens += output_tokens or 0


class _SessionModel(OpenAIChatCompletionsModel):
    """Chat-completions model that hands each generation to the environment session.

    The session records it and acts on it (runs its tool calls, or the user's turn); the
    results wait in `results` for the FunctionTools, the user's reply in `user_reply`.
    Endpoint errors become `EpisodeFailure(MODEL_ERROR)` with the API key redacted; the
    end of the episode raises `StopEpisode`.
    """

    def __init__(self, *, model: str, openai_client, session, usage: Usage, secrets: list[str]):
        super().__init__(model=model, openai_client=openai_client)
        self._session = session
        self._usage = usage
        self._secrets = secrets
        self.results: dict[str, str] = {}
        self.user_reply: Optional[str] = None

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        try:
            response = await super().get_response(*args, **kwargs)
        except (StopEpisode, EpisodeFailure):
            raise
        except Exception as e:  # openai.APIError, ModelBehaviorError, httpx errors, ...
            raise EpisodeFailure(FailureClass.MODEL_ERROR, redact(f"{type(e).__name__}: {e}", self._secrets)) from None
        self._usage.add(1, response.usage.input_tokens, response.usage.output_tokens)
        text_parts, calls = [], []
        for item in response.output:
            if isinstance(item, ResponseOutputMessage):
                text_parts.extend(getattr(part, "text", "") or "" for part in item.content)
            elif isinstance(item, ResponseFunctionToolCall):
                calls.append(RawToolCall(id=item.call_id, name=item.name, arguments=item.arguments or ""))
        outcome = await self._session.agent_step("".join(text_parts), calls)
        if outcome.termination is not None:
            raise StopEpisode(TerminationReason(outcome.termination))
        self.results.update(outcome.results)
        self.user_reply = outcome.user_reply
        return response


def _function_tool(schema: dict, model: _SessionModel) -> FunctionTool:
    fn = schema["function"]

    async def invoke(ctx, _raw_arguments: str) -> str:
        # The session already ran this call when the generation was recorded.
        return model.results.pop(ctx.tool_call_id, f"Error: no result for tool call '{ctx.tool_call_id}'")

    return FunctionTool(
        name=fn["name"],
        description=fn.get("description", ""),
        params_json_schema=fn["parameters"],
        on_invoke_tool=invoke,
        strict_json_schema=False,
    )


@functools.lru_cache(maxsize=None)
def agent_view(domain: str, solo: bool, task_id: Optional[str]) -> tuple[str, tuple[dict, ...]]:
    """tau2's system prompt and tool schemas for the agent of a domain (cached per process).

    They depend only on the domain and mode, plus the task's ticket in solo mode (pass
    task_id None in non-solo mode). Callers must not mutate the schemas.
    """
    from rollout.domains import load_domain

    assets = load_domain(domain)
    agent = tau2_agent(assets.new_environment(solo), assets.task(task_id) if task_id is not None else None, solo)
    return agent.system_prompt, tuple(t.openai_schema for t in agent.tools)


def tau2_agent(env, task, solo: bool):
    """tau2's own agent object for this episode (used for its system prompt and tools only)."""
    from tau2.agent.llm_agent import LLMAgent, LLMSoloAgent

    if solo:
        user_tools = env.get_user_tools() if env.user_tools is not None else []
        return LLMSoloAgent(tools=env.get_tools() + user_tools, domain_policy=env.get_policy(), task=task)
    return LLMAgent(tools=env.get_tools(), domain_policy=env.get_policy())


def model_settings(sampling: SamplingConfig, *, solo: bool, seed: Optional[int], headers: dict[str, str]) -> ModelSettings:
    """The agent's sampling parameters as Agents SDK ModelSettings."""
    return ModelSettings(
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        max_tokens=sampling.max_tokens,
        parallel_tool_calls=sampling.parallel_tool_calls,
        tool_choice="required" if solo else None,  # tau2's solo agent must call a tool every turn
        extra_body=dict(sampling.extra_body) or None,
        extra_headers=headers or None,
        extra_args={"seed": seed} if (sampling.send_seed and seed is not None) else None,
    )


class AgentTurns:
    """Runs the agent one turn at a time over a session, carrying the whole conversation."""

    def __init__(self, *, session, opening: Opening, solo: bool, client, model: str, sampling: SamplingConfig,
                 seed: Optional[int], headers: dict[str, str], secrets: list[str]):
        self.usage = Usage()
        self._model = _SessionModel(model=model, openai_client=client, session=session, usage=self.usage, secrets=secrets)
        self.agent = Agent(
            name="tau2-agent",
            instructions=opening.system_prompt,
            tools=[_function_tool(t, self._model) for t in opening.tools],
            model=self._model,
            model_settings=model_settings(sampling, solo=solo, seed=seed, headers=headers),
            reset_tool_choice=not solo,
        )
        self._run_config = RunConfig(
            tracing_disabled=True,
            tool_not_found_behavior="return_error_to_model",
            tool_execution=ToolExecutionConfig(max_function_tool_concurrency=1),
        )

    async def run_turn(self, conversation: list) -> tuple[list, str]:
        """Run the agent from `conversation` (SDK input items) until it addresses the user.

        Returns the conversation with this turn's items appended and the user's reply.
        Raises StopEpisode when the episode ends and EpisodeFailure when an endpoint fails.
        """
        self._model.user_reply = None
        result = await Runner.run(self.agent, conversation, max_turns=MAX_RUNNER_TURNS, run_config=self._run_config)
        if self._model.user_reply is None:
            raise EpisodeFailure(FailureClass.ENV_ERROR, "the agent's turn ended without a user reply")
        return result.to_input_list(), self._model.user_reply


def history_to_input(messages) -> list[dict]:
    """tau2 messages the agent may see (initial history) as Agents SDK input items."""
    import json

    from tau2.data_model.message import AssistantMessage, ToolMessage, UserMessage

    items: list[dict] = []
    for m in messages:
        if isinstance(m, UserMessage) and not m.is_tool_call():
            items.append({"role": "user", "content": m.content or ""})
        elif isinstance(m, AssistantMessage):
            if m.has_text_content():
                items.append({"role": "assistant", "content": m.content})
            for tc in m.tool_calls or []:
                items.append({"type": "function_call", "call_id": tc.id, "name": tc.name, "arguments": json.dumps(tc.arguments)})
        elif isinstance(m, ToolMessage) and m.requestor == "assistant":
            items.append({"type": "function_call_output", "call_id": m.id, "output": m.content or ""})
    return items
