"""Scripted players for the test-double model server: the agent (oracle, noop, replay) and the user.

They are stateless functions of one chat-completions request and its `Recognition` (the
task, found from tau2's prompts: see recognize.py), the progress from the messages.

- oracle agent: plays the task's scripted play (gold.py): the gold actions in order (user-side
  actions are asked of the user in non-solo mode, called directly in solo), then the
  task's communicate_info and CLOSING; in solo it calls `done`. A request whose task is
  unknown gets the gold actions listed in tau2's ground-truth agent prompt, if any.
- noop agent: closes at once (solo: calls `done`).
- replay: a registered script, one move per agent turn (`replay_reply`).
- user: opens with the scenario's request and a `[ref …]` tag naming its task (or scenario),
  performs the device action the agent asks for, and answers ###STOP### to CLOSING.
"""

from __future__ import annotations

import ast
import json
import re

from rollout.scripted.gold import ACTION_REQUEST, CLOSING, DONE, GREETING, STOP, GoldAction, follow, next_move, requested_action
from rollout.scripted.recognize import Recognition, index, opening_ref, scenario_text
from rollout.scripted.styles import REPLY_STYLES

__all__ = [
    "ACTION_REQUEST",
    "CLOSING",
    "GREETING",
    "PREAMBLE",
    "REPLY_STYLES",
    "STOP",
    "agent_reply",
    "replay_reply",
    "styled",
    "text",
    "tool_call",
    "user_reply",
]
DEVICE_DONE = "I did that on my phone."


def text(content: str) -> dict:
    return {"role": "assistant", "content": content}


def tool_call(call_id: str, name: str, arguments: dict | str) -> dict:
    args = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}],
    }


def _call_id(messages: list) -> str:
    return f"call_{len(messages)}"


def _offered(body: dict) -> list[str]:
    return [t["function"]["name"] for t in body.get("tools") or []]


def _tool_name(name: str, body: dict) -> str:
    """`name` as the request offers it: AEnvironment's MCP tools come prefixed ("env@1.0/name")."""
    offered = _offered(body)
    if name in offered:
        return name
    return next((t for t in offered if t.endswith("/" + name)), name)


def _is_solo(body: dict) -> bool:
    return _tool_name("done", body) in _offered(body)


def _message(move: dict, body: dict) -> dict:
    """A move of a play or script as an assistant message: {"tool", "arguments"} (one call),
    {"calls": [{"tool", "arguments"}, ...]} (several in one reply), {"text"} (text only); a
    move with calls and "text" carries that text beside them ("" included)."""
    calls = move["calls"] if "calls" in move else [move] if "tool" in move else []
    if not calls:
        return text(move["text"])
    base = _call_id(body.get("messages") or [])
    message = {
        "role": "assistant",
        "content": move.get("text"),
        "tool_calls": [
            tool_call(f"{base}_{i}" if len(calls) > 1 else base, _tool_name(c["tool"], body), c.get("arguments", {}))[
                "tool_calls"
            ][0]
            for i, c in enumerate(calls)
        ],
    }
    return message


PREAMBLE = "Let me take care of that for you."


def styled(message: dict, style: str, body: dict) -> dict:
    """The agent's tool-call reply in a shape real models produce (ScriptedServer.reply_style):
    plain (as played), text_with_calls (a sentence before the calls), empty_content (`""`
    beside the calls), mixed (the two alternate, from one tool-call reply to the next). Replies with text of their
    own, and text-only replies, are left as they are."""
    if style == "plain" or not message.get("tool_calls") or message.get("content"):
        return message
    if style == "mixed":
        earlier = sum(1 for m in body.get("messages") or [] if m.get("role") == "assistant" and m.get("tool_calls"))
        style = "text_with_calls" if earlier % 2 == 0 else "empty_content"
    return {**message, "content": PREAMBLE if style == "text_with_calls" else ""}


def agent_reply(policy: str, body: dict, rec: Recognition) -> dict:
    """The scripted agent's next message for this request."""
    messages = body.get("messages") or []
    solo = _is_solo(body)
    if policy == "noop":
        return _message(DONE, body) if solo else text(f"Sorry, I cannot help with that. {CLOSING}")
    task = index().tasks.get(rec.key) if rec.key else None
    if task is not None:
        return _message(next_move(task, messages, solo), body)
    steps = _resolution_steps(messages[0].get("content", "") if messages else "")
    if steps:  # tau2's own ground-truth agent (llm_agent_gt) lists the gold actions in its prompt
        return _message(follow(steps, DONE if solo else {"text": CLOSING}, messages, solo), body)
    return text(f"I could not identify the task ({rec.candidates} tasks fit the prompt). {CLOSING}")


def replay_reply(script: list[dict], body: dict) -> dict:
    """The next message of a registered script: the i-th move at the agent's i-th turn.

    Each move is {"tool": name, "arguments": {...}} or {"text": "..."}; after the script the
    agent closes (solo: calls `done`).
    """
    messages = body.get("messages") or []
    turn = sum(1 for m in messages if m.get("role") == "assistant" and m.get("content") != GREETING)
    if turn < len(script):
        return _message(script[turn], body)
    return _message(DONE, body) if _is_solo(body) else text(CLOSING)


_STEP_RE = re.compile(r"\[Step \d+\] (Perform|Instruct the user to perform) the following action: (\w+)\((.*)\)\.$")


def _resolution_steps(system_prompt: str) -> list[GoldAction]:
    """The steps listed in tau2's ground-truth agent prompt, as gold actions."""
    if "<resolution_steps>" not in system_prompt:
        return []
    steps = []
    for line in system_prompt.split("<resolution_steps>", 1)[1].splitlines():
        m = _STEP_RE.match(line.strip())
        if m:
            steps.append(GoldAction(m.group(2), _parse_arguments(m.group(3)), "assistant" if m.group(1) == "Perform" else "user"))
    return steps


def _parse_arguments(text: str) -> dict:
    """tau2's `name(k=v, ...)` format (values unquoted): literals where they parse, else strings."""
    args = {}
    for part in filter(None, re.split(r", (?=\w+=)", text)):
        key, _, value = part.partition("=")
        try:
            args[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            args[key] = value
    return args


def user_reply(body: dict, rec: Recognition) -> dict:
    """The scripted user's next message (roles are flipped: the agent speaks as 'user')."""
    messages = body.get("messages") or []
    last = messages[-1] if messages else {}
    if last.get("role") == "tool":
        return text(DEVICE_DONE)
    content = last.get("content") if isinstance(last.get("content"), str) else ""
    requested = requested_action(content)
    if requested:
        return tool_call(_call_id(messages), requested["name"], requested["arguments"])
    if CLOSING in content:
        return text(STOP)
    return text(_opening(body, rec))


def _opening(body: dict, rec: Recognition) -> str:
    """The scenario's reason for call and known info, then the ref tag (see recognize.opening_ref)."""
    idx = index()
    scenario = scenario_text(body) or ""
    task = idx.tasks.get(rec.key) if rec.key else None
    if task is None and idx.scenario.get(scenario):  # every candidate has this scenario: any will do
        task = idx.tasks[idx.scenario[scenario][0]]
    instructions = task.user_scenario.instructions if task is not None and task.user_scenario else None
    reason = getattr(instructions, "reason_for_call", None) or (str(instructions) if instructions else "I need help.")
    known = getattr(instructions, "known_info", None)
    return f"{reason} {known} {opening_ref(rec, scenario)}" if known else f"{reason} {opening_ref(rec, scenario)}"
