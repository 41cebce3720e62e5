"""The episode's trajectory in tau2's message format, with tau2's step and error accounting.

`EpisodeRecorder` is the single source of truth for what happened in an episode: every
agent and user message, every tool call (executed against the episode's own tau2
environment, in order, requestor forced by the side that made it) and its result. It
mirrors tau2's Orchestrator: each message passed counts one step (a batch of tool results
counts one), tool errors count toward `max_errors`, and limits are checked before a
participant generates, i.e. after every step whose next receiver is not the environment.
The recorded messages replay exactly under tau2's evaluator (`Environment.set_state`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal, Optional

from tau2.data_model.message import AssistantMessage, Message, ToolCall, ToolMessage, UserMessage
from tau2.data_model.simulation import TerminationReason
from tau2.utils.utils import get_now

Requestor = Literal["assistant", "user"]
STOP_TOKEN = "###STOP###"  # tau2's agent stop token (LLMSoloAgent.STOP_TOKEN)
STOP_TOOL = "done"  # tau2's solo stop tool (LLMSoloAgent.STOP_FUNCTION_NAME)
RAW_ARGUMENTS_KEY = "raw_arguments"


class StopEpisode(Exception):
    """Control flow: the episode ended with a tau2 termination reason."""

    def __init__(self, reason: TerminationReason):
        super().__init__(reason.value)
        self.reason = reason


@dataclass
class RawToolCall:
    """A tool call as a model produced it: arguments are the raw JSON string."""

    id: str
    name: str
    arguments: str


@dataclass
class _Pending:
    """The agent's tool-calling message whose results are not yet all recorded."""

    calls: list[ToolCall]
    results: dict[str, ToolMessage] = field(default_factory=dict)


class EpisodeRecorder:
    """Records the trajectory and executes tool calls for one episode (see module doc)."""

    def __init__(self, env, *, solo: bool, max_steps: int, max_errors: int, history: list[Message] = ()):
        self.env = env
        self.solo = solo
        self.max_steps = max_steps
        self.max_errors = max_errors
        self.messages: list[Message] = list(history)
        self.step_count = 0
        self.num_errors = 0
        self.invalid_tool_calls: list[dict] = []
        self._pending: Optional[_Pending] = None
        self._model_facing: dict[str, str] = {}  # tool call id -> text shown to the model instead

    # ---- limits -------------------------------------------------------------------------
    def check_limits(self) -> None:
        """Raise StopEpisode if tau2 would terminate before the next participant generates."""
        if self.step_count >= self.max_steps:
            raise StopEpisode(TerminationReason.MAX_STEPS)
        if self.num_errors >= self.max_errors:
            raise StopEpisode(TerminationReason.TOO_MANY_ERRORS)

    # ---- agent side ---------------------------------------------------------------------
    def record_agent_response(self, text: Optional[str], raw_calls: list[RawToolCall]) -> None:
        """Record one agent generation. Raises StopEpisode when tau2 would end the episode here."""
        text = text if text and text.strip() else None
        if self.solo and any(c.name == STOP_TOOL for c in raw_calls):
            # tau2 rewrites a `done` call into the stop token and drops the other calls.
            self.record_agent_stop()
            raise StopEpisode(TerminationReason.AGENT_STOP)
        if not raw_calls:
            if text is None:  # tau2's agent would fail validation: the policy sent nothing
                raise StopEpisode(TerminationReason.AGENT_ERROR)
            self._append(AssistantMessage(role="assistant", content=text))
            if self.solo:
                stop = STOP_TOKEN in text
                raise StopEpisode(TerminationReason.AGENT_STOP if stop else TerminationReason.AGENT_ERROR)
            return
        calls = self._parse_calls(raw_calls, "assistant")
        self._append(AssistantMessage(role="assistant", content=text, tool_calls=calls))
        self._pending = _Pending(calls)

    def record_agent_stop(self) -> None:
        """Record the agent's stop message (tau2's rewrite of a `done` call)."""
        self.flush_tool_results()
        self._append(AssistantMessage(role="assistant", content=STOP_TOKEN))

    def execute_agent_tool(self, call_id: str) -> str:
        """Run one of the pending agent tool calls now; return the text the model sees."""
        pending = self._pending
        call = next((c for c in pending.calls if c.id == call_id), None) if pending else None
        if call is None:
            return f"Error: no pending tool call with id '{call_id}'"
        if call_id not in pending.results:
            pending.results[call_id] = self.env.get_response(call)
        return self._model_facing.get(call_id, pending.results[call_id].content)

    def flush_tool_results(self) -> None:
        """Append the results of the pending agent tool calls in call order (one step).

        A call not executed yet is executed here (e.g. a tool name the agent does not
        have: tau2 answers it with its own "Tool ... not found" error, as its orchestrator).
        """
        pending, self._pending = self._pending, None
        if pending is None:
            return
        for call in pending.calls:
            result = pending.results.get(call.id) or self.env.get_response(call)
            self._append_tool_result(result)
        self.step_count += 1

    # ---- user side ----------------------------------------------------------------------
    def record_user_message(self, text: Optional[str], raw_calls: list[RawToolCall]) -> tuple[UserMessage, list[ToolMessage]]:
        """Record one user generation and execute its tool calls (requestor 'user').

        Returns the recorded message and the tool results as the user simulator sees them.
        """
        calls = self._parse_calls(raw_calls, "user") if raw_calls else None
        message = UserMessage(role="user", content=text if text and text.strip() else None, tool_calls=calls)
        self._append(message)
        shown: list[ToolMessage] = []
        if calls:
            for call in calls:
                result = self.env.get_response(call)
                self._append_tool_result(result)
                facing = self._model_facing.get(call.id)
                shown.append(result if facing is None else result.model_copy(update={"content": facing}))
            self.step_count += 1
        return message, shown

    # ---- shared -------------------------------------------------------------------------
    def _parse_calls(self, raw_calls: list[RawToolCall], requestor: Requestor) -> list[ToolCall]:
        """Turn raw calls into tau2 ToolCalls with the requestor fixed by the calling side.

        Unparseable arguments are recorded as `{"raw_arguments": <string>}`: tau2 answers
        that call with a deterministic argument error (so the trajectory replays exactly)
        while the model is shown the JSON error, which is what it needs to fix its call.
        """
        calls = []
        for raw in raw_calls:
            try:
                args = json.loads(raw.arguments) if raw.arguments.strip() else {}
                if not isinstance(args, dict):
                    raise ValueError(f"arguments must be a JSON object, got {type(args).__name__}")
            except ValueError as e:
                args = {RAW_ARGUMENTS_KEY: raw.arguments}
                self._model_facing[raw.id] = f"Error: invalid JSON in tool call arguments ({e})"
                self.invalid_tool_calls.append({"id": raw.id, "name": raw.name, "requestor": requestor, "arguments": raw.arguments})
            calls.append(ToolCall(id=raw.id, name=raw.name, arguments=args, requestor=requestor))
        return calls

    def _append_tool_result(self, result: ToolMessage) -> None:
        if result.error:
            self.num_errors += 1
        self._append(result)

    def add_opening(self, message: Message) -> None:
        """Record tau2's fixed greeting, which opens a non-solo episode and is not a step."""
        message.timestamp = get_now()
        self.messages.append(message)

    def _append(self, message: Message) -> None:
        message.timestamp = get_now()
        self.messages.append(message)
        if not isinstance(message, ToolMessage):
            self.step_count += 1

    def final_messages(self) -> list[Message]:
        """The trajectory with tau2's turn indices."""
        for i, message in enumerate(self.messages):
            message.turn_idx = i
        return self.messages
