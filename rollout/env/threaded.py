"""Environment sessions that outlive the event loops they serve.

Some sessions hold loop-bound state (an aenv cluster instance keeps the SDK's httpx client of
the loop it was created in). A caller whose episodes each run in a fresh event loop (AReaL's
subprocess mode calls `asyncio.run` per episode) can still keep such sessions across
episodes: `LoopThread` runs one event loop in a daemon thread for the life of the process, and
`ThreadedSession` runs every call of a session there, whichever loop awaits it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Optional

from rollout.env.protocol import EnvSession, Opening, RawToolCall, ResetRequest, Scored, StepOutcome


class LoopThread:
    """An event loop running in a daemon thread (started on first use)."""

    def __init__(self, name: str = "rollout-sessions"):
        self._name = name
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._lock = threading.Lock()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                self._loop = asyncio.new_event_loop()
                threading.Thread(target=self._loop.run_forever, name=self._name, daemon=True).start()
            return self._loop

    async def run(self, coro: Awaitable[Any]) -> Any:
        """Run `coro` on the thread's loop; the caller's loop awaits its result (cancelling the
        caller cancels it there too)."""
        loop = self.loop
        try:
            if asyncio.get_running_loop() is loop:
                return await coro
        except RuntimeError:
            pass
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))

    def run_sync(self, coro: Awaitable[Any], timeout_s: Optional[float] = None) -> Any:
        """Run `coro` on the thread's loop from a thread with no running loop (e.g. at exit)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)


class ThreadedSession:
    """An EnvSession whose calls all run on a `LoopThread` (see module doc)."""

    def __init__(self, thread: LoopThread, session: EnvSession):
        self._thread = thread
        self._session = session

    @classmethod
    async def open(cls, thread: LoopThread, factory: Callable[[], Awaitable[EnvSession]]) -> ThreadedSession:
        return cls(thread, await thread.run(factory()))

    async def reset(self, request: ResetRequest) -> Opening:
        return await self._thread.run(self._session.reset(request))

    async def agent_step(self, text: Optional[str], tool_calls: list[RawToolCall]) -> StepOutcome:
        return await self._thread.run(self._session.agent_step(text, tool_calls))

    async def end(self, reason: str) -> None:
        await self._thread.run(self._session.end(reason))

    async def finish(self) -> Scored:
        return await self._thread.run(self._session.finish())

    async def close(self) -> None:
        await self._thread.run(self._session.close())
