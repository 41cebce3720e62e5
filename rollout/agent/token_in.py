"""Token-in policy calls: an episode's context kept as token ids, sampled through the engine's
token interface (`llm.capture=token_in`).

`TokenInCalls` holds one episode's context. The first call's prompt is the model's own chat
template over tau2's system prompt, tools and first messages (`ChatFormat.first_prompt`: what
the engine's chat endpoint would have rendered). Each completion comes back as ids and logprobs
(rollout/core/tokenin/engines.py), its text is decoded and parsed as the engine's chat endpoint
would parse it with the configured tool-call and reasoning parsers (parsers.py), and tau2 gets
that message. After the step, the next prompt is exactly this prompt + the completion's ids
(+ the end-of-turn id when the completion did not end with it, e.g. cut at max_tokens) + the
tail: the tool results, the user's reply and the generation prompt rendered on their own
(`ChatFormat.tail`). The model therefore always sees its own earlier tokens, think blocks
included, never a re-rendering of them: every episode is one token sequence.

A token budget (`episode.max_prompt_tokens`, `episode.max_response_tokens`: a trainer's sequence
length) is the episode's end, not a cut: before a call, a prompt longer than the first bound or
no room left under the second raises `BudgetReached`, and the episode ends there as tau2 ends an
episode that runs out of steps; each completion is bounded by the room left.

A call the engine aborts (finish reason `abort`: vLLM and SGLang abort the generations in flight
when their weights are swapped, answering with the tokens generated so far) is continued, not
restarted: once policy calls may go again (rollout/core/weights.py) the prompt + the tokens so far
are sent for the rest, with `max_tokens` reduced by what was generated, until an answer is not
an abort (at most `MAX_RESENDS` times, then `MODEL_ERROR`). The call's record is one completion:
ids, logprobs and per-token weight versions joined one to one, the last finish reason, and how
many times it was continued. The context grows by the joined completion as by any other.

An answer without usable token data is an endpoint failure (`MODEL_ERROR`): the context cannot
go on without the completion's ids. `tool_choice` and other chat-only fields are not sent (the
token interface has none); solo episodes are not forced to call a tool.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Optional

from rollout.agent.policy_route import PolicyRoute, Send
from rollout.core.clients import ChatClient, RawToolCall
from rollout.core.config import AgentLLMConfig
from rollout.core.failures import EpisodeFailure, FailureClass, described
from rollout.core.fast_http import EndpointError
from rollout.core.tokenin.chat_format import ChatFormat
from rollout.core.tokenin.engines import read_answer, request_body
from rollout.core.tokenin.engines import route as route_of
from rollout.core.tokenin.parsers import parse_reply
from rollout.core.tokens import CaptureError, TurnRecord
from rollout.core.weights import MAX_RESENDS, token_version

_MODELS_PATH = {"vllm": "/models", "sglang": "/v1/models"}  # from the token route's base URL
ABORT = "abort"  # vLLM's choice.finish_reason and SGLang's meta_info.finish_reason.type for an aborted request


class BudgetReached(Exception):
    """The next policy call would not fit the episode's token budget (the message says which)."""


@dataclass
class TokenCompletion:
    """One sampled completion as tau2 gets it, with its token record."""

    text: Optional[str]
    calls: list[RawToolCall]
    record: TurnRecord
    prompt_tokens: int
    completion_tokens: int


@dataclass
class _Sampled:
    """One policy call's completion, joined over the answers of its continuations."""

    ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    versions: list[Optional[int]] = field(default_factory=list)
    finish_reason: Optional[str] = None
    served_version: Optional[str] = None
    continued: int = 0


class TokenInCalls:
    """One episode's token context (module doc). The endpoint of each request comes from the
    caller (`prepare`): its client is bound to the engine's token route base
    (`rollout.core.tokenin.engines.route`)."""

    def __init__(
        self,
        chat_format: ChatFormat,
        llm: AgentLLMConfig,
        *,
        secrets: list[str],
        weight_version: Optional[int] = None,
        max_prompt_tokens: Optional[int] = None,
        max_response_tokens: Optional[int] = None,
    ):
        self._format = chat_format
        self._engine = llm.engine
        self._tool_parser = llm.tool_call_parser
        self._reasoning_parser = llm.reasoning_parser
        self._thinking = bool(llm.chat_template_kwargs.get("enable_thinking", True))
        self._secrets = secrets
        self._weight_version = weight_version
        self._max_prompt = max_prompt_tokens
        self._max_response = max_response_tokens
        self._first_prompt_len = 0
        self.prompt: Optional[list[int]] = None  # the next call's prompt ids
        self._completion: list[int] = []
        self._calls_made = 0

    async def complete(
        self,
        messages: list[dict],
        tools: list[dict],
        fields: dict[str, Any],
        prepare: Callable[[], Awaitable[Send]],
        route: Optional[PolicyRoute] = None,
    ) -> TokenCompletion:
        """Sample the next completion. `messages` (system first) and `tools` render the first
        prompt only; `fields` are the request's sampling fields; `prepare()`, awaited before
        every request, says where it goes (it holds it while the policy's weights are being
        swapped); `route.gate` is awaited just before each request leaves and notes the weight
        version then current. Raises EpisodeFailure."""
        if self.prompt is None:
            self.prompt = self._format.first_prompt(messages, tools or None)
            self._first_prompt_len = len(self.prompt)
        left = self._budget_left()
        start = time.perf_counter()
        part = _Sampled()
        budget: Optional[int] = None
        while True:
            send = await prepare()
            request = {**fields, **send.extra}
            if budget is None:  # the call's bound, from its first request's fields
                budget = request.get("max_tokens")
                if budget is None:
                    budget = await self._room(send.client, len(self.prompt))
                if left is not None:
                    budget = min(budget, left)
            request["max_tokens"] = budget - len(part.ids)
            if not await self._sample(send, request, part, route):
                break
        elapsed = time.perf_counter() - start
        ids = part.ids
        ended = bool(ids) and ids[-1] in self._format.stop_ids
        text = self._format.decode_completion(ids[:-1] if ended else ids, tools=bool(tools) and self._tool_parser is not None)
        reply = parse_reply(
            text,
            tool_call_parser=self._tool_parser if tools else None,
            reasoning_parser=self._reasoning_parser,
            thinking_enabled=self._thinking,
            first_call_id=self._calls_made,
        )
        self._calls_made += len(reply.tool_calls)
        self._completion = list(ids)
        record = TurnRecord(
            prompt_token_ids=list(self.prompt),
            completion_token_ids=list(ids),
            completion_logprobs=part.logprobs,
            finish_reason=part.finish_reason,
            weight_version=self._weight_version,
            latency_s=round(elapsed, 4),
            served_version=part.served_version,
            completion_versions=part.versions if any(v is not None for v in part.versions) else None,
            continued=part.continued,
        )
        return TokenCompletion(reply.content, reply.tool_calls, record, len(self.prompt), len(ids))

    async def _sample(self, send: Send, fields: dict, part: _Sampled, route: Optional[PolicyRoute]) -> bool:
        """Send the prompt + `part` (the tokens so far) and add the answer to `part`; True when
        the engine aborted it and the rest is still to be generated (module doc)."""
        prompt = self.prompt + part.ids
        body = request_body(self._engine, send.model, prompt, fields)
        try:
            data = await send.client.post(
                route_of(self._engine, "")[1],
                body,
                headers=send.headers,
                api_key=send.api_key,
                gate=route.gate if route is not None else None,
            )
            answer = read_answer(self._engine, data, prompt, vocab_size=self._format.vocab_size)
        except EndpointError as e:
            raise EpisodeFailure(FailureClass.MODEL_ERROR, described(e, self._secrets)) from None
        except CaptureError as e:
            raise EpisodeFailure(FailureClass.MODEL_ERROR, f"token-in: {e}") from None
        version = token_version(answer.weight_version, route.sent_version if route else None, self._weight_version)
        part.ids += answer.completion_ids
        part.logprobs += answer.logprobs
        part.versions += [version] * len(answer.completion_ids)
        part.finish_reason, part.served_version = answer.finish_reason, answer.weight_version
        if answer.finish_reason != ABORT:
            return False
        if len(answer.completion_ids) >= fields["max_tokens"]:  # aborted with every token it may have: cut there
            part.finish_reason = "length"
            return False
        if part.continued == MAX_RESENDS:
            raise EpisodeFailure(
                FailureClass.MODEL_ERROR,
                f"token-in: the engine aborted this policy call {MAX_RESENDS + 1} times (finish reason "
                f"'abort', {len(part.ids)} tokens so far); it was continued {MAX_RESENDS} times",
            )
        part.continued += 1
        return True

    def advance(self, seen: list[dict]) -> None:
        """Extend the context past the last completion with what the agent is now shown (`seen`:
        its own message as tau2 recorded it, then tool results or the user's reply)."""
        if self.prompt is None:
            return
        assistant, after = (seen[0], seen[1:]) if seen and seen[0].get("role") == "assistant" else ({}, seen)
        ids = self._completion
        gap = [] if ids and ids[-1] == self._format.end_of_turn_id else [self._format.end_of_turn_id]
        self.prompt = self.prompt + ids + gap + self._format.tail(assistant, after)
        self._completion = []

    def _budget_left(self) -> Optional[int]:
        """The tokens the next completion may have under `max_response_tokens` (None: no bound).
        Raises BudgetReached when the prompt is over `max_prompt_tokens` or nothing is left."""
        n = len(self.prompt or [])
        if self._max_prompt is not None and n > self._max_prompt:
            raise BudgetReached(f"the next prompt has {n} tokens, over episode.max_prompt_tokens={self._max_prompt}")
        if self._max_response is None:
            return None
        left = self._max_response - (n - self._first_prompt_len)
        if left <= 0:
            raise BudgetReached(f"episode.max_response_tokens={self._max_response} are used up after the first prompt")
        return left

    async def _room(self, client: ChatClient, prompt_len: int) -> int:
        """max_tokens when none is set: what the model's context leaves after the prompt, as the
        chat endpoint computes it. Raises EpisodeFailure when nothing is left."""
        if client.max_model_len is None:  # asked once per endpoint
            client.max_model_len = await self._served_context(client)
        room = client.max_model_len - prompt_len
        if room <= 0:
            raise EpisodeFailure(
                FailureClass.MODEL_ERROR,
                f"token-in: the prompt of {prompt_len} tokens leaves no room within the model's maximum context "
                f"length of {client.max_model_len}",
            )
        return room

    async def _served_context(self, client: ChatClient) -> int:
        try:
            data = await client.get(_MODELS_PATH[self._engine])
            return int(data["data"][0]["max_model_len"])
        except (EndpointError, KeyError, IndexError, TypeError, ValueError):
            raise EpisodeFailure(
                FailureClass.INVALID_INPUT,
                "token-in: set sampling.max_tokens (the engine's /v1/models reports no max_model_len to size completions by)",
            ) from None
