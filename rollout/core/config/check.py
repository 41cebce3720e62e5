"""Validation of a loaded config: values against the schema's choices and bounds, key sources.

`validate(cfg)` raises `InvalidInput` with every problem found, one clause each, naming the key,
the bad value and what is valid; then refuses literal keys Ray would record (`check_secrets`).
`field_problems(section, prefix)` is the schema part alone, for any config dataclass (the
rollout pool's `ray` and `retry` sections when a trainer passes them as dicts).
"""

from __future__ import annotations

import typing
from functools import reduce

from rollout.core.config.keys import check_secrets
from rollout.core.config.schema import is_optional, walk
from rollout.core.failures import InvalidInput, shown


def field_problems(cfg, prefix: str = "") -> list[str]:
    """One line per field of `cfg` (a config dataclass; its keys shown under `prefix`) whose value
    is not one of the choices, or not within the bounds, its schema declares."""
    problems = []
    for key, f, type_hint in walk(type(cfg), prefix):
        choices, bounds = f.metadata.get("choices"), f.metadata.get("bounds")
        if not choices and not bounds:
            continue
        value = reduce(getattr, key[len(prefix) :].split("."), cfg)
        if value is None and is_optional(type_hint):
            continue
        optional = is_optional(type_hint)
        if choices and value not in choices:
            problems.append(f"{key}={shown(value)} is not one of {', '.join(choices)}" + (" (or null)" if optional else ""))
        elif bounds and not bounds.allows(value):
            kind = "an integer" if int in (type_hint, *typing.get_args(type_hint)) else "a number"
            problems.append(f"{key}={shown(value)}: valid: {kind} {bounds.text()}" + (", or null" if optional else ""))
    return problems


def validate(cfg) -> None:
    """Reject values the schema's choices or bounds do not allow, and settings that need another
    (below), then literal keys Ray would record. Raises InvalidInput."""
    checks = field_problems(cfg)
    ep = getattr(cfg, "episode", None)
    if ep is not None:
        for key in ("max_prompt_tokens", "max_response_tokens"):
            if getattr(ep, key) is not None and getattr(getattr(cfg, "llm", None), "capture", None) != "token_in":
                checks.append(f"episode.{key} needs llm.capture=token_in (the prompt's length is known before the call)")
    llm = getattr(cfg, "llm", None)
    if llm is not None and getattr(llm, "capture", None) == "token_in" and not llm.tokenizer and not llm.scripted:
        checks.append("llm.capture=token_in needs llm.tokenizer: the model directory the engine serves from")
    if checks:
        raise InvalidInput("; ".join(checks))
    check_secrets(cfg)
