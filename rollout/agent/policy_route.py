"""Where and when an episode's next policy call goes: its endpoint, held and re-routed by the
runner's weight state (rollout/core/weights.py).

`PolicyRoute.next()` is awaited before each policy request is built: it waits while the weights
are being swapped, and when the trainer has named a new policy endpoint since the last call it
opens that endpoint's clients (through the runner) and the call goes there; running episodes
follow it from their next request on, continuations of an aborted call included. `gate` is
handed to the HTTP client, which awaits it just before the request leaves (after any wait for
the endpoint's cap), so no policy request is sent while the weights are paused; it notes the
weight version current at that moment (`sent_version`). Without a weight state (an episode run
on its own) the route is the episode's endpoint and never waits.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Optional

from rollout.core.clients import ChatClient, EpisodeClients
from rollout.core.weights import PolicyWeights


class PolicyRoute:
    """One episode's policy endpoint (module doc). `open_endpoint(policy)` gives the clients of
    a policy endpoint the weight state names (the runner's `endpoints`); `routed` is the endpoint
    `endpoints` were opened for (None: the episode's own). `secrets` is the list the episode's
    messages are redacted with: the key of an endpoint it moves to is added to it."""

    def __init__(
        self,
        endpoints: EpisodeClients,
        weights: Optional[PolicyWeights] = None,
        open_endpoint: Optional[Callable[[Any], Awaitable[EpisodeClients]]] = None,
        routed: Any = None,
    ):
        self.endpoints = endpoints
        self.weights = weights
        self._open_endpoint = open_endpoint
        self._routed = routed
        self.secrets: list = []
        self.sent_version: Optional[int] = None

    async def next(self) -> EpisodeClients:
        """The endpoint of the next policy call, once calls may go (module doc)."""
        if self.weights is None:
            return self.endpoints
        while True:
            await self.weights.wait_open()
            named = self.weights.policy
            if named is None or named is self._routed or self._open_endpoint is None:
                return self.endpoints
            self.endpoints = await self._open_endpoint(named)
            self._routed = named
            if self.endpoints.agent_api_key:
                self.secrets.append(self.endpoints.agent_api_key)

    async def gate(self) -> None:
        """Awaited by the HTTP client just before a policy request leaves (module doc)."""
        if self.weights is None:
            self.sent_version = None
            return
        self.sent_version = await self.weights.open_to_send()


@dataclass(frozen=True)
class Send:
    """Where one policy request goes and what goes with it: the endpoint's client and model, its
    extra request fields (sent last: per-request sampling, server and capture options), the
    request's headers and the API key to send it with."""

    client: ChatClient
    model: str
    extra: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    api_key: Optional[str] = None
