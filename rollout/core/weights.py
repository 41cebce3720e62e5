"""The policy's weight state as one process sees it: the version being served, whether policy
calls are held, and an endpoint that replaces the episodes' own.

A trainer that swaps an engine's weights first holds new policy calls (`pause`), swaps them
(the engine aborts the generations in flight), names the new version (`set`) and lets the calls
go again (`resume`). Every policy call awaits `wait_open()` just before it is sent, so while the
state is paused no policy call leaves the process; calls already sent run on, and the engine
answers the ones it aborts with the tokens generated so far. The user simulator is another
model and is never held.

One `PolicyWeights` belongs to one `EpisodeRunner` (rollout/agent/runner.py), shared by the
episodes it runs; it is never global. `pause`, `resume` and `set` may be called from any
thread; `wait_open` from the event loop of the episodes. Time spent held does not count
against an episode's `episode.timeout_s` (rollout/core/clock.py).

A completion token's version (`token_version`): the version the engine reported for the answer
when it reads as an integer (SGLang's `meta_info.weight_version`), else the version that was
current when the request was sent (`PolicyWeights.version`: under pause / swap / set / resume
every token of an answer comes from the weights current when it was sent, because a swap
aborts the generations in flight), else the request's own `weight_version` tag.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Optional

from rollout.core import clock

MAX_RESENDS = 16  # aborted answers one policy call may be continued or restarted after


class PolicyWeights:
    """See the module doc. `policy`: the endpoint every policy call sent from now on goes to
    (the runner's `PolicyEndpoint`; None: each episode's own)."""

    def __init__(self, version: Optional[int] = None, policy: Any = None):
        self.version: Optional[int] = version
        self.policy: Any = policy
        self._paused = False
        self._lock = threading.Lock()
        self._held: list[asyncio.Future] = []

    @property
    def paused(self) -> bool:
        return self._paused

    def pause(self) -> None:
        """Hold every policy call not yet sent until `resume`."""
        with self._lock:
            self._paused = True

    def resume(self) -> None:
        """Let held and new policy calls go."""
        with self._lock:
            self._paused = False
            held, self._held = self._held, []
        for future in held:
            future.get_loop().call_soon_threadsafe(_release, future)

    def set(self, version: Optional[int], policy: Any = None) -> None:
        """The version served from now on; `policy`, when given, the endpoint every policy call
        sent from now on goes to (None keeps the one in force)."""
        with self._lock:
            self.version = version
            if policy is not None:
                self.policy = policy

    async def wait_open(self) -> None:
        """Return when policy calls may be sent (at once when not paused). The episode's clock
        stands still while it waits."""
        with self._lock:
            if not self._paused:
                return
            future = asyncio.get_running_loop().create_future()
            self._held.append(future)
        episode_clock = clock.current()
        try:
            if episode_clock is None:
                await future
            else:
                with episode_clock.waiting():
                    await future
        finally:
            with self._lock:
                if future in self._held:
                    self._held.remove(future)


def _release(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


def reported_version(value: Any) -> Optional[int]:
    """The engine's reported weight version as an integer, or None when it does not read as one
    (SGLang reports a string, "default" unless the trainer named a version)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def token_version(reported: Any, sent: Optional[int], requested: Optional[int]) -> Optional[int]:
    """The weight version of an answer's tokens (module doc): the engine's, else the one current
    when the request was sent, else the request's tag (None: none is known)."""
    engine = reported_version(reported)
    if engine is not None:
        return engine
    return sent if sent is not None else requested
