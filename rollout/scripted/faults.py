"""What the scripted server can do wrong, switchable at run time (ScriptedServer.set_faults).

Modes (for `count` completions of `role`; count -1: until changed):

- http_500, http_401: an error status (the 401 body quotes the key it was given, as OpenAI's);
- hang: no answer for `hang_s` seconds;
- malformed_tool_json: a tool call whose arguments are not JSON;
- empty: an empty assistant message;
- fixed_ids: every response numbers its tool calls call_0, call_1, ... from 0 (as servers
  that number calls per response do), so ids repeat across the conversation;
- duplicate_ids: a response with one call to a read-only tool becomes two identical calls
  sharing one id (reads change nothing, so the oracle's reward stays what it would be; a
  response it does not apply to is answered normally and consumes no count).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Optional

FAULT_MODES = ("none", "http_500", "http_401", "hang", "malformed_tool_json", "empty", "fixed_ids", "duplicate_ids")


@dataclass
class Faults:
    """What the server does wrong, and for how many completions (-1: until changed)."""

    mode: str = "none"
    count: int = 0
    role: str = "any"  # agent | user | any
    latency_s: float = 0.0  # added to every completion
    hang_s: float = 3600.0

    def __post_init__(self):
        if self.mode not in FAULT_MODES:
            raise ValueError(f"unknown fault mode '{self.mode}'; valid: {', '.join(FAULT_MODES)}")
        if self.role not in ("agent", "user", "any"):
            raise ValueError(f"unknown fault role '{self.role}'; valid: agent, user, any")


def fixed_ids(message: dict) -> dict:
    """The message with its tool calls numbered call_0, call_1, ... from 0."""
    calls = message.get("tool_calls")
    if not calls:
        return message
    return {**message, "tool_calls": [{**tc, "id": f"call_{i}"} for i, tc in enumerate(calls)]}


def duplicate_ids(message: dict, domain: Optional[str]) -> Optional[dict]:
    """Two identical calls sharing one id, when the message is one call to a read-only tool
    of `domain`; None when the fault does not apply."""
    calls = message.get("tool_calls") or []
    if len(calls) != 1 or domain is None:
        return None
    if calls[0]["function"]["name"].rsplit("/", 1)[-1] not in read_only_tools(domain):
        return None
    return {**message, "tool_calls": [dict(calls[0]), dict(calls[0])]}


@functools.cache
def read_only_tools(domain: str) -> frozenset[str]:
    """Names of the domain's tools (agent and user side) that only read (tau2's ToolType.READ)."""
    from tau2.environment.toolkit import ToolType

    from rollout.env.domains import load_domain

    env = load_domain(domain).new_environment(False)
    kits = [env.tools] + ([env.user_tools] if env.user_tools is not None else [])
    return frozenset(name for kit in kits for name in kit.tools if kit.tool_type(name) == ToolType.READ)
