"""The episode's trajectory in tau2's message format, with tau2's step and error accounting.

`EpisodeRecorder` is the single source of truth for what happened in an episode: every
agent and user message, every tool call (executed against the episode's own tau2
environment, in call order, requestor fixed by the side that made it) and its result. It
mirrors tau2's Orchestrator:

- each message passed counts one step, a batch of tool results one step, and in solo mode
  the agent's first message none (tau2 generates it in `initialize`);
- tool errors count toward `max_errors`;
- limits are checked before a participant generates, and after a step that ended the
  episode, where they win (`Orchestrator.run`: a stop landing on `max_steps` is `max_steps`).

The recorded messages replay exactly under tau2's evaluator (`Environment.set_state`), whatever
ids the model gave its tool calls (repeated ids included: results follow call order).
`agent_view(start)` is what the agent is shown of the messages from `start` on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal, Optional

from tau2.agent.llm_agent import LLMSoloAgent
from tau2.data_model.message import AssistantMessage, Message, ToolCall, ToolMessage, UserMessage
from tau2.data_model.simulation import TerminationReason
from tau2.utils.utils import get_now

from rollout.env.messages import agent_chat_messages
from rollout.env.protocol import RawToolCall, StopEpisode

Requestor = Literal["assistant", "user"]
STOP_TOKEN = LLMSoloAgent.STOP_TOKEN  # tau2's solo agent stop token
STOP_TOOL = "done"  # tau2's solo stop tool (LLMSoloAgent.STOP_FUNCTION_NAME)
RAW_ARGUMENTS_KEY = "raw_arguments"


class InvalidArguments(Exception):
    """A tool call's arguments are not a JSON object (tau2's runner crashes on this)."""


@dataclass(frozen=True)
class _Invalid:
    """Arguments a model produced that are not a JSON object, and why."""

    raw: str
    error: str


class EpisodeRecorder:
    """Records the trajectory and executes tool calls for one episode (see module doc).

    `invalid_args`: "end" (tau2's outcome: the episode ends, reward 0 for the agent; see
    `record_agent_response`) or "feedback" (the model is shown the JSON error and the call
    counts as a tool error; a more lenient RL setting).
    """

    def __init__(
        self, env, *, solo: bool, max_steps: int, max_errors: int, history: list[Message] = (), invalid_args: str = "end"
    ):
        self.env = env
        self.solo = solo
        self.max_steps = max_steps
        self.max_errors = max_errors
        self.invalid_args = invalid_args
        self.messages: list[Message] = list(history)
        self.step_count = 0
        self.num_errors = 0
        self.invalid_tool_calls: list[dict] = []
        self._first_agent_message_free = solo and not history
        self._shown: dict[int, ToolMessage] = {}  # message index -> what the model is shown instead
        self._invalid: dict[int, list[Optional[_Invalid]]] = {}  # message index -> per call, unparseable arguments

    # ---- limits -------------------------------------------------------------------------
    def check_limits(self) -> None:
        """Raise StopEpisode if tau2 would terminate before the next participant generates."""
        if self.step_count >= self.max_steps:
            raise StopEpisode(TerminationReason.MAX_STEPS)
        if self.num_errors >= self.max_errors:
            raise StopEpisode(TerminationReason.TOO_MANY_ERRORS)

    def stop(self, reason: TerminationReason) -> StopEpisode:
        """The end of the episode after a step that stopped it: limits reached on that step win."""
        if self.step_count >= self.max_steps:
            reason = TerminationReason.MAX_STEPS
        if self.num_errors >= self.max_errors:
            reason = TerminationReason.TOO_MANY_ERRORS
        return StopEpisode(reason)

    # ---- agent side ---------------------------------------------------------------------
    def record_agent_response(self, text: Optional[str], raw_calls: list[RawToolCall]) -> Optional[list[str]]:
        """Record one agent generation and run its tool calls in order (one step for the results).

        The message keeps the text exactly as the model wrote it (None, `""` or text beside
        tool calls), as tau2's `generate` does. Returns the tool results as the model is shown
        them (call order), or None when the agent spoke to the user. Raises StopEpisode when tau2 would end the episode here: a
        solo `done` call or stop token (agent_stop), an empty message or solo text without
        the stop token (agent_error), a call whose arguments are not JSON under
        invalid_args="end" (agent_error: tau2's runner crashes on it; `--skip-failed-samples`
        scores it 0), and limits reached on this step.
        """
        if self.solo and any(c.name == STOP_TOOL for c in raw_calls):
            # tau2 rewrites a `done` call into the stop token and drops the other calls.
            raise self.record_agent_stop()
        if not raw_calls:
            if not (text or "").strip():  # tau2's AssistantMessage.validate() rejects it
                raise self.stop(TerminationReason.AGENT_ERROR)
            self._append(AssistantMessage(role="assistant", content=text))
            if self.solo:
                raise self.stop(TerminationReason.AGENT_STOP if STOP_TOKEN in text else TerminationReason.AGENT_ERROR)
            return None
        calls, invalid = self._parse_calls(raw_calls, "assistant")
        index = self._append(AssistantMessage(role="assistant", content=text, tool_calls=calls))
        if any(invalid):
            self._invalid[index] = invalid
            if self.invalid_args == "end":
                raise self.stop(TerminationReason.AGENT_ERROR)
        return [m.content for m in self._run_calls(calls, invalid)]

    def record_agent_stop(self) -> StopEpisode:
        """Record the agent's stop message (tau2's rewrite of a `done` call); the end it makes."""
        self._append(AssistantMessage(role="assistant", content=STOP_TOKEN))
        return self.stop(TerminationReason.AGENT_STOP)

    # ---- user side ----------------------------------------------------------------------
    def record_user_message(self, text: Optional[str], raw_calls: list[RawToolCall]) -> tuple[UserMessage, list[ToolMessage]]:
        """Record one user generation and execute its tool calls (requestor 'user').

        Returns the recorded message and the tool results as the user simulator sees them.
        Raises InvalidArguments for unparseable arguments under invalid_args="end".
        """
        calls, invalid = self._parse_calls(raw_calls, "user") if raw_calls else (None, [])
        if any(invalid) and self.invalid_args == "end":
            raise InvalidArguments(
                f"the user simulator's tool call arguments are not a JSON object: {next(i for i in invalid if i).error}"
            )
        message = UserMessage(role="user", content=text, tool_calls=calls)  # as tau2: the text as generated
        index = self._append(message)
        if any(invalid):
            self._invalid[index] = invalid
        return message, self._run_calls(calls, invalid) if calls else []

    # ---- what the agent is shown ----------------------------------------------------------
    def agent_view(self, start: int) -> list[dict]:
        """The agent's view (OpenAI chat messages, tau2's conversion) of messages[start:]."""
        chat = []
        for i in range(start, len(self.messages)):
            [shown] = agent_chat_messages([self._shown.get(i, self.messages[i])]) or [None]
            if shown is None:
                continue
            for call, invalid in zip(shown.get("tool_calls") or [], self._invalid.get(i, [])):
                if invalid:  # the model is shown its own call, not the recorded stand-in
                    call["function"]["arguments"] = invalid.raw
            chat.append(shown)
        return chat

    # ---- shared -------------------------------------------------------------------------
    def _parse_calls(self, raw_calls: list[RawToolCall], requestor: Requestor) -> tuple[list[ToolCall], list[Optional[_Invalid]]]:
        """tau2 ToolCalls with the requestor fixed by the calling side, and per call the raw
        arguments when they are not a JSON object (recorded as `{"raw_arguments": <string>}`,
        which tau2 answers with a deterministic argument error, so the trajectory replays)."""
        calls, invalid = [], []
        for call in raw_calls:
            try:
                args = json.loads(call.arguments) if call.arguments.strip() else {}
                if not isinstance(args, dict):
                    raise ValueError(f"arguments must be a JSON object, got {type(args).__name__}")
                invalid.append(None)
            except ValueError as e:
                args = {RAW_ARGUMENTS_KEY: call.arguments}
                invalid.append(_Invalid(call.arguments, str(e)))
                self.invalid_tool_calls.append(
                    {"id": call.id, "name": call.name, "requestor": requestor, "arguments": call.arguments, "error": str(e)}
                )
            calls.append(ToolCall(id=call.id, name=call.name, arguments=args, requestor=requestor))
        return calls, invalid

    def _run_calls(self, calls: list[ToolCall], invalid: list[Optional[_Invalid]]) -> list[ToolMessage]:
        """Execute the calls in order and record their results (one step); returns what the
        caller is shown (the JSON error for unparseable arguments under "feedback")."""
        shown = []
        for call, bad in zip(calls, invalid):
            result = self.env.get_response(call)
            if result.error:
                self.num_errors += 1
            index = self._append(result)
            if bad:
                self._shown[index] = result.model_copy(
                    update={"content": f"Error: invalid JSON in tool call arguments ({bad.error})"}
                )
            shown.append(self._shown.get(index, result))
        self.step_count += 1
        return shown

    def add_opening(self, message: Message) -> None:
        """Record tau2's fixed greeting, which opens a non-solo episode and is not a step."""
        message.timestamp = get_now()
        self.messages.append(message)

    def _append(self, message: Message) -> int:
        message.timestamp = get_now()
        self.messages.append(message)
        if isinstance(message, AssistantMessage) and self._first_agent_message_free:
            self._first_agent_message_free = False
        elif not isinstance(message, ToolMessage):
            self.step_count += 1
        return len(self.messages) - 1

    def final_messages(self) -> list[Message]:
        """The trajectory with tau2's turn indices."""
        for i, message in enumerate(self.messages):
            message.turn_idx = i
        return self.messages
