"""The async twins of the rollout pool's calls (`astream`, `arun`, `astream_groups`), for a
trainer's event loop: the same calls as `stream`, `run` and `stream_groups` (rollout/pool/pool.py),
their ends handed to the loop from the pool's thread; nothing blocks the loop but starting the
pool, done in the caller's thread (starting Ray wants the main thread's signal handlers)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from typing import Any, Optional, Union

from rollout.pool.requests import RolloutRequest, ValidRequest
from rollout.trajectory import Trajectory

Requests = Iterable[Union[RolloutRequest, ValidRequest]]


class AsyncCalls:
    """Mixed into RolloutPool: uses its `check`, `start`, `_submit`, `_cancel_unfinished`,
    `_group_flow`, `_feed`, `_ended` and `_next_group`."""

    async def _astream(self, requests: Requests, ids_out: Optional[list] = None) -> AsyncIterator[tuple[int, Trajectory]]:
        requests = self.check(requests)
        loop = asyncio.get_running_loop()
        inbox: asyncio.Queue = asyncio.Queue()
        if self.dispatcher is None:  # in this thread: starting Ray wants the main thread (its signal handlers)
            self.start({r.episode.domain for r in requests})
        ids = self._submit(requests, lambda i, item: loop.call_soon_threadsafe(inbox.put_nowait, (i, item)))
        if ids_out is not None:
            ids_out += ids
        try:
            for _ in range(len(ids)):
                i, item = await inbox.get()
                if isinstance(item, BaseException):
                    raise item
                yield i, item
        finally:
            self._cancel_unfinished(ids)

    async def astream(self, requests: Requests) -> AsyncIterator[Trajectory]:
        """`stream` for an event loop (nothing blocks the loop)."""
        async with contextlib.aclosing(self._astream(requests)) as items:
            async for _, trajectory in items:
                yield trajectory

    async def arun(self, requests: Requests) -> list[Trajectory]:
        requests = list(requests)
        out: list[Optional[Trajectory]] = [None] * len(requests)
        async with contextlib.aclosing(self._astream(requests)) as items:
            async for i, trajectory in items:
                out[i] = trajectory
        return out

    async def astream_groups(
        self,
        requests: Requests,
        *,
        extra_samples: int = 0,
        ahead: Optional[int] = None,
        max_staleness: Optional[int] = None,
        groups_per_step: Optional[int] = None,
    ) -> AsyncIterator[list[Trajectory]]:
        flow = self._group_flow(requests, extra_samples, ahead, max_staleness, groups_per_step)
        loop = asyncio.get_running_loop()
        inbox: asyncio.Queue = asyncio.Queue()
        ids: list[int] = []

        def deliver(i: int, item: Any) -> None:
            loop.call_soon_threadsafe(inbox.put_nowait, (i, item))

        if self.dispatcher is None:  # in this thread: starting Ray wants the main thread (its signal handlers)
            self.start()
        try:
            self._feed(flow, ids, deliver)
            received = 0
            while not flow.done or received < len(ids):  # then the call's cancelled stragglers' ends
                flow.check_waiting()
                received += 1
                self._ended(flow, ids, *(await inbox.get()))
                while (group := self._next_group(flow)) is not None:
                    yield group
                    self._feed(flow, ids, deliver)
                self._feed(flow, ids, deliver)  # groups run again
        finally:
            self._cancel_unfinished(ids)
