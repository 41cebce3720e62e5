"""`tau2-rollout dataset [domain=airline] [split=train] [out=FILE] [min_rows=N] [overrides={...}] [config=FILE]`

Writes the task rows AReaL trains on, one JSON object per line: `{"domain", "task_id",
"split"}` (plus `"overrides"`, per-row config overrides, when given), in tau2's split
order. Load with `datasets.load_dataset("json", data_files=out, split="train")` and pass
to AReaL's trainer with `workflow="rollout.areal.Tau2Agent"` (see launch/areal_train.py).

Keys: `domain` (default airline), `split` (default train), `out` (default
`<domain>_<split>.jsonl`), `min_rows` (repeat the rows until there are at least that many:
AReaL batches rows; default 0), `overrides` (a mapping of episode config keys every row
carries, validated here, e.g. `overrides={sampling: eval}`), `config` (a config file whose
`task_sets` declare the domain when it is a task set: docs/tasks.md; the workflow needs the same
`task_sets` in its workflow kwargs).

Exit status: 0 written; 2 bad input (an unknown domain, split or key), nothing written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from rollout.areal.dataset import dataset_rows
from rollout.core.command import CommandArgs, parse_args


@dataclass
class DatasetArgs(CommandArgs):
    """The command's arguments (see module doc)."""

    domain: str = "airline"
    split: str = "train"
    out: Optional[str] = None
    min_rows: int = 0
    overrides: dict[str, Any] = field(default_factory=dict)
    config: Optional[str] = None


def run(argv: list[str]) -> int:
    """The command (see module doc): its exit status; bad input raises InvalidInput."""
    args = parse_args(argv, DatasetArgs)
    rows = dataset_rows(args.domain, args.split, min_rows=args.min_rows, overrides=args.overrides or None, config=args.config)
    out = Path(args.out or f"{args.domain}_{args.split}.jsonl")
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"wrote {len(rows)} rows to {out}")
    return 0
