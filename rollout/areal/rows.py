"""AReaL / AEnvironment data rows: `{"domain", "task_id", ...}` checked strictly into an EpisodeSpec."""

from __future__ import annotations

import numbers
from typing import Any

from rollout.agent.episode import EpisodeSpec
from rollout.core.failures import InvalidInput

DATA_KEYS = ("domain", "task_id", "split", "seed", "sample", "solo", "overrides")


def spec_from_data(data: dict[str, Any]) -> EpisodeSpec:
    """An EpisodeSpec from an AReaL / AEnvironment data row, checked strictly. Raises InvalidInput.

    A row is a dict with `domain` (str) and `task_id` (str or int), and optionally `split`
    (str), `seed` (int), `sample` (int >= 0), `solo` (a boolean) and `overrides` (a dict of
    config overrides); null means unset. JSON rows carry typed values, so nothing is
    coerced: `"false"` is not a boolean, `"7"` and `1.7` are not seeds, `True` is not a
    sample. Each error names the key, the value and what is valid.
    """
    if not isinstance(data, dict):
        raise InvalidInput(f"data must be a dict with 'domain' and 'task_id', got {type(data).__name__}")
    missing = [k for k in ("domain", "task_id") if data.get(k) is None]
    if missing:
        raise InvalidInput(f"data is missing {', '.join(repr(k) for k in missing)}; got keys {sorted(map(str, data))}")
    unknown = sorted(map(str, set(data) - set(DATA_KEYS)))
    if unknown:
        raise InvalidInput(f"unknown data keys {unknown}; valid keys: {', '.join(DATA_KEYS)}")
    domain = _row_value(data, "domain", "a non-empty string (a tau2 domain name)", lambda v: isinstance(v, str) and v != "")
    task_id = _row_value(
        data,
        "task_id",
        "a string or an integer (a task id of the domain)",
        lambda v: (isinstance(v, str) and v != "") or _is_int(v),
    )
    _row_value(data, "split", "a string (a split name of the domain) or null", lambda v: isinstance(v, str))
    seed = _row_value(data, "seed", "an integer or null", _is_int)
    sample = _row_value(data, "sample", "a non-negative integer", lambda v: _is_int(v) and v >= 0)
    solo = _row_value(data, "solo", "true, false or null (a JSON boolean, not a string)", _is_bool)
    _row_value(
        data,
        "overrides",
        'a dict of config overrides (e.g. {"episode": {"max_steps": 50}}) or null',
        lambda v: isinstance(v, dict),
    )
    return EpisodeSpec(
        domain=domain,
        task_id=str(task_id),
        sample=int(sample) if sample is not None else 0,
        seed=int(seed) if seed is not None else None,
        solo=bool(solo) if solo is not None else None,
    )


def _is_int(v: Any) -> bool:
    """An integer (Python's or numpy's), not a boolean, a float or a string of digits."""
    return isinstance(v, numbers.Integral) and not _is_bool(v)


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool) or (type(v).__module__ == "numpy" and type(v).__name__ in ("bool", "bool_"))


def _row_value(data: dict, key: str, valid: str, ok) -> Any:
    """data[key] if it is null/absent or passes `ok`; else InvalidInput naming key, value and what is valid."""
    value = data.get(key)
    if value is not None and not ok(value):
        raise InvalidInput(f"data[{key!r}] = {value!r} ({type(value).__name__}) is invalid: expected {valid}")
    return value
