"""`tau2-rollout [-v | -vv] <command> [key=value ...]` (also `python -m rollout ...`): the installed commands.

    sweep          run a sweep of episodes on Ray (offline smoke sweep with no endpoint configured)
    episode        run one episode and print its reward (`llm.scripted=oracle` for the offline check)
    submit         submit a sweep to a Ray cluster as a Ray job
    report         write the report of one or more sweeps
    dataset        write the task rows AReaL trains on
    sft            export scored trajectories as OpenAI chat-format JSONL
    bench          the benchmark against tau2's own runner and gym
    capture-check  check that an inference server returns the tokens training needs
    validate-tasks check a file of tau2 tasks (schema, tools, gold actions, gold reward) without an LLM

Every command takes `key=value` arguments, values parsed as YAML (`domains=[airline,retail]`,
`quick=true`); sweep, episode, capture-check and submit also take `--config FILE`.
`tau2-rollout <command> -h` explains each. `-v` logs this project's records at INFO, `-vv` at
DEBUG (default: WARNING), `-vvv` every library's at DEBUG; given before or after the command name. Bad input (an unknown key, a wrong type, a
value out of range) is one line `error: ...` on stderr and exit status 2, before any work
starts; each command's help lists its other exit statuses.
"""

from __future__ import annotations

import difflib
import importlib
import sys
from dataclasses import dataclass
from typing import Optional

from rollout.core.command import EXIT_BAD_INPUT, EXIT_INTERRUPTED, configure_logging
from rollout.core.failures import InvalidInput
from rollout.core.process_env import apply_defaults

COMMANDS = {
    "sweep": "rollout.commands.sweep",
    "episode": "rollout.commands.episode",
    "submit": "rollout.commands.submit",
    "report": "rollout.commands.report",
    "dataset": "rollout.commands.dataset",
    "sft": "rollout.commands.sft",
    "bench": "rollout.commands.bench",
    "capture-check": "rollout.commands.capture_check",
    "validate-tasks": "rollout.commands.validate_tasks",
}
HELP_FLAGS = ("-h", "--help")


@dataclass(frozen=True)
class CommandLine:
    """A command line split into the command, its arguments and the global flags."""

    command: Optional[str]
    args: list[str]
    verbosity: int = 0
    help: bool = False


def parse_command_line(argv: list[str]) -> CommandLine:
    """Split `argv`: `-v` / `-vv` / `--verbose` and `-h` / `--help` anywhere before a `--`,
    the first other argument is the command, the rest (and everything from `--` on) its arguments."""
    command, args, verbosity, help_ = None, [], 0, False
    for i, arg in enumerate(argv):
        if arg == "--" and command is not None:
            args += argv[i:]
            break
        count = _verbosity(arg)
        if count:
            verbosity += count
        elif arg in HELP_FLAGS:
            help_ = True
        elif command is None:
            command = arg
        else:
            args.append(arg)
    return CommandLine(command, args, verbosity, help_)


def _verbosity(arg: str) -> int:
    if arg == "--verbose":
        return 1
    return len(arg) - 1 if len(arg) > 1 and arg[0] == "-" and set(arg[1:]) == {"v"} else 0


def main(argv: Optional[list[str]] = None) -> int:
    """Run the command of `argv` (default: `sys.argv[1:]`); its exit status (see module doc)."""
    apply_defaults()  # before any command module is imported: tau2 and litellm read them at import
    line = parse_command_line(sys.argv[1:] if argv is None else list(argv))
    configure_logging(line.verbosity)
    if line.command is None:
        print(__doc__.strip(), file=sys.stdout if line.help else sys.stderr)
        return 0 if line.help else EXIT_BAD_INPUT
    if line.command not in COMMANDS:
        close = difflib.get_close_matches(line.command, list(COMMANDS), n=1)
        hint = f", did you mean '{close[0]}'" if close else ""
        print(f"error: unknown command {line.command!r}{hint}; valid commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    command = importlib.import_module(COMMANDS[line.command])
    if line.help:
        print(command.__doc__.strip())
        return 0
    try:
        return command.run(line.args)
    except InvalidInput as e:
        print(f"error: {e.failure.message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
