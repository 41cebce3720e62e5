"""The convention every `tau2-rollout` command follows.

A command is a module with its help text (the module docstring) and `run(argv) -> int`.
`rollout/cli.py` is the one entry point: it prints a command's help on `-h` / `--help`, sets
the logging level from `-v` / `-vv` (`configure_logging`), and turns an `InvalidInput` raised
by `run` into one line `error: ...` on stderr and exit status 2 (`EXIT_BAD_INPUT`), a Ctrl-C
into 130 (`EXIT_INTERRUPTED`); a command's other outcomes are documented in its help. The
commands live in `rollout/commands/`, one module each; a command prints what the library
functions it calls return.

A command's arguments are `key=value` items of its typed dataclass (nested keys with dots,
values parsed as YAML: `domains=[airline,retail]`, `episode.max_steps=50`), read by
`parse_args(argv, schema)` before the command does any work: an unknown key is named with the
valid keys (or the close match), a wrong type with the expected one. Commands whose arguments
are a project config (sweep, episode, capture-check) also take `--config FILE` (repeatable):
YAML files merged under the `key=value` items.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import fields
from typing import ClassVar, TypeVar

from rollout.core.failures import InvalidInput

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports SIGINT
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_LEVELS = (logging.WARNING, logging.INFO, logging.DEBUG)  # by the count of -v
_HANDLER_NAME = "tau2-rollout"

T = TypeVar("T")


class CommandArgs:
    """Base of a command's own argument dataclass: no package defaults file under it."""

    CONF_FILES: ClassVar[tuple[str, ...]] = ()


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


def parse_args(argv: list[str], schema: type[T], *, config_files: bool = False) -> T:
    """The validated `schema` instance of `key=value` arguments (plus `--config FILE` files
    when `config_files`). Raises InvalidInput: an option that is not `key=value`, an unknown
    key, a value of the wrong type, an unreadable file."""
    from rollout.core.config import load_config

    files, items = split_config_files(argv) if config_files else ([], list(argv))
    for item in items:
        if item.startswith("-") and "=" not in item:
            keys = ", ".join(sorted(f.name for f in fields(schema)))
            raise InvalidInput(
                f"unknown option {item!r}: arguments are key=value"
                f"{' (and --config FILE)' if config_files else ''}; valid keys: {keys}"
            )
    return load_config(items, schema=schema, files=files)


def configure_logging(verbosity: int) -> None:
    """Python logging for a command: one line per record on stderr (whatever `sys.stderr` is
    when the record is emitted). This project's loggers (`rollout.*`) at WARNING, INFO (`verbosity`
    1: -v) or DEBUG (2: -vv); other libraries' at WARNING, or DEBUG too with -vvv. Replaces the
    handler an earlier call added; other handlers are left alone."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(handler)
    handler = _StderrHandler()
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(handler)
    logging.getLogger("rollout").setLevel(LOG_LEVELS[min(max(verbosity, 0), len(LOG_LEVELS) - 1)])
    root.setLevel(logging.DEBUG if verbosity >= len(LOG_LEVELS) else logging.WARNING)


class _StderrHandler(logging.StreamHandler):
    """A StreamHandler on the current `sys.stderr` (not the one at creation)."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass
