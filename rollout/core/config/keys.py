"""API keys: where a config section's key comes from, reading it, and the checks on key sources.

A section that holds a key (`KeySource`: `llm`, `user_llm`, `env.aenv`) names it one of three
ways: `api_key` (a literal), `api_key_file` (a file holding it) or `api_key_env` (the name of an
environment variable). The file and the variable are read by the process that makes the
requests, when it makes them (`api_key_of`), so the key itself never travels in a config, a
command line or a Ray job record. `check_secrets` is the one refusal of literal keys where Ray
would record them; `check_key_sources` reads every needed key where the requests are made from.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, ClassVar, Optional

from rollout.core.failures import InvalidInput, shown

KEY_SOURCE_FIELDS = ("api_key", "api_key_env", "api_key_file")
_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class KeySource:
    """A config section holding an API key in one of `KEY_SOURCE_FIELDS` (see module doc). With
    none of the three set, the standard variable `KEY_ENV` is read if it is set."""

    KEY_ENV: ClassVar[str] = "OPENAI_API_KEY"


def key_sections(cfg: Any, prefix: str = "") -> Iterator[tuple[str, KeySource]]:
    """(dotted name, section) of every `KeySource` section of a config object, in declaration order."""
    for f in fields(cfg):
        value = getattr(cfg, f.name, None)
        if isinstance(value, KeySource):
            yield f"{prefix}{f.name}", value
        elif is_dataclass(value):
            yield from key_sections(value, f"{prefix}{f.name}.")


def api_key_of(section) -> Optional[str]:
    """The API key of an endpoint section (`llm`, `user_llm`, `env.aenv`), read now.

    In order: `api_key`; the contents of `api_key_file` (stripped); the variable named by
    `api_key_env`; the section's standard variable (OPENAI_API_KEY, TAU2_USER_LLM_API_KEY,
    AENV_API_KEY) if set; else None. A file or a variable the user named that is missing or
    empty raises InvalidInput (naming the path or the variable, never a key).
    """
    if section.api_key:
        return _one_line_key(section.api_key, "the literal api_key")
    if section.api_key_file:
        try:
            key = Path(section.api_key_file).expanduser().read_text().strip()
        except OSError as e:
            raise InvalidInput(f"api_key_file {shown(section.api_key_file)} cannot be read: {type(e).__name__}") from None
        except UnicodeDecodeError:
            raise InvalidInput(
                f"api_key_file {shown(section.api_key_file)} is not UTF-8 text: valid: a file holding the key on one line"
            ) from None
        if not key:
            raise InvalidInput(f"api_key_file {shown(section.api_key_file)} is empty")
        return _one_line_key(key, f"api_key_file {shown(section.api_key_file)}")
    if section.api_key_env:
        return key_from_variable(section.api_key_env)
    key = os.environ.get(section.KEY_ENV, "").strip()
    return _one_line_key(key, f"the variable {section.KEY_ENV}") if key else None


def is_variable_name(name: str) -> bool:
    """Whether `name` can be an environment variable's name (letters, digits, underscores)."""
    return bool(_VAR_NAME.fullmatch(name))


def key_from_variable(
    name: str, *, field: str = "api_key_env", where: str = "this process (on a Ray cluster, start every node with it set)"
) -> str:
    """The key in the environment variable `name`, read now and stripped. InvalidInput naming the
    variable (`field` names the setting that gave it, `where` the process) if it is unset or empty,
    or if the key is not one line."""
    key = os.environ.get(name, "").strip()
    if not key:
        raise InvalidInput(f"{field} names {name}, which is not set in {where}")
    return _one_line_key(key, f"the variable {name}")


def _one_line_key(key: str, where: str) -> str:
    """The key, if it can be an HTTP header value: no whitespace or control character inside (a
    key file with two lines would otherwise send its second line as a header of its own)."""
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in key):
        raise InvalidInput(
            f"the key in {where} has whitespace or control characters inside it: a key is one line "
            f"without spaces (the key is not shown)"
        )
    return key


def secrets_of(cfg) -> list[str]:
    """The API keys this process would use (literal, from a file or a variable), for redaction.
    Never raises: a missing file or variable is simply not a secret."""
    out = []
    for _, section in key_sections(cfg):
        try:
            key = api_key_of(section)
        except InvalidInput:
            key = section.api_key
        if key and key not in out:
            out.append(key)
    return out


def check_key_sources(cfg) -> None:
    """Read every key the config's endpoints need, here and now (InvalidInput naming the file or
    variable that is missing). Run where the requests will be made from: a sweep's driver."""
    llm, user = getattr(cfg, "llm", None), getattr(cfg, "user_llm", None)
    if llm is not None and not llm.scripted:
        api_key_of(llm)
    if user is not None and (user.base_url or user.model) and not getattr(llm, "scripted", None):
        api_key_of(user)
    env = getattr(cfg, "env", None)
    if env is not None and env.backend == "aenv" and env.aenv.system_url:
        api_key_of(env.aenv)


def check_secrets(cfg, *, remote: Optional[bool] = None) -> None:
    """Refuse a config whose literal API keys would be recorded by Ray.

    `remote` (default: the config's `ray.address` is set) means the config goes to a Ray
    cluster: the driver's command line, the job's entrypoint and runtime_env are stored in
    Ray's job table (dashboard /api/jobs/) and logs, so a literal `*.api_key` is refused
    with InvalidInput telling the user to use `*.api_key_env` / `*.api_key_file`. Also
    rejects a section that sets more than one of api_key, api_key_env, api_key_file.
    """
    if remote is None:
        ray_cfg = getattr(cfg, "ray", None)
        remote = bool(getattr(ray_cfg, "address", None))
    for name, section in key_sections(cfg):
        given = [f for f in KEY_SOURCE_FIELDS if getattr(section, f)]
        if len(given) > 1:
            raise InvalidInput(f"{name}: set only one of {', '.join(f'{name}.{f}' for f in given)}")
        if section.api_key_env and not is_variable_name(section.api_key_env):
            raise InvalidInput(
                f"{name}.api_key_env is not the name of an environment variable (letters, digits and "
                f"underscores): give the variable's NAME, e.g. {name}.api_key_env=MY_KEY, not the key "
                f"(the value is not shown)"
            )
        if remote and section.api_key:
            raise InvalidInput(
                f"{name}.api_key is a literal key and the config goes to a Ray cluster: Ray would record it in the job's "
                f"entrypoint / job table; use {name}.api_key_env=VARIABLE (set on every node) or "
                f"{name}.api_key_file=PATH instead"
            )
