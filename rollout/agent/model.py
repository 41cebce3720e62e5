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

Every request goes where the episode's `PolicyRoute` says, once it says requests may go (held
while the policy's weights are swapped; rollout/agent/policy_route.py). A chat answer the engine
aborted (finish reason `abort`, a weight swap) is sent again from scratch: the chat interface
cannot continue a partial assistant message. That is counted (`restarted`, on the call's token
record too), bounded by `MAX_RESENDS` (then `MODEL_ERROR`), and the tokens of the answer kept
are all of the weight version that answered (rollout/core/weights.py `token_version`). Token-in
calls are continued instead (rollout/agent/token_in.py).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Optional

from agents import ModelSettings
from agents.items import ModelResponse
from agents.models.interface import Model
from agents.usage import Usage as SdkUsage
from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText
from tau2.data_model.simulation import TerminationReason

from rollout.agent.policy_route import PolicyRoute, Send
from rollout.agent.token_in import ABORT, BudgetReached, TokenInCalls
from rollout.core.clients import reply_of
from rollout.core.failures import EpisodeFailure, FailureClass, described
from rollout.core.fast_http import EndpointError
from rollout.core.results import Usage
from rollout.core.tokens import CHAT_CAPTURE_MODES, CaptureError, TurnRecord, capture_fields, turn_record
from rollout.core.weights import MAX_RESENDS, token_version
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


@dataclass
class _Answer:
    """One policy completion as the policy model takes it: the request's body, the answer (or its
    usage, token-in), its text and tool calls, and for chat answers the weight version of its
    tokens and how many aborted answers came before it."""

    body: dict
    data: dict
    text: Optional[str]
    calls: list
    version: Optional[int] = None
    restarted: int = 0


class PolicyModel(Model):
    """See the module doc. `conversation` is the chat messages the model is shown after the
    system prompt; it grows in place as the episode goes on. `route` says where each policy
    call goes and holds it while the weights are swapped (rollout/agent/policy_route.py)."""

    def __init__(
        self,
        *,
        route: PolicyRoute,
        opening: Opening,
        session,
        secrets: list[str],
        empty_retries: int,
        capture: Optional[str] = None,
        weight_version: Optional[int] = None,
        token_in: Optional[TokenInCalls] = None,
    ):
        self.route = route
        self.system_prompt = opening.system_prompt
        self.tools = list(opening.tools)
        self._system = {"role": "system", "content": opening.system_prompt}
        self._session = session
        self.usage = Usage()  # the policy's completions and tokens
        self.continued = 0  # calls the engine aborted, continued from their tokens (token-in)
        self.restarted = 0  # aborted answers sent again from scratch (chat)
        self._secrets = secrets
        self._empty_retries = empty_retries
        chat_capture = capture in CHAT_CAPTURE_MODES
        self._capture_fields = capture_fields(capture) if chat_capture else {}
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

    def _fields(self, settings: ModelSettings) -> tuple[dict, dict]:
        """(the request fields, the headers) of the agent's settings."""
        cached, fields, headers = self._settings
        if cached is not settings:
            fields, headers = settings_body(settings, has_tools=bool(self.tools)), dict(settings.extra_headers or {})
            self._settings = (settings, fields, headers)
        return fields, headers

    async def _prepare(self) -> Send:
        """Where the next policy request goes, once requests may go (the route's endpoint)."""
        endpoints = await self.route.next()
        headers = self._settings[2]
        return Send(
            client=endpoints.agent_client,
            model=endpoints.agent_model,
            extra={**endpoints.agent_extra_body, **self._capture_fields},
            headers={**headers, **endpoints.agent_headers},
            api_key=endpoints.agent_api_key,
        )

    async def _complete(self, settings: ModelSettings) -> _Answer:
        """One completion of the current conversation. Raises EpisodeFailure."""
        fields, _ = self._fields(settings)
        messages = [self._system, *self.conversation]
        if self._token_in is not None:
            done = await self._token_in.complete(messages, self.tools, fields, self._prepare, self.route)
            self.turns.append(done.record)
            self.continued += done.record.continued
            usage = {"prompt_tokens": done.prompt_tokens, "completion_tokens": done.completion_tokens}
            return _Answer({"messages": messages, **fields}, {"usage": usage}, done.text, done.calls)
        restarted = 0
        while True:  # an answer the engine aborted (a weight swap) is sent again from scratch
            send = await self._prepare()
            body = {"model": send.model, "messages": messages, **({"tools": self.tools} if self.tools else {})}
            body.update(fields)
            body.update(send.extra)
            try:
                data = await send.client.complete(body, headers=send.headers, api_key=send.api_key, gate=self.route.gate)
                aborted = data["choices"][0].get("finish_reason") == ABORT
                if not aborted:
                    version = token_version(None, self.route.sent_version, self._weight_version)
                    return _Answer(body, data, *reply_of(data), version=version, restarted=restarted)
            except (EndpointError, KeyError, TypeError, IndexError, AttributeError) as e:
                raise EpisodeFailure(FailureClass.MODEL_ERROR, described(e, self._secrets)) from None
            if restarted == MAX_RESENDS:
                raise EpisodeFailure(
                    FailureClass.MODEL_ERROR,
                    f"the engine aborted this policy call {MAX_RESENDS + 1} times (finish reason 'abort'); "
                    f"it was sent again {MAX_RESENDS} times",
                )
            restarted += 1
            self.restarted += 1

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
        try:
            return await self._respond(model_settings)
        except BudgetReached as e:  # the budget ends the episode as running out of steps does
            self.budget_reached = str(e)
            await self._session.end(TerminationReason.MAX_STEPS.value)
            raise StopEpisode(TerminationReason.MAX_STEPS) from None

    async def _respond(self, settings: ModelSettings) -> ModelResponse:
        """Sample a reply (regenerating empty ones), hand it to the session and return it to the
        SDK as output items."""
        for _ in range(self._empty_retries + 1):
            start = time.perf_counter()
            answer = await self._complete(settings)
            self.on_completion(answer, time.perf_counter() - start)
            if not is_empty_reply(answer.text, answer.calls):
                break
        data, text, calls = answer.data, answer.text, answer.calls
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

    def on_completion(self, answer: _Answer, elapsed_s: float) -> None:
        """Account one completion (every regeneration of an empty reply counts) and, with chat
        capture on, record its tokens (or why they are absent)."""
        usage = answer.data.get("usage") or {}
        self.usage.add(1, usage.get("prompt_tokens"), usage.get("completion_tokens"))
        if self._capture:
            try:
                record = turn_record(answer.data, self._capture, weight_version=self._weight_version, latency_s=elapsed_s)
                if answer.version is not None:
                    record.completion_versions = [answer.version] * len(record.completion_token_ids)
                record.restarted = answer.restarted
                self.turns.append(record)
            except (CaptureError, KeyError, TypeError, IndexError) as e:
                self.turns.append(None)
                why = str(e)
                if answer.body.get("include_reasoning") is False:  # the likely cause, named beside the symptom
                    why += " (the request sets include_reasoning=false, which changes what the server returns for the "
                    why += "reasoning: capture tokens without it, or use llm.capture=token_in)"
                self.capture_errors.append(f"call {len(self.turns) - 1}: {why}")

    def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator:
        raise NotImplementedError("the policy model does not stream")
