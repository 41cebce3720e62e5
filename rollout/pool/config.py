"""Typed settings of the rollout pool's Ray side: workers, slots, retries (the `ray` and `retry` sections).

Each field's bounds are in its `setting`; `check_pool(ray, retry)` lists the settings no pool
can run with (the bounds again, for the sections a trainer passes as dicts);
`check_fits(ray, cpus, where)` raises `InvalidInput` when the workers can never be placed on a
cluster's CPUs. Each problem is one line naming the key, the value and what is valid.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Optional

from rollout.core.config import field_problems, setting
from rollout.core.failures import InvalidInput

MIN_OBJECT_STORE_MB = 75  # Ray's minimum


@dataclass
class RayConfig:
    """Where the rollout pool's workers run, and how many."""

    address: Optional[str] = setting(
        None, help="null: start a local Ray; auto: join the cluster (inside `ray job submit`); or host:port"
    )
    num_workers: Optional[int] = setting(None, minimum=1, help="rollout actors; null: one per CPU of the cluster")
    slots_per_worker: int = setting(16, minimum=1, help="episodes in flight per actor (each with its own environment session)")
    cpus_per_worker: float = setting(1.0, above=0, help="CPUs Ray reserves for each actor")
    num_cpus: Optional[int] = setting(None, minimum=1, help="CPUs of a local Ray (null: all)")
    object_store_mb: int = setting(
        512,
        minimum=MIN_OBJECT_STORE_MB,
        help=f"a local Ray's object store in MB (results are small; Ray's minimum: {MIN_OBJECT_STORE_MB})",
    )
    worker_start_timeout_s: float = setting(
        300.0, above=0, help="a worker not placed and warm by then is given up (the sweep carries on without it)"
    )


@dataclass
class RetryConfig:
    """Retries of episodes that failed on infrastructure."""

    max_attempts: int = setting(
        3, minimum=1, help="attempts per episode for infrastructure failures (1: no retries; invalid input: 1)"
    )
    backoff_s: float = setting(1.0, minimum=0, help="first retry delay in seconds, doubled per attempt")
    backoff_max_s: float = setting(30.0, minimum=0, help="longest retry delay in seconds")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt number `attempt + 1` (attempt >= 1)."""
        return min(self.backoff_max_s, self.backoff_s * 2 ** (attempt - 1))


def check_pool(r: RayConfig, retry: RetryConfig) -> list[str]:
    """The problems of these settings (one line each; empty: none)."""
    return field_problems(r, "ray.") + field_problems(retry, "retry.")


def check_fits(r: RayConfig, cpus: float, where: str) -> None:
    """Whether the requested workers can ever be placed on `cpus` CPUs. Raises InvalidInput."""
    workers = r.num_workers or 1
    need = workers * r.cpus_per_worker
    if need > cpus + 1e-9:
        raise InvalidInput(
            f"ray.num_workers={r.num_workers} x ray.cpus_per_worker={r.cpus_per_worker} needs {need:g} CPUs, but {where}: "
            f"valid: num_workers x cpus_per_worker <= {cpus:g} (e.g. ray.cpus_per_worker={cpus / workers:g})"
        )


def typed_section(cls, value, name: str):
    """`value` as a `cls` (None: the defaults; a dict: its fields). Raises InvalidInput naming the valid keys."""
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    valid = ", ".join(f.name for f in dataclasses.fields(cls))
    if isinstance(value, Mapping) and not isinstance(value, dict):  # e.g. an OmegaConf DictConfig (verl's YAML)
        value = {str(k): value[k] for k in value}
    if not isinstance(value, dict):
        raise InvalidInput(f"{name}= is {type(value).__name__}: valid: a dict with keys {valid}, or a {cls.__name__}")
    unknown = sorted(str(k) for k in value if k not in {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise InvalidInput(f"{name}= has unknown keys {', '.join(unknown)}: valid: {valid}")
    return cls(**value)
