"""The policy as an Agents SDK `Model`: every request shows the model the episode's record.

`PolicyModel` implements the SDK's `Model` interface (the public extension point that
`Agent(model=...)` takes), so the agent stays an SDK `Agent` run by `Runner`. What it sends
is not the SDK's conversion of its own items but what `tau2 run` sends: the system prompt,
the conversation as tau2 renders it (`StepOutcome.seen`: tau2's converter over the recorded
messages, so one assistant message per reply, text and tool calls together, `""` content
kept), and the tool schemas exactly as tau2 builds them. Nothing is converted per call: the
conversation grows by what the session says the agent now sees, and the request is that list.

Each call: POST the request (the episode's own API key when it has one), regenerate an empty
reply up to `empty_retries` times as tau2's `generate` does, hand the generation to the
session (`agent_step`: it records it and runs its tool calls, or the user's turn), and return
it to the SDK as output items, tool calls under ids of the SDK's own (the model keeps seeing
its own ids, however a server numbers them). The SDK's FunctionTools then hand back results
the session already computed. Endpoint errors become `EpisodeFailure(MODEL_ERROR)` with keys
redacted; the end of the episode raises `StopEpisode`.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator
from typing import Any, Optional

from agents import ModelSettings
from agents.items import ModelResponse
from agents.models.interface import Model
from agents.usage import Usage as SdkUsage
from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText
from tau2.data_model.simulation import TerminationReason

from rollout.agent.token_in import BudgetReached, TokenInCalls
from rollout.core.clients import ChatClient, reply_of
from rollout.core.failures import EpisodeFailure, FailureClass, described
from rollout.core.fast_http import EndpointError
from rollout.core.results import Usage
from rollout.core.tokens import CHAT_CAPTURE_MODES, CaptureError, TurnRecord, capture_fields, turn_record
from rollout.env.protocol import Opening, StopEpisode, is_empty_reply


def settings_body(settings: ModelSettings, *, has_tools: bool) -> dict[str, Any]:
    """The request fields of an agent's ModelSettings, as the SDK's chat-completions model sends
    them (unset ones are not sent; tool_choice and parallel_tool_calls only with tools)."""
    body: dict[str, Any] = {}
    for name in ("temperature", "top_p", "max_tokens", "frequency_penalty", "presence_penalty"):
        value = getattr(settings, name)
        if value is not None:
            body[name] = value
    if has_tools:
        if settings.tool_choice is not None:
            body["tool_choice"] = settings.tool_choice
        if settings.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = settings.parallel_tool_calls
    body.update(settings.extra_args or {})
    body.update(settings.extra_body or {})
    return body


class PolicyModel(Model):
    """See the module doc. `conversation` is the chat messages the model is shown after the
    system prompt; it grows in place as the episode goes on."""

    def __init__(
        self,
        *,
        client: ChatClient,
        model: str,
        opening: Opening,
        session,
        secrets: list[str],
        empty_retries: int,
        api_key: Optional[str] = None,
        extra_body: Optional[dict] = None,
        capture: Optional[str] = None,
        weight_version: Optional[int] = None,
        token_in: Optional[TokenInCalls] = None,
    ):
        self._client = client
        self._model = model
        self.system_prompt = opening.system_prompt
        self.tools = list(opening.tools)
        self._system = {"role": "system", "content": opening.system_prompt}
        self._session = session
        self.usage = Usage()  # the policy's completions and tokens
        self._secrets = secrets
        self._empty_retries = empty_retries
        self._api_key = api_key
        chat_capture = capture in CHAT_CAPTURE_MODES
        self._extra_body = {**(extra_body or {}), **(capture_fields(capture) if chat_capture else {})}
        self._capture = capture if chat_capture else None
        self._token_in = token_in
        self._weight_version = weight_version
        self._ids = itertools.count()
        self.turns: list[Optional[TurnRecord]] = []  # token capture: one per completion, in order
        self.capture_errors: list[str] = []
        self._settings: tuple[Optional[ModelSettings], dict, dict] = (None, {}, {})
        self.conversation = list(opening.conversation)
        self.results: dict[str, str] = {}  # SDK-side call id -> result text (for its FunctionTools)
        self.user_reply: Optional[str] = None
        self.budget_reached: Optional[str] = None  # why the token budget ended the episode

    def _request(self, settings: ModelSettings) -> tuple[dict, dict]:
        """(the request body, the headers) for the current conversation."""
        cached, fields, headers = self._settings
        if cached is not settings:
            fields, headers = settings_body(settings, has_tools=bool(self.tools)), dict(settings.extra_headers or {})
            self._settings = (settings, fields, headers)
        body = {"model": self._model, "messages": [self._system, *self.conversation]}
        if self.tools:
            body["tools"] = self.tools
        body.update(fields)
        body.update(self._extra_body)
        return body, headers

    async def _complete(self, body: dict, headers: dict) -> tuple[dict, Optional[str], list]:
        """(the answer's usage as {"usage": ...}, its text, its tool calls). Raises EpisodeFailure."""
        if self._token_in is not None:
            fields = {k: v for k, v in body.items() if k not in ("model", "messages", "tools")}
            done = await self._token_in.complete(body["messages"], self.tools, fields, headers, self._api_key)
            self.turns.append(done.record)
            usage = {"prompt_tokens": done.prompt_tokens, "completion_tokens": done.completion_tokens}
            return {"usage": usage}, done.text, done.calls
        try:
            data = await self._client.complete(body, headers=headers, api_key=self._api_key)
            return (data, *reply_of(data))
        except (EndpointError, KeyError, TypeError) as e:
            raise EpisodeFailure(FailureClass.MODEL_ERROR, described(e, self._secrets)) from None

    async def get_response(
        self,
        system_instructions,
        input,
        model_settings,
        tools,
        output_schema,
        handoffs,
        tracing,
        *,
        previous_response_id=None,
        conversation_id=None,
        prompt=None,
    ) -> ModelResponse:
        body, headers = self._request(model_settings)
        try:
            return await self._respond(body, headers)
        except BudgetReached as e:  # the budget ends the episode as running out of steps does
            self.budget_reached = str(e)
            await self._session.end(TerminationReason.MAX_STEPS.value)
            raise StopEpisode(TerminationReason.MAX_STEPS) from None

    async def _respond(self, body: dict, headers: dict) -> ModelResponse:
        """Sample a reply (regenerating empty ones), hand it to the session and return it to the
        SDK as output items."""
        for _ in range(self._empty_retries + 1):
            start = time.perf_counter()
            data, text, calls = await self._complete(body, headers)
            self.on_completion(body, data, time.perf_counter() - start)
            if not is_empty_reply(text, calls):
                break
        outcome = await self._session.agent_step(text, calls)
        if (self._capture or self._token_in) and self.turns and self.turns[-1] is not None:
            self.turns[-1].message_index = outcome.message_index
        self.conversation.extend(outcome.seen)
        if self._token_in is not None and outcome.termination is None:
            self._token_in.advance(outcome.seen)
        if outcome.termination is not None:
            raise StopEpisode(TerminationReason(outcome.termination))
        self.user_reply = outcome.user_reply
        output: list = []
        if text:
            output.append(
                ResponseOutputMessage(
                    id="msg",
                    type="message",
                    role="assistant",
                    status="completed",
                    content=[ResponseOutputText(type="output_text", text=text, annotations=[])],
                )
            )
        for call, result in zip(calls, outcome.results):
            sdk_id = f"{call.id}#sdk{next(self._ids)}"  # the SDK rejects repeated ids; the model keeps its own
            self.results[sdk_id] = result
            output.append(
                ResponseFunctionToolCall(
                    type="function_call", call_id=sdk_id, name=call.name, arguments=call.arguments, status="completed"
                )
            )
        usage = data.get("usage") or {}
        return ModelResponse(
            output=output,
            response_id=None,
            usage=SdkUsage(
                requests=1,
                input_tokens=usage.get("prompt_tokens") or 0,
                output_tokens=usage.get("completion_tokens") or 0,
                total_tokens=usage.get("total_tokens") or 0,
            ),
        )

    def on_completion(self, body: dict, data: dict, elapsed_s: float) -> None:
        """Account one completion (every regeneration of an empty reply counts) and, with capture
        on, record its tokens (or why they are absent)."""
        usage = data.get("usage") or {}
        self.usage.add(1, usage.get("prompt_tokens"), usage.get("completion_tokens"))
        if self._capture:
            try:
                self.turns.append(turn_record(data, self._capture, weight_version=self._weight_version, latency_s=elapsed_s))
            except (CaptureError, KeyError, TypeError, IndexError) as e:
                self.turns.append(None)
                why = str(e)
                if body.get("include_reasoning") is False:  # the likely cause, named beside the symptom
                    why += " (the request sets include_reasoning=false, which changes what the server returns for the "
                    why += "reasoning: capture tokens without it, or use llm.capture=token_in)"
                self.capture_errors.append(f"call {len(self.turns) - 1}: {why}")

    def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator:
        raise NotImplementedError("the policy model does not stream")
