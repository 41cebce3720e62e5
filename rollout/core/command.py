"""The convention every `tau2-rollout` command follows.

Arguments are `key=value` overrides of the command's typed config (nested keys with dots,
values parsed as YAML: `domains=[airline,retail]`, `episode.max_steps=50`), plus
`--config FILE` (repeatable) for YAML files merged under them; `-h` / `--help` prints the
command's help. Bad input (an unknown key, a wrong type, a value out of range, an unreadable
file) is one line `error: ...` on stderr and exit status 2, before anything expensive
starts; a command's other outcomes are documented in its help. `main_of(doc, run)` builds a
command's `main(argv) -> int` from its help text and `run(argv) -> int`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Optional

from rollout.core.failures import InvalidInput

EXIT_BAD_INPUT = 2


def split_config_files(argv: list[str]) -> tuple[list[str], list[str]]:
    """(the `--config FILE` paths, the other arguments), in order. Raises InvalidInput."""
    files, rest, args = [], [], iter(argv)
    for arg in args:
        if arg == "--config" or arg.startswith("--config="):
            path = arg.partition("=")[2] or next(args, None)
            if not path:
                raise InvalidInput("--config needs a file: --config conf/sweep.yaml")
            files.append(path)
        else:
            rest.append(arg)
    return files, rest


def main_of(doc: str, run: Callable[[list[str]], int]) -> Callable[[Optional[list[str]]], int]:
    """A command's `main(argv=None) -> int` (see module doc)."""

    def main(argv: Optional[list[str]] = None) -> int:
        argv = sys.argv[1:] if argv is None else list(argv)
        if any(a in ("-h", "--help") for a in argv):
            print(doc.strip())
            return 0
        try:
            return run(argv)
        except InvalidInput as e:
            print(f"error: {e.failure.message}", file=sys.stderr)
            return EXIT_BAD_INPUT

    return main
