"""Many episodes of one config in one event loop, over long-lived clients and reused sessions.

`EpisodeRunner(cfg, slots)` is the engine of every way episodes are run: a Ray sweep worker,
the rollout pool's actors and the AReaL workflow. It computes the config's secrets once,
opens the user-simulator client once and an agent client per policy endpoint (lazily, in the
loop that uses them; a caller may name the policy endpoint per episode, as AReaL and the
rollout pool do: one client per `(base_url, http_client)`, the episode's API key sent with its
own requests), and runs episodes on environment sessions from a pool of `slots`, reused
across episodes (`SessionPool`; a shared pool may be passed in, which the runner then does not
close). Episodes never raise for their own failures: they come back classified.

`weights` is the policy's weight state as this runner's episodes see it (rollout/core/weights.py):
a trainer pauses it while it swaps the engine's weights, names the new version, and may name a
new policy endpoint, which every policy call sent from then on goes to (running episodes
included: rollout/agent/policy_route.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

from rollout.agent.episode import ValidEpisode, run_episode
from rollout.agent.policy_route import PolicyRoute
from rollout.core.clients import ChatClient, EpisodeClients, make_client, resolve_model, user_sim_configured
from rollout.core.clock import EpisodeClock
from rollout.core.config import RolloutConfig
from rollout.core.failures import EpisodeFailure, FailureClass
from rollout.core.results import EpisodeResult
from rollout.core.tokenin.engines import route
from rollout.core.weights import PolicyWeights
from rollout.env.backends import session_factory
from rollout.env.sessions import BrokenSession, SessionPool
from rollout.env.task_sets import register_task_sets

# After these failures the session's state is unknown (a dead server, a cut-off step).
DISCARD_SESSION_ON = {FailureClass.ENV_ERROR, FailureClass.TIMEOUT}


@dataclass(frozen=True)
class PolicyEndpoint:
    """The policy endpoint of one episode, when the caller names it (AReaL and the rollout pool:
    per request). Unset fields fall back to the config's `llm` section; `http_client` is an
    `httpx.AsyncClient` to send the requests with (the caller's, never closed here); `headers`
    and `extra_body` go with every request of the episode (`extra_body` last: per-request
    sampling such as temperature, top_p, max_tokens, stop)."""

    base_url: Optional[str] = None
    api_key: Optional[str] = None
    http_client: Any = None
    model: Optional[str] = None
    headers: Mapping[str, str] = field(default_factory=dict)
    extra_body: Mapping[str, Any] = field(default_factory=dict)


class EpisodeRunner:
    """Runs episodes of one config; call `close()` (or `async with`) when done."""

    def __init__(self, cfg: RolloutConfig, slots: Optional[int] = 64, *, sessions: Optional[SessionPool] = None):
        self.cfg = cfg
        self.slots = slots
        self.secrets = cfg.secrets()  # read once: key files and variables
        self._shared_sessions = sessions
        self._pool: Optional[SessionPool] = sessions
        self._user: Optional[tuple[Optional[ChatClient], Optional[str]]] = None
        self._agents: dict[tuple, tuple[ChatClient, str]] = {}
        self._owned: list[ChatClient] = []
        self._lock: Optional[asyncio.Lock] = None
        self.weights = PolicyWeights()  # the policy's weight state, shared by this runner's episodes

    async def endpoints(self, policy: Optional[PolicyEndpoint] = None) -> EpisodeClients:
        """The clients for an episode (opened on first use). Raises InvalidInput / EpisodeFailure."""
        policy = policy or PolicyEndpoint()
        self._lock = self._lock or asyncio.Lock()
        async with self._lock:
            if self._user is None:
                need_user = user_sim_configured(self.cfg.user_llm) and self.cfg.env.backend == "local"
                user = (
                    make_client(self.cfg.user_llm, role="user_llm", max_concurrency=self.cfg.user_llm.max_concurrency)
                    if need_user
                    else None
                )
                if user is not None:
                    self._owned.append(user)
                model = (
                    await resolve_model(user, self.cfg.user_llm.model, role="user_llm", secrets=self.secrets) if user else None
                )
                self._user = (user, model)
            base_url = policy.base_url or self.cfg.llm.base_url or ""
            if base_url and self.cfg.llm.capture == "token_in":
                base_url = route(self.cfg.llm.engine, base_url)[0]  # the token route's base (SGLang: the root)
            key = (base_url, id(policy.http_client) if policy.http_client is not None else 0, policy.model)
            if key not in self._agents:
                # the client's own key is the config's: an episode's key goes with its requests only
                client = make_client(
                    self.cfg.llm,
                    base_url=base_url or None,
                    http_client=policy.http_client,
                    role="llm",
                    max_concurrency=self.cfg.llm.max_concurrency,
                )
                self._owned.append(client)
                model = await resolve_model(
                    client, policy.model or self.cfg.llm.model, role="llm", secrets=[*self.secrets, policy.api_key]
                )
                self._agents[key] = (client, model)
            if self._pool is None:
                register_task_sets(self.cfg.task_sets)  # the sessions load the episodes' domains by name
                self._pool = SessionPool(session_factory(self.cfg, self._user[0], self._user[1], self.secrets), self.slots)
        agent, model = self._agents[key]
        return EpisodeClients(
            agent_client=agent,
            agent_model=model,
            user_client=self._user[0],
            user_model=self._user[1],
            agent_api_key=policy.api_key,
            agent_headers=dict(policy.headers),
            agent_extra_body=dict(policy.extra_body),
        )

    async def run(
        self, episode: ValidEpisode, policy: Optional[PolicyEndpoint] = None, *, clock: Optional[EpisodeClock] = None
    ) -> EpisodeResult:
        """One checked episode (`check_episode` against this runner's config); failures (including
        unreachable endpoints) come back classified. `clock`: its timeout budget (run_episode),
        for a caller that watches how long it has run. While `weights` names a policy endpoint,
        the episode's calls go there instead of `policy`."""
        requested = time.perf_counter()
        named = self.weights.policy
        try:
            endpoints = await self.endpoints(named or policy)
        except EpisodeFailure as e:
            return episode.result(e.failure)
        route = PolicyRoute(endpoints, self.weights, self.endpoints, routed=named)
        result = None
        try:
            async with self._pool.slot() as session:
                result = await run_episode(
                    episode, self.cfg, endpoints, session, secrets=self.secrets, requested=requested, clock=clock, route=route
                )
                if result.failure is not None and result.failure.failure_class in DISCARD_SESSION_ON:
                    raise BrokenSession()
        except BrokenSession:
            pass
        except EpisodeFailure as e:  # the slot itself could not be opened (e.g. env server start)
            result = episode.result(e.failure)
        return result

    async def run_many(self, episodes: list[ValidEpisode], concurrency: Optional[int] = None) -> list[EpisodeResult]:
        """Run `episodes` with at most `concurrency` (default: `slots`) in flight; results in order."""
        sem = asyncio.Semaphore(concurrency or self.slots or len(episodes) or 1)

        async def one(episode: ValidEpisode) -> EpisodeResult:
            async with sem:
                return await self.run(episode)

        return list(await asyncio.gather(*[one(e) for e in episodes]))

    async def close(self) -> None:
        if self._pool is not None and self._pool is not self._shared_sessions:
            await self._pool.close()
        for client in self._owned:
            await client.close()
        self._owned, self._agents, self._user, self._pool = [], {}, None, self._shared_sessions

    async def __aenter__(self) -> EpisodeRunner:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
