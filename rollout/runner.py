"""Many episodes in one event loop over long-lived clients: the engine inside a Ray worker.

`EpisodeRunner(cfg)` opens the agent and user-simulator clients once (lazily, in the loop
that uses them) and runs any number of episodes concurrently through the episode core.
"""

from __future__ import annotations

import asyncio
from typing import Optional

from rollout.clients import Endpoints, open_endpoints, user_sim_configured
from rollout.config import RolloutConfig
from rollout.episode import EpisodeSpec, run_episode
from rollout.failures import EpisodeFailure
from rollout.results import EpisodeResult


class EpisodeRunner:
    """Runs episodes of one config; call `close()` (or `async with`) when done."""

    def __init__(self, cfg: RolloutConfig):
        self.cfg = cfg
        self._endpoints: Optional[Endpoints] = None
        self._owned: list = []
        self._lock: Optional[asyncio.Lock] = None

    async def endpoints(self) -> Endpoints:
        if self._endpoints is None:
            self._lock = self._lock or asyncio.Lock()
            async with self._lock:
                if self._endpoints is None:
                    need_user = user_sim_configured(self.cfg.user_llm)
                    self._endpoints, self._owned = await open_endpoints(self.cfg, need_user=need_user)
        return self._endpoints

    async def run(self, spec: EpisodeSpec) -> EpisodeResult:
        """One episode; failures (including unreachable endpoints) come back classified."""
        try:
            endpoints = await self.endpoints()
        except EpisodeFailure as e:
            return EpisodeResult(domain=spec.domain, task_id=str(spec.task_id), sample=spec.sample, seed=spec.seed,
                                 failure=e.failure)
        return await run_episode(spec, self.cfg, endpoints)

    async def close(self) -> None:
        for client in self._owned:
            await client.close()
        self._owned, self._endpoints = [], None

    async def __aenter__(self) -> "EpisodeRunner":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
