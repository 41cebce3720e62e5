"""Per-turn credit from tau2's own checks: optional, derived, never a replacement for the reward.

tau2 scores an episode once (`reward_info.reward`). Its checks say more: each expected action
matched or not (`action_checks`), the final database state (`db_check`), environment
assertions, what had to be communicated. `turn_credit` places each expected action that
matched on the policy call that made it (the first assistant tool call in message order
that tau2's own `Action.compare_with_tool_call` accepts), as a share of the expected
actions; actions the user simulator performs (telecom's device actions) and the checks of the
final state belong to no single call and are reported apart (`final`). A trainer that wants
dense rewards can add these shares to the turns; the episode's reward stays tau2's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Optional


@dataclass
class Credit:
    """`actions[i]`: the share of the expected actions first made by turn i's call; `final`:
    the episode's reward and the checks of its end state (see module doc)."""

    actions: list[float] = field(default_factory=list)
    final: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def turn_credit(message_indices: list[Optional[int]], messages: list[dict], reward_info: dict) -> Credit:
    """Credit per turn (`message_indices[i]`: the tau2 message turn i's call became) from a
    scored episode's messages (tau2 dicts) and tau2's RewardInfo dict."""
    from tau2.data_model.message import ToolCall
    from tau2.data_model.tasks import Action

    checks = reward_info.get("action_checks") or []
    owner = {m: i for i, m in enumerate(message_indices) if m is not None}
    calls = [
        (index, ToolCall.model_validate(tc))
        for index, m in enumerate(messages)
        if m.get("role") == "assistant"
        for tc in m.get("tool_calls") or []
    ]
    actions = [0.0] * len(message_indices)
    by_user = 0
    for check in checks:
        if not check.get("action_match"):
            continue
        action = Action.model_validate(check["action"])
        if action.requestor == "user":
            by_user += 1
            continue
        made = next((index for index, call in calls if action.compare_with_tool_call(call)), None)
        if made is not None and made in owner:
            actions[owner[made]] += 1.0 / len(checks)
    db = reward_info.get("db_check") or {}
    final = {
        "reward": reward_info.get("reward"),
        "db_match": db.get("db_match"),
        "env_assertions_met": _met(reward_info.get("env_assertions"), "met"),
        "communicate_met": _met(reward_info.get("communicate_checks"), "met"),
        "user_actions_matched": by_user,
        "actions_expected": len(checks),
    }
    return Credit(actions=[round(a, 6) for a in actions], final=final)


def _met(checks: Optional[list], key: str) -> Optional[float]:
    return None if not checks else sum(bool(c.get(key)) for c in checks) / len(checks)
