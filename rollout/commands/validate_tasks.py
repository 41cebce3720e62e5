"""`tau2-rollout validate-tasks domain=D tasks=FILE [db=FILE] [splits=FILE] [solo=false] [out=REPORT]`

Checks a file of tau2 tasks before anything trains on it, with no LLM. For every task:

1. tau2's `Task` model accepts it (else `schema_error`, the field named), its id is not one
   an earlier task of the file took (`duplicate_id`), every tool and function it names exists
   in the domain (`unknown_tool`, the field named);
2. its gold actions are replayed through the domain's environment, over `db` when given
   (the oracle's play: assistant actions as agent tool calls, user actions as the user's tool
   calls, then the communicate_info and the user's stop; solo: every action by the agent, then
   `done`); a write action (or a user's device action) the environment answers with an error
   is `gold_action_failed` (which action, the tool's error). A read action that finds nothing
   is a legitimate step of a dialogue (tau2's retail has such lookups): it is noted in the
   task's message, not a failure;
3. tau2's own evaluator scores the replay; a reward below 1 is `gold_reward_below_1` (which
   check failed: DB, an env assertion, an action, a communicate_info), an evaluator that raises
   `evaluation_error`.

The others are `valid`. Prints a report (one line per task that is not valid, then the counts
and the rate in tasks per second) and, with `out=FILE`, writes the JSON report there
(`{"domain", "tasks_file", "db", "total", "counts", "seconds", "tasks_per_second", "tasks":
[{"index", "id", "status", "field", "message"}]}`).

Exit status: 0 every task valid; 1 some task is not; 2 bad input (an unreadable or non-JSON
file, a file that is not a list, an unknown domain, a database of the wrong shape).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from rollout.core.command import CommandArgs, parse_args
from rollout.core.failures import InvalidInput
from rollout.env.task_validation import validate_tasks


@dataclass
class ValidateArgs(CommandArgs):
    """The command's arguments (see module doc)."""

    domain: Optional[str] = None
    tasks: Optional[str] = None
    db: Optional[str] = None
    splits: Optional[str] = None
    solo: bool = False
    out: Optional[str] = None


def run(argv: list[str]) -> int:
    """The command (see module doc): its exit status; bad input raises InvalidInput."""
    args = parse_args(argv, ValidateArgs)
    if not args.domain or not args.tasks:
        raise InvalidInput("validate-tasks needs domain=D tasks=FILE (e.g. domain=airline tasks=my_tasks.json)")
    report = validate_tasks(args.domain, args.tasks, db=args.db, splits=args.splits, solo=args.solo)
    if args.out:
        Path(args.out).write_text(json.dumps(report.to_json(), indent=2) + "\n")
    print(report.text())
    return 0 if report.all_valid else 1
