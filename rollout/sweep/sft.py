"""`tau2-rollout sft <output_dir> [--out sft.jsonl] [--min-reward 1.0] [--domains airline,retail]`

Trajectories of a sweep as OpenAI chat-format JSONL for supervised fine-tuning: one line
per scored episode, `{"messages": [...], "tools": [...], "metadata": {...}}`. Messages are
what the agent saw and said: tau2's system prompt (policy, and ticket in solo), tau2's
greeting, the user's messages, the agent's messages with `tool_calls` (arguments as JSON
strings) and the tool results (`role: tool`, `tool_call_id`). The user simulator's own
device tool calls are not part of the agent's conversation and are left out.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Optional

from rollout.sweep.records import SweepRecord, iter_records


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
    return {"messages": messages, "tools": list(tools),
            "metadata": {"domain": domain, "task_id": task_id, "sample": record.sample,
                         "reward": record.reward, "termination": record.termination}}


def export(records: Iterable[SweepRecord], *, min_reward: Optional[float] = None, domains: Optional[set[str]] = None):
    for r in records:
        if not r.ok or not r.messages:
            continue
        if min_reward is not None and float(r.reward) < min_reward:
            continue
        if domains and r.domain not in domains:
            continue
        yield to_chat(r)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="tau2-rollout sft", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("output_dir")
    p.add_argument("--out", default=None, help="default: <output_dir>/sft.jsonl")
    p.add_argument("--min-reward", type=float, default=None)
    p.add_argument("--domains", default=None, help="comma-separated")
    args = p.parse_args(argv)
    from rollout.core.failures import InvalidInput

    try:
        records = iter_records(args.output_dir)
    except InvalidInput as e:
        print(f"error: {e.failure.message}", file=sys.stderr)
        return 2
    out = Path(args.out or Path(args.output_dir) / "sft.jsonl")
    domains = set(args.domains.split(",")) if args.domains else None
    n = 0
    with open(out, "w") as f:
        for example in export(records, min_reward=args.min_reward, domains=domains):
            f.write(json.dumps(example) + "\n")
            n += 1
    print(f"wrote {n} examples to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
