"""Typed settings of a sweep (defaults/sweep.yaml): which episodes, where results go, Ray, retries.

`check_sweep(cfg)` validates everything that can be checked before Ray starts and before
anything is written (sizes, retries, output_dir, and whether the local Ray's CPUs can ever
hold the workers); `check_fits(cfg, cpus, where)` is the same resource check against a
cluster, right after connecting. Both raise `InvalidInput` with one line naming the key,
the value and what is valid.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Optional

from rollout.config import RolloutConfig
from rollout.failures import InvalidInput


@dataclass
class RayConfig:
    address: Optional[str] = None
    num_workers: Optional[int] = None
    slots_per_worker: int = 16
    cpus_per_worker: float = 1.0
    num_cpus: Optional[int] = None
    object_store_mb: int = 512
    worker_start_timeout_s: float = 300.0  # a worker not placed and warm by then is given up


@dataclass
class RetryConfig:
    max_attempts: int = 3
    backoff_s: float = 1.0
    backoff_max_s: float = 30.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt number `attempt + 1` (attempt >= 1)."""
        return min(self.backoff_max_s, self.backoff_s * 2 ** (attempt - 1))


@dataclass
class SweepConfig(RolloutConfig):
    """A sweep: domains x tasks x samples, each episode run with the RolloutConfig fields."""

    CONF_FILES: ClassVar[tuple[str, ...]] = ("defaults.yaml", "sweep.yaml")

    domains: list[str] = field(default_factory=lambda: ["airline", "retail", "telecom", "mock"])
    task_ids: Optional[list[str]] = None
    split: str = "base"
    max_tasks: Optional[int] = None
    num_samples: int = 1
    seed: int = 300
    output_dir: Optional[str] = None
    transcripts: bool = True  # false: episodes.jsonl leaves messages out (no tau2 Results export)
    progress: bool = True
    ray: RayConfig = field(default_factory=RayConfig)
    retry: RetryConfig = field(default_factory=RetryConfig)

    def episode_config(self) -> RolloutConfig:
        """The per-episode part, as sent to the workers."""
        return RolloutConfig(llm=self.llm, user_llm=self.user_llm, sampling=self.sampling, episode=self.episode, env=self.env)


MIN_OBJECT_STORE_MB = 75  # Ray's minimum


def check_sweep(cfg: SweepConfig) -> None:
    """Reject settings no sweep can run with (see module doc). Raises InvalidInput."""
    r, retry = cfg.ray, cfg.retry
    problems = []
    if r.num_workers is not None and r.num_workers < 1:
        problems.append(f"ray.num_workers={r.num_workers}: valid: an integer >= 1, or null (one per CPU)")
    if r.slots_per_worker < 1:
        problems.append(f"ray.slots_per_worker={r.slots_per_worker}: valid: an integer >= 1")
    if not r.cpus_per_worker > 0:
        problems.append(f"ray.cpus_per_worker={r.cpus_per_worker}: valid: a number > 0")
    if r.num_cpus is not None and r.num_cpus < 1:
        problems.append(f"ray.num_cpus={r.num_cpus}: valid: an integer >= 1, or null (all CPUs)")
    if r.object_store_mb < MIN_OBJECT_STORE_MB:
        problems.append(f"ray.object_store_mb={r.object_store_mb}: valid: >= {MIN_OBJECT_STORE_MB}")
    if not r.worker_start_timeout_s > 0:
        problems.append(f"ray.worker_start_timeout_s={r.worker_start_timeout_s}: valid: a number > 0")
    if retry.max_attempts < 1:
        problems.append(f"retry.max_attempts={retry.max_attempts}: valid: an integer >= 1 (1: no retries)")
    if retry.backoff_s < 0 or retry.backoff_max_s < 0:
        problems.append(f"retry.backoff_s={retry.backoff_s}, retry.backoff_max_s={retry.backoff_max_s}: valid: >= 0")
    for name, cap in (("llm", cfg.llm.max_concurrency), ("user_llm", cfg.user_llm.max_concurrency)):
        if cap < 0:
            problems.append(f"{name}.max_concurrency={cap}: valid: 0 (no cap) or an integer >= 1")
    if cfg.output_dir is not None:
        out = Path(cfg.output_dir)
        if out.exists() and not out.is_dir():
            problems.append(f"output_dir='{cfg.output_dir}' is a file: valid: a directory (new, or a sweep's to resume)")
        else:
            parent = next((p for p in [out, *out.parents] if p.exists()), None)
            if parent is not None and not parent.is_dir():
                problems.append(f"output_dir='{cfg.output_dir}': '{parent}' is a file: valid: a path under a directory")
    if problems:
        raise InvalidInput("; ".join(problems))
    if not r.address:
        cpus = r.num_cpus if r.num_cpus is not None else (os.cpu_count() or 1)
        check_fits(cfg, cpus, f"the local Ray has {cpus} CPUs (ray.num_cpus={r.num_cpus})")


def check_fits(cfg: SweepConfig, cpus: float, where: str) -> None:
    """Whether the requested workers can ever be placed on `cpus` CPUs. Raises InvalidInput."""
    r = cfg.ray
    workers = r.num_workers or 1
    need = workers * r.cpus_per_worker
    if need > cpus + 1e-9:
        raise InvalidInput(
            f"ray.num_workers={r.num_workers} x ray.cpus_per_worker={r.cpus_per_worker} needs {need:g} CPUs, but {where}: "
            f"valid: num_workers x cpus_per_worker <= {cpus:g} (e.g. ray.cpus_per_worker={cpus / workers:g})")
