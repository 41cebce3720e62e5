"""tau2 messages as the OpenAI chat messages models are shown.

One conversion, tau2's own (`to_litellm_messages`, then what litellm puts on the wire), serves
every consumer: the user simulator's requests (after tau2's role flip), what the agent is
shown, and the SFT export.
"""

from __future__ import annotations

from tau2.data_model.message import AssistantMessage, Message, ToolMessage, UserMessage
from tau2.utils.llm_utils import to_litellm_messages


def to_chat_messages(messages: list[Message]) -> list[dict]:
    """tau2 messages as OpenAI chat messages: tau2's converter as litellm sends it (keys whose
    value is None left out, so a tool-call message without text has no `content` and one with
    `""` keeps it), minus tau2's non-standard `name` beside each tool call's `function`."""
    out = []
    for m in to_litellm_messages(messages):
        m = {k: v for k, v in m.items() if v is not None}
        if "tool_calls" in m:
            m["tool_calls"] = [{k: v for k, v in tc.items() if k != "name"} for tc in m["tool_calls"]]
        out.append(m)
    return out


def visible_to_agent(message: Message) -> bool:
    """What tau2's orchestrator routes to the agent: user text, the agent's own messages and
    the results of its own tool calls (never the user's device calls or their results)."""
    if isinstance(message, UserMessage):
        return not message.is_tool_call()
    if isinstance(message, ToolMessage):
        return message.requestor == "assistant"
    return isinstance(message, AssistantMessage)


def agent_chat_messages(messages: list[Message]) -> list[dict]:
    """The agent's side of a trajectory as OpenAI chat messages."""
    return to_chat_messages([m for m in messages if visible_to_agent(m)])
