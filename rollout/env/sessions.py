"""Environment slots: a bounded pool of reusable `EnvSession`s, one per episode in flight.

`SessionPool(factory, size)` hands out sessions with `async with pool.slot() as session`,
creating them lazily (at most `size`; None: no bound) and reusing them across episodes; an
episode holds its session alone until it ends. A session whose episode failed in the
environment (or timed out) is discarded (`BrokenSession`): closed and replaced, never reused.

The pool is safe across threads and event loops: its state is guarded by a thread lock and a
waiter is woken on its own loop, so one pool can serve episodes of several loops in turn
(the AReaL workflow's subprocess mode runs each episode in a fresh loop and keeps its aenv
instances across them). The sessions themselves must then not be bound to a loop.
`close()` closes them all.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Optional

from rollout.env.protocol import EnvSession

log = logging.getLogger(__name__)


class BrokenSession(Exception):
    """Raised inside `slot()` to have the session closed instead of reused."""


def _wake(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


class SessionPool:
    def __init__(self, factory: Callable[[], Awaitable[EnvSession]], size: Optional[int]):
        self._factory = factory
        self._size = size
        self._lock = threading.Lock()
        self._idle: list[EnvSession] = []
        self._all: list[EnvSession] = []
        self._opening = 0  # sessions being created
        self._waiters: collections.deque[asyncio.Future] = collections.deque()

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
            self._release(session)

    async def _acquire(self) -> EnvSession:
        while True:
            with self._lock:
                if self._idle:
                    return self._idle.pop()
                if self._size is None or len(self._all) + self._opening < self._size:
                    self._opening += 1
                    waiter = None
                else:
                    waiter = asyncio.get_running_loop().create_future()
                    self._waiters.append(waiter)
            if waiter is None:
                return await self._create()
            try:
                await waiter
            except BaseException:
                with self._lock:
                    if waiter in self._waiters:
                        self._waiters.remove(waiter)
                    elif waiter.done() and not waiter.cancelled():
                        self._wake_one()  # it was woken for a free place it will not take: pass it on
                raise

    async def _create(self) -> EnvSession:
        try:
            session = await self._factory()
        except BaseException:
            with self._lock:
                self._opening -= 1
                self._wake_one()
            raise
        with self._lock:
            self._opening -= 1
            self._all.append(session)
        return session

    def _wake_one(self) -> None:
        """Wake the oldest waiter whose loop still runs (call with the lock held)."""
        while self._waiters:
            waiter = self._waiters.popleft()
            loop = waiter.get_loop()
            if not waiter.done() and not loop.is_closed():
                loop.call_soon_threadsafe(_wake, waiter)
                return

    def _release(self, session: EnvSession) -> None:
        with self._lock:
            self._idle.append(session)
            self._wake_one()

    async def _discard(self, session: EnvSession) -> None:
        try:
            await _close_quietly(session)
        finally:
            with self._lock:
                if session in self._all:
                    self._all.remove(session)
                self._wake_one()

    async def close(self) -> None:
        """Close every session (idle or not)."""
        with self._lock:
            sessions, self._all, self._idle = list(self._all), [], []
        for session in sessions:
            await _close_quietly(session)


async def _close_quietly(session: EnvSession) -> None:
    try:
        await session.close()
    except Exception:
        log.warning("closing an environment session failed", exc_info=True)
