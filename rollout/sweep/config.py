"""Typed settings of a sweep (conf/sweep.yaml): which episodes, where results go, Ray, retries."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Optional

from rollout.config import RolloutConfig


@dataclass
class RayConfig:
    address: Optional[str] = None
    num_workers: Optional[int] = None
    slots_per_worker: int = 16
    cpus_per_worker: float = 1.0
    num_cpus: Optional[int] = None
    object_store_mb: int = 512


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
    progress: bool = True
    ray: RayConfig = field(default_factory=RayConfig)
    retry: RetryConfig = field(default_factory=RetryConfig)

    def episode_config(self) -> RolloutConfig:
        """The per-episode part, as sent to the workers."""
        return RolloutConfig(llm=self.llm, user_llm=self.user_llm, sampling=self.sampling, episode=self.episode, env=self.env)
