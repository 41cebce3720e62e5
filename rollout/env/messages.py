"""tau2 messages in the formats models see: OpenAI chat messages and Agents SDK input items.

One conversion, tau2's own (`to_litellm_messages`, what `tau2 run` sends through litellm),
serves every consumer: the user simulator's requests (after tau2's role flip), what the agent
is shown (as Agents SDK input items, `chat_to_input_items`) and the SFT export.
"""

from __future__ import annotations

from tau2.data_model.message import AssistantMessage, Message, ToolMessage, UserMessage
from tau2.utils.llm_utils import to_litellm_messages


def to_chat_messages(messages: list[Message]) -> list[dict]:
    """tau2 messages as OpenAI chat messages (tau2's converter, minus its non-standard keys:
    a `tool_calls: null` on plain assistant messages and the `name` beside `function`)."""
    out = []
    for m in to_litellm_messages(messages):
        if m.get("tool_calls") is None:
            m.pop("tool_calls", None)
        else:
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


def chat_to_input_items(chat: list[dict]) -> list[dict]:
    """OpenAI chat messages as Agents SDK input items (which the SDK turns back into the same
    chat messages when it calls a chat-completions model)."""
    items: list[dict] = []
    for m in chat:
        role = m["role"]
        if role == "assistant":
            if m.get("content"):
                items.append({"role": "assistant", "content": m["content"]})
            for tc in m.get("tool_calls") or []:
                items.append({"type": "function_call", "call_id": tc["id"], "name": tc["function"]["name"],
                              "arguments": tc["function"]["arguments"]})
        elif role == "tool":
            items.append({"type": "function_call_output", "call_id": m["tool_call_id"], "output": m.get("content") or ""})
        else:
            items.append({"role": role, "content": m.get("content") or ""})
    return items

