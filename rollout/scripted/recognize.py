"""Which task a chat-completions request belongs to, from what tau2's prompts contain.

The tasks known are those of tau2's four benchmark and test domains, of every task set the
process registered (rollout/env/task_sets.py) and of any name tau2's registry knows that a
request's X-Rollout-Domain header names (telecom_full, a user's domain), indexed on first use.

The scripted server is stateless: every request is recognised on its own, from its prompt.

- user-simulator request (its system prompt ends with tau2's `<scenario>` block): the
  scenario is matched against every task's `str(task.user_scenario)`, tau2's rendering;
- solo agent request (system prompt with tau2's `<ticket>` block): `task.ticket`;
- non-solo agent request: the `[ref …]` tag the scripted user puts in its first message
  (`opening_ref`: a hash of the task when the user knew it, else of its scenario), else the
  first user text of a task's initial message history.

A prompt may fit many tasks (telecom: every scenario and ticket is shared by 15 to 1488
tasks; mock: 2 or 3 tasks share a scenario). Ties are broken, in order, by the request's
X-Rollout-Domain / X-Rollout-Task-Id headers (when it has them and they fit the prompt),
then by the hints a test registered (`ScriptedServer.expect`), then by the play: when every
candidate's scripted play is the same (gold.play_key), any of them is played.
Otherwise the task stays unknown; `Recognition.candidates` says how ambiguous the prompt was.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any, Optional

from rollout.scripted.gold import play_key

Key = tuple[str, str]  # (domain, task_id)
_SCENARIO_RE = re.compile(r"<scenario>\n(.*)\n</scenario>\s*$", re.S)
_TICKET_RE = re.compile(r"<ticket>\n(.*)\n</ticket>\s*$", re.S)
_REF_RE = re.compile(r"\[ref ([0-9a-f]{10})\]")


@dataclass(frozen=True)
class Recognition:
    role: str  # agent | user
    solo: bool
    key: Optional[Key]  # the task, when known
    how: str  # scenario | ticket | ref | history | none, then +header / +hint / +same_play when a tie was broken
    candidates: int  # tasks the prompt alone fits
    domain: Optional[str] = None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class TaskIndex:
    """Every task of the indexed domains and task sets, by what its prompts show (see `index`)."""

    tasks: dict[Key, Any] = field(default_factory=dict)
    scenario: dict[str, list[Key]] = field(default_factory=dict)  # str(task.user_scenario) -> tasks
    ticket: dict[str, list[Key]] = field(default_factory=dict)
    refs: dict[str, list[Key]] = field(default_factory=dict)  # ref hash -> tasks
    history_user: dict[str, list[Key]] = field(default_factory=dict)  # first user text of message_history
    agent_prompt: dict[str, str] = field(default_factory=dict)  # non-solo agent system prompt -> domain
    domains: set[str] = field(default_factory=set)  # the domains and task sets indexed


_INDEX: Optional[TaskIndex] = None
_INDEX_LOCK = threading.Lock()


def index(domains: Iterable[str] = ()) -> TaskIndex:
    """The task index (thread-safe). It holds tau2's four benchmark and test domains, every task
    set this process registered (rollout/env/task_sets.py) and `domains` (names tau2's registry
    knows; others are ignored), each added the first time it is asked for."""
    global _INDEX
    from rollout.env.domains import DOMAINS, known_domains
    from rollout.env.task_sets import registered_task_sets

    with _INDEX_LOCK:
        if _INDEX is None:
            _INDEX = TaskIndex()
        wanted = [*DOMAINS, *registered_task_sets(), *domains]
        missing = [d for d in dict.fromkeys(wanted) if d not in _INDEX.domains]
        if missing:
            known = set(known_domains())
            for domain in missing:
                if domain in known:
                    _add(_INDEX, domain)
        return _INDEX


def _add(idx: TaskIndex, domain: str) -> None:
    from rollout.env.agent_view import agent_view
    from rollout.env.domains import load_domain

    idx.domains.add(domain)
    idx.agent_prompt.setdefault(agent_view(domain, False, None)[0], domain)
    for task_id, task in load_domain(domain).tasks.items():
        key = (domain, str(task_id))
        idx.tasks[key] = task
        idx.refs[_hash(f"task:{domain}/{task_id}")] = [key]
        if task.user_scenario is not None:
            scenario = str(task.user_scenario)
            idx.scenario.setdefault(scenario, []).append(key)
            idx.refs.setdefault(_hash(f"scenario:{scenario}"), []).append(key)
        if task.ticket:
            idx.ticket.setdefault(task.ticket, []).append(key)
        history = (task.initial_state.message_history or []) if task.initial_state else []
        first = next((m.content for m in history if m.role == "user" and m.content), None)
        if first:
            idx.history_user.setdefault(first, []).append(key)


def _hash(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def opening_ref(rec: Recognition, scenario: str) -> str:
    """The tag the scripted user ends its first message with: the task when it knows it,
    else its scenario (so the agent's candidates are the user's)."""
    return f"[ref {_hash(f'task:{rec.key[0]}/{rec.key[1]}' if rec.key else f'scenario:{scenario}')}]"


def system_prompt(body: dict) -> str:
    messages = body.get("messages") or []
    if messages and messages[0].get("role") == "system":
        return messages[0].get("content") or ""
    return ""


def scenario_text(body: dict) -> Optional[str]:
    """The scenario in a user-simulator request's system prompt (None for other requests)."""
    match = _SCENARIO_RE.search(system_prompt(body))
    return match.group(1) if match else None


def recognize(body: dict, headers: Optional[dict[str, str]] = None, hints: Iterable[Key] = ()) -> Recognition:
    """The task of one request (see module doc). `headers` are lower-cased HTTP headers."""
    headers = headers or {}
    idx = index([headers["x-rollout-domain"]] if headers.get("x-rollout-domain") else [])
    system = system_prompt(body)
    role = headers.get("x-rollout-role") or ("user" if _SCENARIO_RE.search(system) else "agent")
    scenario, ticket = _SCENARIO_RE.search(system), _TICKET_RE.search(system)
    solo = ticket is not None
    domain = idx.agent_prompt.get(system)
    if scenario:
        candidates, how = idx.scenario.get(scenario.group(1), []), "scenario"
    elif ticket:
        candidates, how = idx.ticket.get(ticket.group(1), []), "ticket"
    else:
        candidates, how = _from_conversation(body.get("messages") or [], idx)
    if candidates:
        domain = candidates[0][0]
    key, how = _break_tie(candidates, how, domain, headers, set(hints), idx)
    if key is None and candidates and _same_play(tuple(candidates), solo):
        key, how = candidates[0], how + "+same_play"
    return Recognition(role=role, solo=solo, key=key, how=how, candidates=len(candidates), domain=key[0] if key else domain)


def _from_conversation(messages: list[dict], idx: TaskIndex) -> tuple[list[Key], str]:
    """Candidates of a non-solo agent request: the scripted user's ref tag, else the history."""
    for m in messages:
        if m.get("role") == "user":
            ref = _REF_RE.search(m.get("content") if isinstance(m.get("content"), str) else "")
            if ref and ref.group(1) in idx.refs:
                return idx.refs[ref.group(1)], "ref"
    first = next((m.get("content") for m in messages if m.get("role") == "user" and m.get("content")), None)
    if isinstance(first, str) and first in idx.history_user:
        return idx.history_user[first], "history"
    return [], "none"


def _break_tie(
    candidates: list[Key], how: str, domain: Optional[str], headers: dict[str, str], hints: set[Key], idx: TaskIndex
) -> tuple[Optional[Key], str]:
    if len(candidates) == 1:
        return candidates[0], how
    tagged = (headers.get("x-rollout-domain"), headers.get("x-rollout-task-id"))
    if tagged in idx.tasks and (not candidates or tagged in candidates):
        return tagged, how + "+header"
    pool = [k for k in hints if k in candidates] if candidates else [k for k in hints if domain in (None, k[0])]
    if len(pool) == 1:
        return pool[0], how + "+hint"
    return None, how


@lru_cache(maxsize=256)
def _same_play(candidates: tuple[Key, ...], solo: bool) -> bool:
    idx = index()
    return len({play_key(idx.tasks[k], solo) for k in candidates}) == 1
