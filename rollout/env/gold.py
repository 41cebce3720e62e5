"""A task's gold play, the environment's side of it: the gold actions in order, then the agent's
closing message that says the task's communicate_info.

What a perfect agent does on a task, read from tau2's `evaluation_criteria`: the oracle model
(rollout/scripted/gold.py turns it into chat moves) and the task check (task_validation.py,
which replays it on the environment with no model) both follow it.
"""

from __future__ import annotations

from dataclasses import dataclass

from tau2.orchestrator.orchestrator import DEFAULT_FIRST_AGENT_MESSAGE
from tau2.user.base import STOP  # noqa: F401  (re-exported: the user's stop signal)

CLOSING = "Is there anything else I can help you with?"
GREETING = DEFAULT_FIRST_AGENT_MESSAGE.content  # tau2's fixed first agent message


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
    """What the agent must say (tau2's evaluation_criteria.communicate_info), in order."""
    criteria = task.evaluation_criteria
    return list(criteria.communicate_info or []) if criteria else []


def closing_text(task) -> str:
    """The agent's last message with a user: the communicate_info (if any), then CLOSING."""
    info = communicate_info(task)
    said = f"Here is the information you need: {'; '.join(info)}. " if info else ""
    return f"{said}{CLOSING}"
