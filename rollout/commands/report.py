"""`tau2-rollout report dirs=[OUTPUT_DIR,...] [out=DIR]`: a sweep report.

Writes `report.md`, a self-contained `report.html` (plots embedded) and the PNG plots:
mean reward per domain with standard-error bars, pass^k curves, the distribution of
per-task success rates, failure causes, episode duration and token usage. Several output
dirs are drawn side by side (one colour per run). Sweeps write their own report at the end.

Keys: `dirs` (required: the output_dir of one or more sweeps, e.g. `dirs=[runs/a,runs/b]`),
`out` (default `<first dir>/report`).

Exit status: 0 written; 2 bad input (a dir without a sweep's episodes.jsonl), nothing written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from rollout.core.command import CommandArgs, parse_args
from rollout.core.failures import InvalidInput
from rollout.sweep.report import write_report


@dataclass
class ReportArgs(CommandArgs):
    """The command's arguments (see module doc)."""

    dirs: list[str] = field(default_factory=list)
    out: Optional[str] = None


def run(argv: list[str]) -> int:
    """The command (see module doc): its exit status; bad input raises InvalidInput."""
    args = parse_args(argv, ReportArgs)
    if not args.dirs:
        raise InvalidInput("dirs=[...] is required: the output_dir of one or more sweeps, e.g. dirs=[runs/a,runs/b]")
    page = write_report([Path(d) for d in args.dirs], Path(args.out) if args.out else None)
    print(f"report: {page} (and report.md, *.png beside it)")
    return 0
