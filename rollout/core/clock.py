"""An episode's wall-clock budget, which does not run while the episode waits for an endpoint cap.

`llm.max_concurrency` / `user_llm.max_concurrency` cap the requests in flight; an episode whose
request queues for the cap is not slow, and its clock must not run then: a healthy endpoint
never produces a `timeout` failure. `EpisodeClock.limit()` is the episode's timeout scope
(`asyncio.timeout(budget)`); inside it, `current()` is the clock, and the HTTP client wraps a
wait for a cap in `current().waiting()`, which stops the deadline for the wait and moves it by
the time waited. `active_s` is the time the episode has run, waits excluded (what a sweep's
driver compares with the budget before it cancels an episode from outside).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
from collections.abc import AsyncIterator, Iterator
from typing import Optional

_CURRENT: contextvars.ContextVar[Optional[EpisodeClock]] = contextvars.ContextVar("rollout_episode_clock", default=None)


def current() -> Optional[EpisodeClock]:
    """The clock of the episode running in this task (None outside an episode)."""
    return _CURRENT.get()


class EpisodeClock:
    def __init__(self, budget_s: float):
        self.budget_s = budget_s
        self._started: Optional[float] = None
        self._waited = 0.0
        self._wait_started: Optional[float] = None
        self._timeout: Optional[asyncio.Timeout] = None

    @contextlib.asynccontextmanager
    async def limit(self) -> AsyncIterator[EpisodeClock]:
        """The episode's timeout scope: TimeoutError when `budget_s` of active time has passed."""
        self._started = time.monotonic()
        token = _CURRENT.set(self)
        try:
            async with asyncio.timeout(self.budget_s) as timeout:
                self._timeout = timeout
                yield self
        finally:
            self._timeout = None
            _CURRENT.reset(token)

    @contextlib.contextmanager
    def waiting(self) -> Iterator[None]:
        """A wait for a cap: the deadline stands still while it lasts (nested waits count once)."""
        if self._wait_started is not None or self._timeout is None or self._timeout.expired():
            yield
            return
        loop = asyncio.get_running_loop()
        when = self._timeout.when()
        left = None if when is None else when - loop.time()
        self._wait_started = time.monotonic()
        self._timeout.reschedule(None)
        try:
            yield
        finally:
            self._waited += time.monotonic() - self._wait_started
            self._wait_started = None
            if self._timeout is not None and left is not None:
                self._timeout.reschedule(loop.time() + left)

    @property
    def active_s(self) -> float:
        """Seconds the episode has run, waits for caps excluded (0 before it started)."""
        if self._started is None:
            return 0.0
        waiting = time.monotonic() - self._wait_started if self._wait_started is not None else 0.0
        return time.monotonic() - self._started - self._waited - waiting
