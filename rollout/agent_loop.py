"""The agent side of an episode: an OpenAI Agents SDK agent over tau2's prompt and tools.

`AgentTurns.run_turn()` runs the agent until it speaks to the user (or the episode stops),
through `Runner.run` with `OpenAIChatCompletionsModel` on the caller's `AsyncOpenAI`
client. The system prompt and tool schemas come from the environment session, which
builds them with tau2's own agent classes (`LLMAgent`, or `LLMSoloAgent` with the ticket
and the `done` tool), so the model sees what tau2's agent sees and nothing of the task's
evaluation criteria or user scenario.

What the model is shown is the environment's record, not the SDK's bookkeeping: every
request carries the conversation as tau2 would send it (`StepOutcome.seen`: the recorded
messages through tau2's own converter, so tool-call arguments re-serialised as tau2 does,
tau2's error text for an unknown tool, results in call order), and the model's tool-call
ids as it produced them. The SDK only sees unique ids of its own (servers that number
calls `call_0` in every response, or repeat an id, are handled), and its FunctionTools
merely hand back results the session already computed when it recorded the generation.
"""

from __future__ import annotations

import itertools
from typing import Any, Optional

from agents import Agent, FunctionTool, ModelSettings, RunConfig, Runner
from agents.items import ModelResponse
from agents.models.openai_chatcompletions import OpenAIChatCompletionsModel
from agents.run_config import ToolExecutionConfig
from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage
from tau2.data_model.simulation import TerminationReason

from rollout.config import SamplingConfig
from rollout.env.messages import chat_to_input_items
from rollout.env.protocol import Opening, RawToolCall, StopEpisode, is_empty_reply
from rollout.failures import EpisodeFailure, FailureClass, redact
from rollout.results import Usage

MAX_RUNNER_TURNS = 10_000  # the recorder enforces tau2's max_steps; this only guards the SDK loop
EMPTY_REPLY_RETRIES = 3  # tau2's generate: DEFAULT_MAX_RETRIES regenerations of an empty reply
_PLACEHOLDER_INPUT = [{"role": "user", "content": "(the conversation is supplied by the episode)"}]


class _SessionModel(OpenAIChatCompletionsModel):
    """Chat-completions model that hands each generation to the environment session.

    Every request sends `self.conversation` (the environment's record) instead of the
    SDK's input. An empty reply is regenerated up to `empty_retries` times, as tau2's
    `generate`. The session records the generation and acts on it (runs its tool calls, or
    the user's turn); the conversation grows by what the session says the agent now sees.
    Endpoint errors become `EpisodeFailure(MODEL_ERROR)` with the API key redacted; the
    end of the episode raises `StopEpisode`.
    """

    def __init__(self, *, model: str, openai_client, session, conversation: list[dict], usage: Usage,
                 secrets: list[str], empty_retries: int):
        super().__init__(model=model, openai_client=openai_client)
        self._session = session
        self._usage = usage
        self._secrets = secrets
        self._empty_retries = empty_retries
        self._ids = itertools.count()
        self.conversation = conversation
        self.results: dict[str, str] = {}  # SDK-side call id -> result text (for its FunctionTools)
        self.user_reply: Optional[str] = None

    async def get_response(self, system_instructions, input, model_settings, tools, output_schema, handoffs, tracing,
                           *args: Any, **kwargs: Any) -> ModelResponse:
        for _ in range(self._empty_retries + 1):
            try:
                response = await super().get_response(system_instructions, list(self.conversation), model_settings, tools,
                                                      output_schema, handoffs, tracing, *args, **kwargs)
            except (StopEpisode, EpisodeFailure):
                raise
            except Exception as e:  # openai.APIError, ModelBehaviorError, httpx errors, ...
                raise EpisodeFailure(FailureClass.MODEL_ERROR, redact(f"{type(e).__name__}: {e}", self._secrets)) from None
            self._usage.add(1, response.usage.input_tokens, response.usage.output_tokens)
            text, calls = _generation(response)
            if not is_empty_reply(text, calls):
                break
        outcome = await self._session.agent_step(text, calls)
        self.conversation.extend(chat_to_input_items(outcome.seen))
        if outcome.termination is not None:
            raise StopEpisode(TerminationReason(outcome.termination))
        self.user_reply = outcome.user_reply
        # The SDK gets ids of its own (it rejects repeated ids); the model keeps seeing its own.
        for item, result in zip((i for i in response.output if isinstance(i, ResponseFunctionToolCall)), outcome.results):
            item.call_id = f"{item.call_id}#sdk{next(self._ids)}"
            self.results[item.call_id] = result
        return response


def _generation(response: ModelResponse) -> tuple[str, list[RawToolCall]]:
    """The text and tool calls of one model response, as the model produced them."""
    text_parts, calls = [], []
    for item in response.output:
        if isinstance(item, ResponseOutputMessage):
            text_parts.extend(getattr(part, "text", "") or "" for part in item.content)
        elif isinstance(item, ResponseFunctionToolCall):
            calls.append(RawToolCall(id=item.call_id, name=item.name, arguments=item.arguments or ""))
    return "".join(text_parts), calls


def _function_tool(schema: dict, model: _SessionModel) -> FunctionTool:
    fn = schema["function"]

    async def invoke(ctx, _raw_arguments: str) -> str:
        # The session already ran this call when the generation was recorded.
        return model.results.pop(ctx.tool_call_id, "")

    return FunctionTool(
        name=fn["name"],
        description=fn.get("description", ""),
        params_json_schema=fn["parameters"],
        on_invoke_tool=invoke,
        strict_json_schema=False,
    )


def model_settings(sampling: SamplingConfig, *, solo: bool, seed: Optional[int], headers: dict[str, str]) -> ModelSettings:
    """The agent's sampling parameters as Agents SDK ModelSettings (unset ones are not sent).

    tool_choice is tau2's: "required" for the solo agent (it must call a tool every turn),
    "auto" otherwise (tau2's `generate` sends "auto" whenever there are tools).
    """
    return ModelSettings(
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        max_tokens=sampling.max_tokens,
        parallel_tool_calls=sampling.parallel_tool_calls,
        tool_choice="required" if solo else "auto",
        extra_body=dict(sampling.extra_body) or None,
        extra_headers=headers or None,
        extra_args={"seed": seed} if (sampling.send_seed and seed is not None) else None,
    )


class AgentTurns:
    """Runs the agent one turn at a time over a session; the conversation lives here."""

    def __init__(self, *, session, opening: Opening, solo: bool, client, model: str, sampling: SamplingConfig,
                 seed: Optional[int], headers: dict[str, str], secrets: list[str],
                 empty_retries: int = EMPTY_REPLY_RETRIES):
        self.usage = Usage()
        self._model = _SessionModel(model=model, openai_client=client, session=session,
                                    conversation=chat_to_input_items(opening.conversation), usage=self.usage, secrets=secrets,
                                    empty_retries=empty_retries)
        self.agent = Agent(
            name="tau2-agent",
            instructions=opening.system_prompt,
            tools=[_function_tool(t, self._model) for t in opening.tools],
            model=self._model,
            model_settings=model_settings(sampling, solo=solo, seed=seed, headers=headers),
            reset_tool_choice=False,
        )
        self._run_config = RunConfig(
            tracing_disabled=True,
            tool_not_found_behavior="return_error_to_model",
            tool_execution=ToolExecutionConfig(max_function_tool_concurrency=1),
        )

    @property
    def conversation(self) -> list[dict]:
        """The conversation as the model is shown it (Agents SDK input items)."""
        return self._model.conversation

    async def run_turn(self) -> str:
        """Run the agent until it addresses the user; returns the user's reply.

        Raises StopEpisode when the episode ends and EpisodeFailure when an endpoint fails.
        """
        self._model.user_reply = None
        await Runner.run(self.agent, _PLACEHOLDER_INPUT, max_turns=MAX_RUNNER_TURNS, run_config=self._run_config)
        if self._model.user_reply is None:
            raise EpisodeFailure(FailureClass.ENV_ERROR, "the agent's turn ended without a user reply")
        return self._model.user_reply
