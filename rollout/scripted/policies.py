"""Scripted players for the test-double model server: the agent (oracle, noop) and the user.

They are stateless functions of one chat-completions request: the task is found from the
request's X-Rollout-Domain / X-Rollout-Task-Id headers (which the rollout sends with every
request when `episode.tag_requests` is on), the progress from the messages.

- oracle agent: replays the task's gold actions in order (user-side actions are asked of
  the user in non-solo telecom, called directly in solo), then states the task's
  communicate_info and closes; in solo it calls `done`.
- noop agent: closes at once (solo: calls `done`).
- user: opens with the scenario's request, performs the device action the agent asks
  for, and answers ###STOP### when the agent closes.
"""

from __future__ import annotations

import json
import re
from typing import Any, Optional

ACTION_REQUEST = "Please perform this action on your device: "
CLOSING = "Is there anything else I can help you with?"
STOP = "###STOP###"
GREETING = "Hi! How can I help you today?"  # tau2's fixed first agent message
_ACTION_RE = re.compile(re.escape(ACTION_REQUEST) + r"(\{.*\})", re.S)


def text(content: str) -> dict:
    return {"role": "assistant", "content": content}


def tool_call(call_id: str, name: str, arguments: dict | str) -> dict:
    args = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"role": "assistant", "content": None,
            "tool_calls": [{"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}]}


def _task(headers: dict[str, str]):
    domain, task_id = headers.get("x-rollout-domain"), headers.get("x-rollout-task-id")
    if not domain or not task_id:
        return None
    from rollout.env.domains import load_domain

    return load_domain(domain).task(task_id)


def _requested_action(content: Optional[str]) -> Optional[dict]:
    match = _ACTION_RE.search(content or "")
    return json.loads(match.group(1)) if match else None


def _call_id(messages: list) -> str:
    return f"call_{len(messages)}"


def _tool_name(name: str, body: dict) -> str:
    """`name` as the request offers it: AEnvironment's MCP tools come prefixed ("env@1.0/name")."""
    offered = [t["function"]["name"] for t in body.get("tools") or []]
    if name in offered:
        return name
    return next((t for t in offered if t.endswith("/" + name)), name)


def agent_reply(policy: str, body: dict, headers: dict[str, str]) -> dict:
    """The scripted agent's next message for this request."""
    messages = body.get("messages", [])
    tools = {t["function"]["name"] for t in body.get("tools") or []}
    solo = _tool_name("done", body) in tools
    if policy == "noop":
        return tool_call(_call_id(messages), "done", {}) if solo else text(f"Sorry, I cannot help with that. {CLOSING}")
    task = _task(headers)
    if task is not None:
        criteria = task.evaluation_criteria
        gold = [(a.name, a.arguments, a.requestor) for a in (criteria.actions or [])] if criteria else []
        info = list(criteria.communicate_info or []) if criteria else []
    else:  # tau2's own ground-truth agent (llm_agent_gt) lists the gold actions in its prompt
        gold, info = _resolution_steps(messages[0].get("content", "") if messages else ""), []
        if not gold:
            return text(f"I could not identify the task (no X-Rollout-* headers). {CLOSING}")
    progress = 0
    for done in _performed(messages):
        if progress < len(gold) and done == gold[progress][:2]:
            progress += 1
    if progress < len(gold):
        name, arguments, requestor = gold[progress]
        if requestor == "user" and not solo:
            return text(ACTION_REQUEST + json.dumps({"name": name, "arguments": arguments}))
        return tool_call(_call_id(messages), _tool_name(name, body), arguments)
    if solo:
        return tool_call(_call_id(messages), _tool_name("done", body), {})
    said = f"Here is the information you need: {'; '.join(info)}. " if info else ""
    return text(f"{said}{CLOSING}")


_STEP_RE = re.compile(r"\[Step \d+\] (Perform|Instruct the user to perform) the following action: (\w+)\((.*)\)\.$")


def _resolution_steps(system_prompt: str) -> list[tuple[str, dict, str]]:
    """(name, arguments, requestor) of each step in tau2's ground-truth agent prompt."""
    if "<resolution_steps>" not in system_prompt:
        return []
    steps = []
    for line in system_prompt.split("<resolution_steps>", 1)[1].splitlines():
        m = _STEP_RE.match(line.strip())
        if m:
            steps.append((m.group(2), _parse_arguments(m.group(3)), "assistant" if m.group(1) == "Perform" else "user"))
    return steps


def _parse_arguments(text: str) -> dict:
    """tau2's `name(k=v, ...)` format (values unquoted): literals where they parse, else strings."""
    import ast

    args = {}
    for part in filter(None, re.split(r", (?=\w+=)", text)):
        key, _, value = part.partition("=")
        try:
            args[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            args[key] = value
    return args


def replay_reply(script: list[dict], body: dict) -> dict:
    """The next message of a registered script: the i-th scripted action at the agent's i-th turn.

    Each action is {"tool": name, "arguments": {...}} or {"text": "..."}; after the script the
    agent closes (solo: calls `done`).
    """
    messages = body.get("messages", [])
    turn = sum(1 for m in messages if m.get("role") == "assistant" and m.get("content") != GREETING)
    solo = _tool_name("done", body) in {t["function"]["name"] for t in body.get("tools") or []}
    if turn < len(script):
        action = script[turn]
        if "tool" in action:
            return tool_call(_call_id(messages), _tool_name(action["tool"], body), action.get("arguments", {}))
        return text(action["text"])
    return tool_call(_call_id(messages), _tool_name("done", body), {}) if solo else text(CLOSING)


def _performed(messages: list) -> list[tuple[str, Any]]:
    """(name, arguments) of every action the agent took or asked the user to take, in order."""
    out = []
    for m in messages:
        if m.get("role") != "assistant":
            continue
        for tc in m.get("tool_calls") or []:
            try:
                args = json.loads(tc["function"].get("arguments") or "{}")
            except ValueError:
                args = None
            out.append((tc["function"]["name"], args))
        requested = _requested_action(m.get("content") if isinstance(m.get("content"), str) else None)
        if requested:
            out.append((requested["name"], requested["arguments"]))
    return out


def user_reply(body: dict, headers: dict[str, str]) -> dict:
    """The scripted user's next message (roles are flipped: the agent speaks as 'user')."""
    messages = body.get("messages", [])
    last = messages[-1] if messages else {}
    if last.get("role") == "tool":
        return text("I did that on my phone.")
    content = last.get("content") or ""
    requested = _requested_action(content)
    if requested:
        return tool_call(_call_id(messages), requested["name"], requested["arguments"])
    if CLOSING in content:
        return text(STOP)
    task = _task(headers)
    instructions = task.user_scenario.instructions if task is not None and task.user_scenario else None
    reason = getattr(instructions, "reason_for_call", None) or (str(instructions) if instructions else "I need help.")
    known = getattr(instructions, "known_info", None)
    return text(f"{reason} {known}" if known else reason)
