"""The pool's worker: an async Ray actor that runs many episodes at once.

Each `RolloutWorker` owns one `EpisodeRunner` (rollout/agent/runner.py): long-lived clients for
the policy endpoints its requests name and for the user simulator (with its share of the
endpoint caps), and one environment session per slot, reused across episodes (local backend:
the domains' tasks and databases loaded once in the actor; aenv backend: one aenv instance per
slot). `run(job)` runs the episode the driver checked and never raises for an episode's own
failure: it returns the `Trajectory`, a failure in it as a classified `Failure` (exceptions
such as openai's do not unpickle in the driver), both views built here, so the driver only
collects. `active_s(jobs)` says how long each running
episode has really run (waits for endpoint caps excluded), for the driver's last-resort cancel.
`pause()`, `resume()` and `set_weights(version, policy)` act on the runner's weight state: the
pool calls them on every worker around a trainer's weight swap.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Mapping
from types import MappingProxyType
from typing import Optional

from rollout.agent.runner import EpisodeRunner
from rollout.core.clock import EpisodeClock
from rollout.core.config import RolloutConfig
from rollout.core.failures import EpisodeFailure, Failure, FailureClass, InvalidInput, described, frames
from rollout.core.process_env import apply_defaults, child_env, settle_heap
from rollout.core.weights import PAUSE_GRACE_S
from rollout.pool.jobs import Job
from rollout.pool.requests import Endpoint
from rollout.trajectory import Trajectory

log = logging.getLogger(__name__)

# What an actor's process starts with besides the process defaults: no loguru default sink. Ray
# imports this module (and with it tau2, which logs at import) before `__init__` can quiet tau2,
# and tau2 is the only loguru user there.
WORKER_ENV: Mapping[str, str] = MappingProxyType({"LOGURU_AUTOINIT": "False"})


class RolloutWorker:
    """Actor body (wrapped with `ray.remote` by `start_workers`)."""

    def __init__(self, cfg: RolloutConfig, worker_id: int, slots: int):
        from agents import set_tracing_disabled

        apply_defaults()  # the actor's process is an entry point (see WORKER_ENV for what precedes this)
        set_tracing_disabled(True)
        self.cfg = cfg
        self.worker_id = worker_id
        self.runner = EpisodeRunner(cfg, slots=slots)
        self._clocks: dict[int, EpisodeClock] = {}
        self._policy: Optional[Endpoint] = None  # the endpoint the pool named last (set_weights)

    async def ping(self) -> int:
        """Answers once the actor is placed and constructed; returns its pid."""
        return os.getpid()

    async def warmup(self, domains: list[str]) -> int:
        """Load the domains' tasks and databases now, then settle the heap (what is loaded is
        kept for the actor's life: `settle_heap`); returns the actor's pid."""
        from rollout.env.domains import load_domain
        from rollout.env.task_sets import register_task_sets

        await asyncio.to_thread(register_task_sets, self.cfg.task_sets)
        for domain in domains:
            await asyncio.to_thread(load_domain, domain)
        settle_heap()
        return os.getpid()

    async def run(self, job: Job) -> Trajectory:
        """Run one attempt of a checked request (its episode is not checked again here); its
        Trajectory (this worker's id in its tags). Ray pickles it as it is: token lists cross as
        lists, not rebuilt element by element."""
        request, episode = job.valid.request, job.valid.episode
        clock = self._clocks[job.id] = EpisodeClock(self.cfg.episode.timeout_s)
        try:
            policy = request.policy.with_key() if request.policy is not None else None
            result = await self.runner.run(episode, policy, clock=clock)
        except EpisodeFailure as e:  # the request's endpoint names a key this worker does not have
            result = episode.result(e.failure)
        except Exception as e:  # the runner classifies; this is a last guard for bugs
            result = episode.result(Failure(FailureClass.ENV_ERROR, described(e, self.runner.secrets)))
            log.warning("job %s: unexpected error, classified env_error: %s\n%s", job.id, result.failure.message, frames(e))
        finally:
            self._clocks.pop(job.id, None)
        return job.trajectory(result, worker=self.worker_id)

    async def pause(self, grace_s: float = PAUSE_GRACE_S) -> None:
        """Hold this worker's policy calls not yet sent; return once the one it sent last has had
        `grace_s` to reach the engine (rollout/core/weights.py)."""
        self.runner.weights.pause()
        await self.runner.weights.settle(grace_s)

    async def resume(self) -> None:
        """Let this worker's held and new policy calls go."""
        self.runner.weights.resume()

    async def set_weights(self, version: Optional[int], policy: Optional[Endpoint] = None) -> None:
        """The weight version served from now on, and the policy endpoint every policy call sent
        from now on goes to (None keeps the one in force). Raises InvalidInput when the
        endpoint's key variable is not set here."""
        named = None
        if policy is not None and policy != self._policy:  # a new endpoint: its key read here, once
            named, self._policy = policy.with_key(), policy
        self.runner.weights.set(version, named)

    async def active_s(self, jobs: list[int]) -> dict[int, float]:
        """Seconds each of these running jobs has run, waits for caps excluded (absent: not running)."""
        return {job: self._clocks[job].active_s for job in jobs if job in self._clocks}

    async def key_problem(self, variables: list[str]) -> Optional[str]:
        """Why this worker could not read a key its episodes need (the config's key sources and
        the variables `Endpoint.api_key_env` names), one line naming the file or variable, never
        a key; None: it can read them all."""
        from rollout.core.config.keys import check_key_sources, key_from_variable

        try:
            check_key_sources(self.cfg)
            for name in variables:
                key_from_variable(name, field="Endpoint.api_key_env", where="a worker's process (set it on every node)")
        except InvalidInput as e:
            return f"{e.failure.message} (worker {self.worker_id}, on {socket.gethostname()})"
        return None

    async def close(self) -> None:
        await self.runner.close()


def start_workers(count: int, cfg: RolloutConfig, *, slots: int, cpus: float, first_id: int = 0) -> list:
    """Create `count` worker actors, each with `slots` episodes in flight."""
    import ray

    actor = ray.remote(RolloutWorker)
    return [
        actor.options(max_concurrency=slots + 4, num_cpus=cpus, runtime_env={"env_vars": child_env(WORKER_ENV)}).remote(
            cfg, first_id + i, slots
        )
        for i in range(count)
    ]
