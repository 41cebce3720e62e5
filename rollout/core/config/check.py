"""Validation of a loaded config: values against the schema's choices, ranges, key sources.

`validate(cfg)` raises `InvalidInput` with every problem found, one clause each, naming the key,
the bad value and what is valid; then refuses literal keys Ray would record (`check_secrets`).
"""

from __future__ import annotations

from functools import reduce

from rollout.core.config.keys import check_secrets
from rollout.core.config.schema import is_optional, walk
from rollout.core.failures import InvalidInput, shown


def choice_problems(cfg) -> list[str]:
    """One line per field whose value is not one of the choices its schema declares."""
    problems = []
    for key, f, type_hint in walk(type(cfg)):
        choices = f.metadata.get("choices")
        if not choices:
            continue
        value = reduce(getattr, key.split("."), cfg)
        if value is None and is_optional(type_hint):
            continue
        if value not in choices:
            problems.append(
                f"{key}={shown(value)} is not one of {', '.join(choices)}" + (" (or null)" if is_optional(type_hint) else "")
            )
    return problems


def validate(cfg) -> None:
    """Reject values the schema's choices or the ranges below do not allow, then literal keys Ray
    would record. Raises InvalidInput."""
    checks = choice_problems(cfg)
    ep = getattr(cfg, "episode", None)
    if ep is not None:
        if ep.max_steps <= 0:
            checks.append(f"episode.max_steps must be > 0, got {ep.max_steps}")
        if ep.max_errors <= 0:
            checks.append(f"episode.max_errors must be > 0, got {ep.max_errors}")
        if ep.timeout_s <= 0:
            checks.append(f"episode.timeout_s must be > 0, got {ep.timeout_s}")
        if ep.empty_reply_retries < 0:
            checks.append(f"episode.empty_reply_retries must be >= 0, got {ep.empty_reply_retries}")
        for key in ("max_prompt_tokens", "max_response_tokens"):
            value = getattr(ep, key)
            if value is not None and value < 1:
                checks.append(f"episode.{key} must be >= 1 or null, got {value}")
            if value is not None and getattr(getattr(cfg, "llm", None), "capture", None) != "token_in":
                checks.append(f"episode.{key} needs llm.capture=token_in (the prompt's length is known before the call)")
    for name in ("llm", "user_llm"):
        cap = getattr(getattr(cfg, name, None), "max_concurrency", 0)
        if cap < 0:
            checks.append(f"{name}.max_concurrency={cap}: valid: 0 (no cap) or an integer >= 1")
    env = getattr(cfg, "env", None)
    if env is not None and env.max_sessions is not None and env.max_sessions < 1:
        checks.append(f"env.max_sessions must be >= 1 or null, got {env.max_sessions}")
    llm = getattr(cfg, "llm", None)
    if llm is not None and getattr(llm, "capture", None) == "token_in" and not llm.tokenizer and not llm.scripted:
        checks.append("llm.capture=token_in needs llm.tokenizer: the model directory the engine serves from")
    if checks:
        raise InvalidInput("; ".join(checks))
    check_secrets(cfg)
