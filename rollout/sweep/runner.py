"""Many episodes in one event loop over long-lived clients: the engine inside a Ray worker.

`EpisodeRunner(cfg, slots)` opens the agent and user-simulator clients once (lazily, in
the loop that uses them) and a pool of `slots` environment sessions of the configured
backend, reused across episodes, and runs episodes concurrently through the episode core.
"""

from __future__ import annotations

import asyncio
from typing import Optional

from rollout.clients import Endpoints, open_endpoints, user_sim_configured
from rollout.config import RolloutConfig
from rollout.env.backends import session_factory
from rollout.env.pool import BrokenSession, SessionPool
from rollout.episode import EpisodeSpec, run_episode
from rollout.failures import EpisodeFailure, FailureClass
from rollout.results import EpisodeResult

# After these failures the session's state is unknown (a dead server, a cut-off step).
DISCARD_SESSION_ON = {FailureClass.ENV_ERROR, FailureClass.TIMEOUT}


class EpisodeRunner:
    """Runs episodes of one config; call `close()` (or `async with`) when done."""

    def __init__(self, cfg: RolloutConfig, slots: int = 64):
        self.cfg = cfg
        self.slots = slots
        self._endpoints: Optional[Endpoints] = None
        self._pool: Optional[SessionPool] = None
        self._owned: list = []
        self._lock: Optional[asyncio.Lock] = None

    async def _open(self) -> None:
        self._lock = self._lock or asyncio.Lock()
        async with self._lock:
            if self._endpoints is None:
                need_user = user_sim_configured(self.cfg.user_llm) and self.cfg.env.backend == "local"
                self._endpoints, self._owned = await open_endpoints(self.cfg, need_user=need_user)
                self._pool = SessionPool(session_factory(self.cfg, self._endpoints), self.slots)

    async def run(self, spec: EpisodeSpec) -> EpisodeResult:
        """One episode; failures (including unreachable endpoints) come back classified."""
        try:
            await self._open()
        except EpisodeFailure as e:
            return EpisodeResult(domain=spec.domain, task_id=str(spec.task_id), sample=spec.sample, seed=spec.seed,
                                 failure=e.failure)
        result = None
        try:
            async with self._pool.slot() as session:
                result = await run_episode(spec, self.cfg, self._endpoints, session)
                if result.failure is not None and result.failure.failure_class in DISCARD_SESSION_ON:
                    raise BrokenSession()
        except BrokenSession:
            pass
        except EpisodeFailure as e:  # the slot itself could not be opened (e.g. env server start)
            result = EpisodeResult(domain=spec.domain, task_id=str(spec.task_id), sample=spec.sample, seed=spec.seed,
                                   failure=e.failure)
        return result

    async def run_many(self, specs: list[EpisodeSpec], concurrency: Optional[int] = None) -> list[EpisodeResult]:
        """Run `specs` with at most `concurrency` (default: `slots`) in flight; results in order."""
        sem = asyncio.Semaphore(concurrency or self.slots)

        async def one(spec: EpisodeSpec) -> EpisodeResult:
            async with sem:
                return await self.run(spec)

        return list(await asyncio.gather(*[one(s) for s in specs]))

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
        for client in self._owned:
            await client.close()
        self._owned, self._endpoints, self._pool = [], None, None

    async def __aenter__(self) -> EpisodeRunner:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
