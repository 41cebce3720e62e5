"""A task's scripted play as the oracle plays it: moves in the replay-script format.

The play itself (gold actions in order, then the closing that says the communicate_info) is
the environment's (rollout/env/gold.py); here it becomes moves. The oracle agent
(policies.agent_reply, which follows the play from the messages it is sent) and replay scripts
(`gold_script`, used by the parity tests and the benchmark) both come from here. A move is:

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
from typing import Any, Optional

from rollout.env.gold import CLOSING, GREETING, STOP, GoldAction, closing_text, communicate_info, gold_actions  # noqa: F401 (CLOSING, GREETING, STOP: re-exported for the players)

ACTION_REQUEST = "Please perform this action on your device: "
DONE = {"tool": "done", "arguments": {}}  # tau2's solo stop tool
_ACTION_RE = re.compile(re.escape(ACTION_REQUEST) + r"(\{.*\})", re.S)


def move(action: GoldAction, solo: bool) -> dict:
    """One gold action as the agent plays it."""
    if action.requestor == "user" and not solo:
        return {"text": ACTION_REQUEST + json.dumps({"name": action.name, "arguments": action.arguments})}
    return {"tool": action.name, "arguments": action.arguments}


def closing(task, solo: bool) -> dict:
    """The last move: `done` (solo), else the communicate_info (if any) and CLOSING."""
    return dict(DONE) if solo else {"text": closing_text(task)}


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
