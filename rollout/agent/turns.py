"""The agent side of an episode: an OpenAI Agents SDK agent over tau2's prompt and tools.

`AgentTurns.run_turn()` runs the agent until it speaks to the user (or the episode stops),
through `Runner.run` with `PolicyModel` (rollout/agent/model.py), the SDK `Model` that shows
the policy the episode's record. The system prompt and tool schemas come from the
environment session, which builds them with tau2's own agent classes (`LLMAgent`, or
`LLMSoloAgent` with the ticket and the `done` tool), so the model sees what tau2's agent
sees and nothing of the task's evaluation criteria or user scenario. The SDK's FunctionTools
only hand back results the session already computed when it recorded the generation.
"""

from __future__ import annotations

import functools
from typing import Optional

from agents import Agent, FunctionTool, ModelSettings, RunConfig, Runner
from agents.run_config import ToolExecutionConfig

from rollout.agent.model import PolicyModel
from rollout.core.config import SamplingConfig
from rollout.core.failures import EpisodeFailure, FailureClass

MAX_RUNNER_TURNS = 10_000  # the recorder enforces tau2's max_steps; this only guards the SDK loop
_PLACEHOLDER_INPUT = [{"role": "user", "content": "(the conversation is supplied by the episode)"}]


def _function_tool(schema: dict, model: PolicyModel) -> FunctionTool:
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


@functools.cache
def run_config() -> RunConfig:
    """The RunConfig of every agent turn: no tracing, an unknown tool's call answered with an
    error, one tool call at a time. Built once per process: the SDK only reads it, and building
    one resolves the SDK's type annotations (~0.5 ms)."""
    return RunConfig(
        tracing_disabled=True,
        tool_not_found_behavior="return_error_to_model",
        tool_execution=ToolExecutionConfig(max_function_tool_concurrency=1),
    )


class AgentTurns:
    """Runs the agent, an SDK `Agent` over `policy`, one turn at a time; the conversation, usage
    and token records live in the policy model."""

    def __init__(
        self, policy: PolicyModel, *, solo: bool, sampling: SamplingConfig, seed: Optional[int], headers: dict[str, str]
    ):
        self._model = policy
        self.agent = Agent(
            name="tau2-agent",
            instructions=policy.system_prompt,
            tools=[_function_tool(t, policy) for t in policy.tools],
            model=policy,
            model_settings=model_settings(sampling, solo=solo, seed=seed, headers=headers),
            reset_tool_choice=False,
        )

    async def run_turn(self) -> str:
        """Run the agent until it addresses the user; returns the user's reply.

        Raises StopEpisode when the episode ends and EpisodeFailure when an endpoint fails.
        """
        self._model.user_reply = None
        await Runner.run(self.agent, _PLACEHOLDER_INPUT, max_turns=MAX_RUNNER_TURNS, run_config=run_config())
        if self._model.user_reply is None:
            raise EpisodeFailure(FailureClass.ENV_ERROR, "the agent's turn ended without a user reply")
        return self._model.user_reply
