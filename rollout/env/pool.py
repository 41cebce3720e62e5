"""Environment slots: a pool of reusable `EnvSession`s, one per episode in flight.

`SessionPool(factory, size)` hands out sessions with `async with pool.slot() as session`,
creating them lazily (at most `size`) and reusing them across episodes. A session whose
episode failed in the environment (or timed out) is closed and replaced, never reused.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from rollout.env.protocol import EnvSession


class BrokenSession(Exception):
    """Raised inside `slot()` to have the session closed instead of reused."""


class SessionPool:
    def __init__(self, factory: Callable[[], Awaitable[EnvSession]], size: int):
        self._factory = factory
        self._size = size
        self._idle: list[EnvSession] = []
        self._created = 0
        self._cond: asyncio.Condition | None = None
        self._all: list[EnvSession] = []

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[EnvSession]:
        """A free session for one episode; raise BrokenSession inside to discard it."""
        session = await self._acquire()
        try:
            yield session
        except BaseException:
            await self._discard(session)
            raise
        else:
            await self._release(session)

    async def _acquire(self) -> EnvSession:
        self._cond = self._cond or asyncio.Condition()
        async with self._cond:
            while not self._idle and self._created >= self._size:
                await self._cond.wait()
            if self._idle:
                return self._idle.pop()
            self._created += 1
        try:
            session = await self._factory()
        except BaseException:
            async with self._cond:
                self._created -= 1
                self._cond.notify()
            raise
        self._all.append(session)
        return session

    async def _release(self, session: EnvSession) -> None:
        async with self._cond:
            self._idle.append(session)
            self._cond.notify()

    async def _discard(self, session: EnvSession) -> None:
        try:
            await session.close()
        finally:
            self._all.remove(session)
            async with self._cond:
                self._created -= 1
                self._cond.notify()

    async def close(self) -> None:
        """Close every session (idle or not)."""
        sessions, self._all, self._idle = list(self._all), [], []
        for session in sessions:
            with contextlib.suppress(Exception):
                await session.close()
