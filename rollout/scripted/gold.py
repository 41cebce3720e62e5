"""A task's scripted play, in one place: its gold actions in order, then the closing.

The oracle agent (policies.agent_reply, which follows the play from the messages it is
sent) and replay scripts (`gold_script`, used by the parity tests and the benchmark) both
come from here. A play is a list of moves in the replay-script format:

- `{"tool": name, "arguments": {...}}`: the agent calls a tool (assistant-side gold actions,
  and in solo mode every gold action);
- `{"text": "Please perform this action on your device: {json}"}`: in non-solo mode, a gold
  action whose requestor is the user is asked of the user (the scripted user performs it);
- the closing: in non-solo mode the task's communicate_info followed by CLOSING (the
  scripted user answers ###STOP###); in solo mode a `done` call.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Optional

from tau2.orchestrator.orchestrator import DEFAULT_FIRST_AGENT_MESSAGE
from tau2.user.base import STOP  # noqa: F401  (re-exported: the scripted user's stop signal)

ACTION_REQUEST = "Please perform this action on your device: "
CLOSING = "Is there anything else I can help you with?"
GREETING = DEFAULT_FIRST_AGENT_MESSAGE.content  # tau2's fixed first agent message
DONE = {"tool": "done", "arguments": {}}  # tau2's solo stop tool
_ACTION_RE = re.compile(re.escape(ACTION_REQUEST) + r"(\{.*\})", re.S)


@dataclass(frozen=True)
class GoldAction:
    name: str
    arguments: dict
    requestor: str  # assistant | user


def gold_actions(task) -> list[GoldAction]:
    """The task's gold actions (tau2's evaluation_criteria.actions), in order."""
    criteria = task.evaluation_criteria
    return [GoldAction(a.name, a.arguments, a.requestor) for a in (criteria.actions or [])] if criteria else []


def communicate_info(task) -> list[str]:
    criteria = task.evaluation_criteria
    return list(criteria.communicate_info or []) if criteria else []


def move(action: GoldAction, solo: bool) -> dict:
    """One gold action as the agent plays it."""
    if action.requestor == "user" and not solo:
        return {"text": ACTION_REQUEST + json.dumps({"name": action.name, "arguments": action.arguments})}
    return {"tool": action.name, "arguments": action.arguments}


def closing(task, solo: bool) -> dict:
    """The last move: `done` (solo), else the communicate_info (if any) and CLOSING."""
    if solo:
        return dict(DONE)
    info = communicate_info(task)
    said = f"Here is the information you need: {'; '.join(info)}. " if info else ""
    return {"text": f"{said}{CLOSING}"}


def gold_script(task, solo: bool) -> list[dict]:
    """The task's gold actions as a replay script (ScriptedServer.set_script), plus the
    communicate_info text (ending with CLOSING) when the task has any; after a script the
    replaying agent closes by itself (CLOSING, or `done` in solo mode)."""
    script = [move(a, solo) for a in gold_actions(task)]
    if communicate_info(task) and not solo:
        script.append(closing(task, solo))
    return script


def play_key(task, solo: bool) -> str:
    """A string equal for two tasks exactly when the oracle plays them identically."""
    return json.dumps([move(a, solo) for a in gold_actions(task)] + [closing(task, solo)], sort_keys=True)


def requested_action(content: Any) -> Optional[dict]:
    """The device action an agent message asks the user to perform ({"name", "arguments"})."""
    match = _ACTION_RE.search(content if isinstance(content, str) else "")
    return json.loads(match.group(1)) if match else None


def performed(messages: list[dict]) -> list[tuple[str, Any]]:
    """(name, arguments) of every action the agent took or asked the user to take, in order
    (tool names without an MCP prefix such as "env@1.0/")."""
    out = []
    for m in messages:
        if m.get("role") != "assistant":
            continue
        for tc in m.get("tool_calls") or []:
            try:
                args = json.loads(tc["function"].get("arguments") or "{}")
            except ValueError:
                args = None
            out.append((tc["function"]["name"].rsplit("/", 1)[-1], args))
        requested = requested_action(m.get("content"))
        if requested:
            out.append((requested["name"], requested["arguments"]))
    return out


def next_move(task, messages: list[dict], solo: bool) -> dict:
    """The oracle's next move: the first gold action not yet performed in order, else the closing."""
    return follow(gold_actions(task), closing(task, solo), messages, solo)


def follow(actions: list[GoldAction], last: dict, messages: list[dict], solo: bool) -> dict:
    """The first of `actions` the messages have not performed yet (in order), else `last`."""
    progress = 0
    for done in performed(messages):
        if progress < len(actions) and done == (actions[progress].name, actions[progress].arguments):
            progress += 1
    return move(actions[progress], solo) if progress < len(actions) else last
