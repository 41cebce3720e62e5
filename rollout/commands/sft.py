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
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from rollout.core.command import CommandArgs, parse_args
from rollout.core.failures import InvalidInput
from rollout.sweep.records import iter_records
from rollout.sweep.sft import checked_domains, export


@dataclass
class SftArgs(CommandArgs):
    """The command's arguments (see module doc)."""

    output_dir: Optional[str] = None
    out: Optional[str] = None
    min_reward: Optional[float] = None
    domains: Optional[list[str]] = None


def run(argv: list[str]) -> int:
    """The command (see module doc): its exit status; bad input raises InvalidInput."""
    args = parse_args(argv, SftArgs)
    if not args.output_dir:
        raise InvalidInput("output_dir=... is required: the output_dir of a sweep")
    domains = checked_domains(args.domains, Path(args.output_dir)) if args.domains else None
    records = iter_records(args.output_dir)
    out = Path(args.out or Path(args.output_dir) / "sft.jsonl")
    n = 0
    with open(out, "w") as f:
        for example in export(records, min_reward=args.min_reward, domains=domains):
            f.write(json.dumps(example) + "\n")
            n += 1
    print(f"wrote {n} examples to {out}")
    return 0
