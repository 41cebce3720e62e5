"""The tau2 user simulator, asynchronous, over any OpenAI-compatible endpoint.

Same requests and protocol as tau2's `UserSimulator` under `tau2 run`: its system prompt
(tau2's simulation guidelines plus `str(task.user_scenario)`: persona and instructions),
its role flipping, its tools (telecom users have device tools, executed with requestor
'user' on the episode's environment, `tool_choice: "auto"`), its regeneration of empty
replies (tau2's `generate`) and its stop signals (###STOP###, ###TRANSFER###,
###OUT-OF-SCOPE###). Only the transport differs: an `AsyncOpenAI` client instead of litellm.
"""

from __future__ import annotations

import functools
from typing import Optional

from tau2.data_model.message import Message, SystemMessage
from tau2.data_model.simulation import TerminationReason
from tau2.user.base import UserState, is_valid_user_history_message
from tau2.user.user_simulator import UserSimulator as Tau2UserSimulator

from rollout.core.clients import reply_of
from rollout.core.config import UserLLMConfig
from rollout.core.failures import EpisodeFailure, FailureClass, described
from rollout.core.results import Usage
from rollout.env.domains import load_domain
from rollout.env.messages import to_chat_messages
from rollout.env.protocol import RawToolCall, is_empty_reply
from rollout.env.recorder import EpisodeRecorder, InvalidArguments

LITELLM_PREFIXES = ("openai/", "hosted_vllm/", "litellm_proxy/")


def strip_provider_prefix(model: str) -> str:
    """'openai/gpt-4.1' -> 'gpt-4.1' (tau2/AEnvironment name models the litellm way)."""
    for prefix in LITELLM_PREFIXES:
        if model.startswith(prefix):
            return model[len(prefix) :]
    return model


@functools.cache
def _user_tools(domain: str) -> tuple[Optional[tuple], Optional[tuple[dict, ...]]]:
    """tau2's user tools of a domain and their schemas (None: its users have none), built once
    per process (a schema is a pydantic JSON-schema generation: ~1 ms per tool)."""
    env = load_domain(domain).new_environment(False)
    if env.user_tools is None:
        return None, None
    tools = tuple(env.get_user_tools())
    return tools, tuple(t.openai_schema for t in tools)


@functools.lru_cache(maxsize=4096)
def user_view(domain: str, task_id: str) -> tuple[str, Optional[tuple[dict, ...]]]:
    """The user simulator's system prompt for a task, as `tau2 run` builds it
    (`UserSimulator(instructions=str(task.user_scenario))`), and its tool schemas (cached)."""
    tools, schemas = _user_tools(domain)
    task = load_domain(domain).task(task_id)
    prompt = Tau2UserSimulator(tools=list(tools) if tools else None, instructions=str(task.user_scenario)).system_prompt
    return prompt, schemas


class UserSimulator:
    """One episode's simulated customer."""

    def __init__(
        self,
        *,
        domain: str,
        task,
        recorder: EpisodeRecorder,
        client,
        model: str,
        cfg: UserLLMConfig,
        seed: Optional[int],
        headers: dict[str, str],
        secrets: list[str],
        empty_retries: int,
        history: list[Message] = (),
    ):
        system_prompt, tools = user_view(domain, task.id)
        # the request's messages, kept in step with the conversation (tau2's UserState, role-flipped)
        self._chat = to_chat_messages([SystemMessage(role="system", content=system_prompt)])
        self._add([m for m in history if is_valid_user_history_message(m)])
        self._tools = list(tools) if tools else None
        self._recorder = recorder
        self._client = client
        self._model = strip_provider_prefix(model)
        self._cfg = cfg
        self._seed = seed
        self._headers = headers
        self._secrets = secrets
        self._empty_retries = empty_retries
        self.usage = Usage()

    async def respond(self, agent_message: Message) -> str:
        """The user's reply to the agent's message (after any device tool calls).

        Raises StopEpisode(USER_STOP) when the user ends the conversation, StopEpisode for
        step/error limits, and EpisodeFailure(USER_SIM_ERROR) when the endpoint fails.
        """
        self._add([agent_message])
        while True:
            self._recorder.check_limits()
            text, raw_calls = await self._generate()
            try:
                message, tool_results = self._recorder.record_user_message(text, raw_calls)
            except InvalidArguments as e:
                raise EpisodeFailure(FailureClass.USER_SIM_ERROR, str(e)) from None
            self._add([message])
            if not message.is_tool_call():
                if Tau2UserSimulator.is_stop(message):
                    raise self._recorder.stop(TerminationReason.USER_STOP)
                return message.content
            self._add(tool_results)

    def _add(self, messages: list[Message]) -> None:
        """Append to the request messages (tau2's role flip, per message)."""
        self._chat.extend(to_chat_messages(UserState(system_messages=[], messages=list(messages)).flip_roles()))

    async def _generate(self) -> tuple[Optional[str], list[RawToolCall]]:
        """One user generation; an empty reply is regenerated up to `empty_retries` times."""
        for _ in range(self._empty_retries + 1):
            text, calls = await self._request()
            if not is_empty_reply(text, calls):
                return text, calls
        raise EpisodeFailure(
            FailureClass.USER_SIM_ERROR, f"the user simulator returned an empty message {self._empty_retries + 1} times"
        )

    async def _request(self) -> tuple[Optional[str], list[RawToolCall]]:
        body = {"model": self._model, "messages": list(self._chat), "temperature": self._cfg.temperature}
        if self._tools:
            body["tools"] = self._tools
            body["tool_choice"] = "auto"  # tau2's generate, whenever there are tools
        if self._seed is not None:
            body["seed"] = self._seed
        body.update(self._cfg.extra_body or {})
        try:
            data = await self._client.complete(body, headers=self._headers or None)
            text, calls = reply_of(data)
        except Exception as e:  # EndpointError, or an answer that is not a chat completion
            raise EpisodeFailure(FailureClass.USER_SIM_ERROR, described(e, self._secrets)) from None
        usage = data.get("usage") or {}
        self.usage.add(1, usage.get("prompt_tokens"), usage.get("completion_tokens"))
        return text, calls
