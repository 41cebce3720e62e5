"""`tau2-rollout sft output_dir=DIR [out=FILE] [min_reward=1.0] [domains=[airline,retail]]`

Trajectories of a sweep as OpenAI chat-format JSONL for supervised fine-tuning: one line
per scored episode, `{"messages": [...], "tools": [...], "metadata": {...}}`. Messages are
what the agent saw and said: tau2's system prompt (policy, and ticket in solo), tau2's
greeting, the user's messages, the agent's messages with `tool_calls` (arguments as JSON
strings) and the tool results (`role: tool`, `tool_call_id`). The user simulator's own
device tool calls are not part of the agent's conversation and are left out.

Keys: `output_dir` (required: a sweep's output_dir), `out` (default `<output_dir>/sft.jsonl`),
`min_reward` (only episodes with at least this reward; default: every scored episode),
`domains` (only these domains; default: all).

Exit status: 0 written; 2 bad input (no sweep in output_dir, an unknown domain), nothing written.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from rollout.core.command import CommandArgs, parse_args
from rollout.core.failures import InvalidInput
from rollout.env.domains import check_domain
from rollout.sweep.records import SweepRecord, iter_records


@dataclass
class SftArgs(CommandArgs):
    """The command's arguments (see module doc)."""

    output_dir: Optional[str] = None
    out: Optional[str] = None
    min_reward: Optional[float] = None
    domains: Optional[list[str]] = None


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
    for r in records:
        if not r.ok or not r.messages:
            continue
        if min_reward is not None and float(r.reward) < min_reward:
            continue
        if domains and r.domain not in domains:
            continue
        yield to_chat(r)


def _checked_domains(names: list[str], output_dir: Path) -> set[str]:
    """The names, each a domain tau2 knows or a task set the sweep's config.yaml declares. Raises InvalidInput."""
    import yaml

    try:
        declared = (yaml.safe_load((output_dir / "config.yaml").read_text()) or {}).get("task_sets") or {}
    except (OSError, yaml.YAMLError, AttributeError):
        declared = {}
    return {d if d in declared else check_domain(d) for d in names}


def run(argv: list[str]) -> int:
    """The command (see module doc): its exit status; bad input raises InvalidInput."""
    args = parse_args(argv, SftArgs)
    if not args.output_dir:
        raise InvalidInput("output_dir=... is required: the output_dir of a sweep")
    domains = _checked_domains(args.domains, Path(args.output_dir)) if args.domains else None
    records = iter_records(args.output_dir)
    out = Path(args.out or Path(args.output_dir) / "sft.jsonl")
    n = 0
    with open(out, "w") as f:
        for example in export(records, min_reward=args.min_reward, domains=domains):
            f.write(json.dumps(example) + "\n")
            n += 1
    print(f"wrote {n} examples to {out}")
    return 0
