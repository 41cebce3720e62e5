"""Typed settings of a sweep (defaults/sweep.yaml): which episodes, where results go, Ray, retries.

`check_sweep(cfg)` checks what is the sweep's own before anything is written: whether
`output_dir` can be a sweep's directory (it is created and removed again to find out). The
`ray` and `retry` sections are the rollout pool's: the pool checks them (rollout/pool/config.py),
and whether the local Ray's CPUs can ever hold the workers, when the sweep creates it. Errors
are `InvalidInput` with one line naming the key, the value and what is valid.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Optional

from rollout.core.config import RolloutConfig, setting, shown
from rollout.core.failures import InvalidInput
from rollout.env.domains import DOMAINS
from rollout.pool.config import RayConfig, RetryConfig


@dataclass
class SweepConfig(RolloutConfig):
    """A sweep: domains x tasks x samples, each episode run with the RolloutConfig fields."""

    CONF_FILES: ClassVar[tuple[str, ...]] = ("defaults.yaml", "sweep.yaml")

    domains: list[str] = setting(
        default_factory=lambda: list(DOMAINS),
        help="the domains to sweep: tau2 domains, tau2 task sets (telecom_full) or names of task_sets",
    )
    task_ids: Optional[list[str]] = setting(None, help="explicit task ids (needs exactly one domain); null: the split's tasks")
    split: str = setting("base", help="the tasks' split: base, train, test (telecom also: small, full)")
    max_tasks: Optional[int] = setting(None, minimum=1, help="first N tasks per domain; null: all (the offline smoke sweep: 3)")
    num_samples: int = setting(1, minimum=1, help="samples per task (pass^k is reported for k = 1..num_samples)")
    seed: int = setting(300, help="base seed; each episode's seed is derived from (seed, domain, task, sample)")
    output_dir: Optional[str] = setting(
        None, help="where results go; null: runs/sweep-<timestamp>; rerun with the same dir to resume"
    )
    transcripts: bool = setting(
        True,
        help="false: episodes.jsonl leaves out the messages (each line keeps reward, reward_info and timings, not the conversation; no tau2 Results files)",
    )
    progress: bool = setting(True, help="live progress line on stderr")
    ray: RayConfig = setting(default_factory=RayConfig, help=RayConfig.__doc__)
    retry: RetryConfig = setting(default_factory=RetryConfig, help=RetryConfig.__doc__)

    def episode_config(self) -> RolloutConfig:
        """The per-episode part, as sent to the workers."""
        return RolloutConfig(
            llm=self.llm,
            user_llm=self.user_llm,
            sampling=self.sampling,
            episode=self.episode,
            env=self.env,
            task_sets=self.task_sets,
        )


def check_sweep(cfg: SweepConfig, *, local: bool = True) -> None:
    """Reject settings no sweep can run with (see module doc). Raises InvalidInput. `local`
    False: the sweep runs elsewhere, its output_dir is that machine's to check."""
    if cfg.output_dir is not None and local:
        problem = _output_dir_problem(cfg.output_dir)
        if problem:
            raise InvalidInput(problem)


def _output_dir_problem(output_dir: str) -> Optional[str]:
    """Why `output_dir` cannot hold a sweep (None: it can). A directory that does not exist yet
    is created to find out, and removed again."""
    out = Path(output_dir)
    created = []
    try:
        if out.exists():
            return (
                None
                if out.is_dir()
                else f"output_dir={shown(output_dir)} is a file: valid: a directory (new, or a sweep's to resume)"
            )
        for path in reversed([out, *out.parents]):
            if not path.exists():
                path.mkdir()
                created.append(path)
        probe = out / ".write-test"
        probe.touch()
        probe.unlink()
    except OSError as e:
        return (
            f"output_dir={shown(output_dir)} cannot be created: {e.strerror or type(e).__name__}: valid: a path this "
            f"process can write"
        )
    finally:
        for path in reversed(created):
            try:
                path.rmdir()
            except OSError:
                pass
    return None
