"""A sweep's trajectories as OpenAI chat-format examples for supervised fine-tuning.

`to_chat(record)` is one scored episode as `{"messages": [...], "tools": [...], "metadata":
{...}}`: what the agent saw and said, tau2's system prompt (policy, and ticket in solo), tau2's
greeting, the user's messages, the agent's messages with `tool_calls` (arguments as JSON
strings) and the tool results (`role: tool`, `tool_call_id`). The user simulator's own device
tool calls are not part of the agent's conversation and are left out. `export(records, ...)`
yields the examples of the scored records that pass the filters.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Optional

from rollout.env.domains import check_domain
from rollout.sweep.records import SweepRecord


def to_chat(record: SweepRecord) -> dict:
    """One episode record as an OpenAI chat-format training example."""
    from tau2.data_model.message import AssistantMessage, ToolMessage, UserMessage

    from rollout.env.agent_view import agent_view
    from rollout.env.messages import agent_chat_messages

    domain, task_id, solo = record.domain, record.task_id, record.solo
    system_prompt, tools = agent_view(domain, solo, task_id if solo else None)
    kinds = {"user": UserMessage, "assistant": AssistantMessage, "tool": ToolMessage}
    trajectory = [kinds[m["role"]].model_validate(m) for m in record.messages if m["role"] in kinds]
    messages = [{"role": "system", "content": system_prompt}, *agent_chat_messages(trajectory)]
    return {
        "messages": messages,
        "tools": list(tools),
        "metadata": {
            "domain": domain,
            "task_id": task_id,
            "sample": record.sample,
            "reward": record.reward,
            "termination": record.termination,
        },
    }


def export(records: Iterable[SweepRecord], *, min_reward: Optional[float] = None, domains: Optional[set[str]] = None):
    """The examples of the scored records with a transcript, at least `min_reward` and of `domains` (None: any)."""
    for r in records:
        if not r.ok or not r.messages:
            continue
        if min_reward is not None and float(r.reward) < min_reward:
            continue
        if domains and r.domain not in domains:
            continue
        yield to_chat(r)


def checked_domains(names: list[str], output_dir: Path) -> set[str]:
    """The names, each a domain tau2 knows or a task set the config.yaml of the sweep in
    `output_dir` declares. Raises InvalidInput."""
    import yaml

    try:
        declared = (yaml.safe_load((output_dir / "config.yaml").read_text()) or {}).get("task_sets") or {}
    except (OSError, yaml.YAMLError, AttributeError):
        declared = {}
    return {d if d in declared else check_domain(d) for d in names}
