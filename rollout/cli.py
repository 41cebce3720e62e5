"""`tau2-rollout <command> [args]` (also `python -m rollout <command>`): the installed commands.

    sweep     run a sweep of episodes on Ray (offline smoke sweep with no endpoint configured)
    episode   run one episode and print its reward (`--scripted oracle` for the offline check)
    submit    submit a sweep to a Ray cluster as a Ray job
    report    write the report of one or more sweeps
    dataset   write the task rows AReaL trains on
    sft       export scored trajectories as OpenAI chat-format JSONL
    bench     the benchmark against tau2's own runner and gym
    capture-check  check that an inference server returns the tokens training needs

`tau2-rollout <command> --help` explains each.
"""

from __future__ import annotations

import importlib
import sys
from typing import Optional

COMMANDS = {
    "sweep": "rollout.sweep.run",
    "episode": "rollout.agent.command",
    "submit": "rollout.sweep.submit",
    "report": "rollout.sweep.report",
    "dataset": "rollout.areal.dataset",
    "sft": "rollout.sweep.sft",
    "bench": "rollout.bench.bench",
    "capture-check": "rollout.pool.capture_check",
}


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"error: unknown command '{command}'; valid commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    return importlib.import_module(COMMANDS[command]).main(rest)


if __name__ == "__main__":
    sys.exit(main())
