"""The sweep worker: an async actor that runs many episodes concurrently.

Each `RolloutWorker` actor owns one `EpisodeRunner`: long-lived clients for the agent and
the user simulator (with per-endpoint request caps) and one environment session per slot,
reused across episodes (local backend: the per-domain tasks and databases loaded once in
the actor and copied per episode; aenv backend: one aenv server instance per slot). `run(spec)` never raises for an episode's own failure: it returns the
`EpisodeResult` as a plain dict (exceptions such as openai's do not unpickle in the
driver).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os

from rollout.agent.episode import EpisodeSpec
from rollout.agent.runner import EpisodeRunner
from rollout.config import RolloutConfig
from rollout.failures import Failure, FailureClass, redact
from rollout.process_env import child_env


class RolloutWorker:
    """Actor body (wrapped with `ray.remote` by `start_workers`)."""

    def __init__(self, cfg: RolloutConfig, worker_id: int, slots: int):
        from agents import set_tracing_disabled

        set_tracing_disabled(True)
        self.cfg = cfg
        self.worker_id = worker_id
        self.runner = EpisodeRunner(cfg, slots=slots)

    async def ping(self) -> int:
        """Answers once the actor is placed and constructed; returns its pid."""
        return os.getpid()

    async def warmup(self, domains: list[str]) -> int:
        """Load the domains' tasks and databases now; returns the actor's pid."""
        from rollout.env.domains import load_domain

        for domain in domains:
            await asyncio.to_thread(load_domain, domain)
        return os.getpid()

    async def run(self, spec: dict) -> dict:
        """Run one episode; the EpisodeResult as a dict, plus the worker id."""
        episode = EpisodeSpec(**spec)
        try:
            result = await self.runner.run(episode)
        except Exception as e:  # the runner classifies; this is a last guard for bugs
            result = episode.failed(Failure(FailureClass.ENV_ERROR, redact(f"{type(e).__name__}: {e}", self.runner.secrets)))
        out = result.to_dict()
        out["worker"] = self.worker_id
        return out

    async def close(self) -> None:
        await self.runner.close()


def start_workers(count: int, cfg: RolloutConfig, *, slots: int, cpus: float, first_id: int = 0) -> list:
    """Create `count` worker actors, each with `slots` episodes in flight."""
    import ray

    actor = ray.remote(RolloutWorker)
    return [
        actor.options(max_concurrency=slots + 4, num_cpus=cpus, runtime_env={"env_vars": child_env()}).remote(cfg, first_id + i, slots)
        for i in range(count)
    ]


def _caps(cfg: RolloutConfig) -> list[int]:
    return [c for c in (cfg.llm.max_concurrency, cfg.user_llm.max_concurrency) if c > 0]


def capped_worker_count(cfg: RolloutConfig, workers: int) -> int:
    """How many workers to start so that every endpoint cap is a whole share (at least one
    request) per worker: never more workers than the smallest cap."""
    return max(1, min([workers, *_caps(cfg)]))


def worker_config(cfg: RolloutConfig, index: int, workers: int) -> RolloutConfig:
    """Worker `index`'s config: each sweep-wide endpoint cap split exactly among `workers`
    (the shares sum to the cap, so the cap holds across the sweep; 0 stays no cap)."""

    def share(total: int) -> int:
        return 0 if total <= 0 else total // workers + (1 if index < total % workers else 0)

    return dataclasses.replace(
        cfg,
        llm=dataclasses.replace(cfg.llm, max_concurrency=share(cfg.llm.max_concurrency)),
        user_llm=dataclasses.replace(cfg.user_llm, max_concurrency=share(cfg.user_llm.max_concurrency)),
    )
