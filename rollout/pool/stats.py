"""Live counters of a rollout pool, and of the token capture (safe from any thread).

`snapshot()` gives: requests submitted and ended, scored, failed by class, retries by class,
episodes per second since the first request, mean reward of the scored, the policy calls the
engine aborted (a weight swap) that were continued from their tokens (`continued_calls`, token-in)
or sent again from scratch (`restarted_calls`, chat), what is in flight and queued, workers ready
and slots lost, groups dropped and regenerated for the staleness bound, and for token capture
the policy calls captured, the
boundaries between stitched calls that were clean or split, and the trajectories that are one
clean sequence, overall and per domain. Only counts are kept: memory does not grow with the
number of episodes.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any, Optional

from rollout.core.failures import Failure


class _Counts:
    def __init__(self):
        self.ended = self.scored = 0
        self.reward = 0.0
        self.failed: Counter = Counter()
        self.calls = self.captured = self.clean = self.split = 0
        self.with_tokens = self.clean_trajectories = 0
        self.continued = self.restarted = 0

    def add(self, t) -> None:
        self.ended += 1
        if t.ok:
            self.scored += 1
            self.reward += float(t.reward)
        else:
            self.failed[t.failure.failure_class.value] += 1
        agent = t.result.usage.get("agent") or {}
        self.continued += int(agent.get("continued") or 0)
        self.restarted += int(agent.get("restarted") or 0)
        turns = t.result.turns
        if turns:
            self.calls += len(turns)
            self.captured += sum(x is not None for x in turns)
            self.clean += t.drift.clean
            self.split += t.drift.split
            self.with_tokens += 1
            self.clean_trajectories += t.clean

    def view(self) -> dict[str, Any]:
        boundaries = self.clean + self.split
        return {
            "ended": self.ended,
            "scored": self.scored,
            "failed": dict(sorted(self.failed.items())),
            "mean_reward": self.reward / self.scored if self.scored else None,
            "continued_calls": self.continued,
            "restarted_calls": self.restarted,
            "capture": {
                "calls": self.calls,
                "captured": self.captured,
                "boundaries_clean": self.clean,
                "boundaries_split": self.split,
                "clean_rate": self.clean / boundaries if boundaries else None,
                "trajectories": self.with_tokens,
                "trajectories_clean": self.clean_trajectories,
            },
        }


class PoolStats:
    def __init__(self):
        self._lock = threading.Lock()
        self._started: Optional[float] = None
        self._submitted = 0
        self._retries: Counter = Counter()
        self._stale_groups = 0
        self._all = _Counts()
        self._domains: dict[str, _Counts] = {}

    def submitted(self, n: int) -> None:
        with self._lock:
            self._submitted += n
            self._started = self._started or time.monotonic()

    def retried(self, failure: Failure) -> None:
        with self._lock:
            self._retries[failure.failure_class.value] += 1

    def stale_group(self) -> None:
        """A finished group was older than its call's staleness bound: dropped and regenerated."""
        with self._lock:
            self._stale_groups += 1

    def ended(self, trajectory) -> None:
        with self._lock:
            self._all.add(trajectory)
            self._domains.setdefault(trajectory.domain, _Counts()).add(trajectory)

    def snapshot(self, dispatcher=None) -> dict[str, Any]:
        with self._lock:
            elapsed = time.monotonic() - self._started if self._started else 0.0
            out = {
                "submitted": self._submitted,
                **self._all.view(),
                "retries": dict(sorted(self._retries.items())),
                "stale_groups": self._stale_groups,
                "episodes_per_s": self._all.ended / elapsed if elapsed > 0 else None,
                "domains": {d: c.view() for d, c in sorted(self._domains.items())},
            }
        if dispatcher is not None:
            out.update(
                in_flight=dispatcher.in_flight,
                queued=dispatcher.queued,
                workers_ready=len(dispatcher.ready_workers),
                slots_lost=dispatcher.lost_slots,
                workers_replaced=dispatcher.replaced_workers,
            )
        return out
