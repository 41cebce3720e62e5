"""The Ray face's driver: fans episodes out to worker actors, gathers, retries, survives failures.

`SweepDriver.run(specs)` keeps every worker's slots full (direct submission plus a
`ray.wait` loop — never ActorPool, which gives an async actor one task at a time), and for
each finished episode either writes its record to the store at once or, for a retryable
infrastructure failure with attempts left, re-queues it after an exponential backoff. A
dead worker (`RayActorError`) is replaced and its in-flight episodes re-dispatched.
An episode stuck past its timeout plus a grace period is cancelled from the driver. Ctrl-C
(or SIGTERM) cancels in-flight episodes, writes nothing for them, and raises
`KeyboardInterrupt` after the workers are gone; everything finished is already on disk.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Optional

from rollout.config import RolloutConfig
from rollout.episode import EpisodeSpec
from rollout.failures import FailureClass
from rollout.sweep.config import RetryConfig
from rollout.sweep.plan import key_of
from rollout.sweep.progress import Progress
from rollout.sweep.records import EpisodeStore
from rollout.sweep.workers import start_workers

CANCEL_GRACE_S = 30.0  # the actor's own episode timeout should fire first


@dataclass
class _Task:
    spec: EpisodeSpec
    attempts: int = 0
    earlier_failures: list[dict] = field(default_factory=list)


@dataclass
class _Flight:
    task: _Task
    worker: int
    actor: object
    started: float
    cancelled: bool = False


class SweepDriver:
    """Runs a list of episodes on Ray workers and writes each finished one to `store`."""

    def __init__(self, episode_cfg: RolloutConfig, store: EpisodeStore, *, num_workers: int, slots_per_worker: int,
                 cpus_per_worker: float = 1.0, retry: RetryConfig = RetryConfig(), progress: Optional[Progress] = None,
                 on_record: Optional[Callable[[SweepDriver, dict], None]] = None, warmup_domains: list[str] = ()):
        self.cfg = episode_cfg
        self.store = store
        self.num_workers = num_workers
        self.slots = slots_per_worker
        self.cpus = cpus_per_worker
        self.retry = retry
        self.progress = progress
        self.on_record = on_record
        self.warmup_domains = list(warmup_domains)
        self.workers: list = []
        self.replaced_workers = 0
        self.written = 0
        self.started = self.finished = None
        self._next_id = itertools.count()

    # ---- public ------------------------------------------------------------------------
    def run(self, specs: list[EpisodeSpec], *, keep_workers: bool = False) -> None:
        """Run every episode; with keep_workers, the warm workers serve the next run too."""
        import ray

        ready: list[_Task] = [_Task(s) for s in specs]
        ready.reverse()  # pop() from the end keeps the plan's order
        delayed: list[tuple[float, int, _Task]] = []  # (not_before, tie, task)
        inflight: dict = {}
        load = [0] * self.num_workers
        if not self.workers:
            self.workers = [self._new_worker(i) for i in range(self.num_workers)]
            self._await_warm(self.workers)
        self.started = time.monotonic()  # episodes only: worker start-up is excluded
        if self.progress:
            self.progress.started = self.started
        try:
            while ready or delayed or inflight:
                now = time.monotonic()
                while delayed and delayed[0][0] <= now:
                    ready.append(heapq.heappop(delayed)[2])
                self._dispatch(ready, inflight, load)
                if not inflight:
                    time.sleep(max(0.0, min(1.0, delayed[0][0] - now)) if delayed else 0.01)
                    continue
                done, _ = ray.wait(list(inflight), num_returns=1, timeout=0.25)
                for ref in done:
                    flight = inflight.pop(ref)
                    load[flight.worker] -= 1
                    record = self._collect(ref, flight)
                    self._finish(flight.task, record, ready, delayed)
                self._cancel_stuck(inflight)
        except KeyboardInterrupt:
            for ref in inflight:
                ray.cancel(ref)
            raise
        except BaseException:
            keep_workers = False
            raise
        finally:
            self.finished = time.monotonic()
            if not keep_workers:
                self.stop_workers()

    # ---- internals ---------------------------------------------------------------------
    def _new_worker(self, index: int):
        [actor] = start_workers(1, self.cfg, slots=self.slots, cpus=self.cpus, first_id=next(self._next_id))
        return actor

    def _await_warm(self, actors: list) -> None:
        """Wait (bounded) until the workers have imported tau2 and loaded the domains."""
        import ray

        try:
            ray.get([a.warmup.remote(self.warmup_domains) for a in actors], timeout=300)
        except Exception:
            pass  # a worker that cannot warm up fails its episodes, which are then retried

    def _dispatch(self, ready: list[_Task], inflight: dict, load: list[int]) -> None:
        while ready:
            worker = min(range(self.num_workers), key=lambda i: load[i])
            if load[worker] >= self.slots:
                return
            task = ready.pop()
            actor = self.workers[worker]
            ref = actor.run.remote(dataclasses.asdict(task.spec))
            inflight[ref] = _Flight(task, worker, actor, time.monotonic())
            load[worker] += 1

    def _collect(self, ref, flight: _Flight) -> dict:
        """The worker's result dict, or a synthesized failure if the worker died or was cancelled."""
        import ray
        from ray.exceptions import RayActorError, TaskCancelledError

        try:
            return ray.get(ref)
        except RayActorError as e:
            if self.workers[flight.worker] is flight.actor:  # replace it once, not once per lost episode
                self.workers[flight.worker] = self._new_worker(flight.worker)
                self.workers[flight.worker].warmup.remote(self.warmup_domains)
                self.replaced_workers += 1
            return _failure_record(flight.task.spec, FailureClass.WORKER_DIED, f"worker died: {type(e).__name__}")
        except TaskCancelledError:
            return _failure_record(flight.task.spec, FailureClass.TIMEOUT,
                                   f"cancelled by the driver after episode.timeout_s + {CANCEL_GRACE_S:.0f}s")
        except Exception as e:  # RayTaskError from a worker bug
            return _failure_record(flight.task.spec, FailureClass.ENV_ERROR, f"{type(e).__name__}: {str(e)[:500]}")

    def _finish(self, task: _Task, record: dict, ready: list[_Task], delayed: list) -> None:
        task.attempts += 1
        failure = record.get("failure")
        if failure is not None:
            retryable = FailureClass(failure["class"]).retryable
            if retryable and task.attempts < self.retry.max_attempts:
                task.earlier_failures.append(failure)
                heapq.heappush(delayed, (time.monotonic() + self.retry.delay(task.attempts), id(task), task))
                if self.progress:
                    self.progress.retry()
                return
        domain, task_id, sample = key_of(task.spec)
        out = {"key": {"domain": domain, "task_id": task_id, "sample": sample},
               "status": "failed" if failure else "ok", "attempts": task.attempts,
               "earlier_failures": task.earlier_failures, **record}
        out["seed"] = task.spec.seed
        self.store.append(out)
        self.written += 1
        if self.progress:
            self.progress.record(out)
        if self.on_record:
            self.on_record(self, out)

    def _cancel_stuck(self, inflight: dict) -> None:
        import ray

        limit = self.cfg.episode.timeout_s + CANCEL_GRACE_S
        now = time.monotonic()
        for ref, flight in inflight.items():
            if not flight.cancelled and now - flight.started > limit:
                ray.cancel(ref)
                flight.cancelled = True

    def stop_workers(self) -> None:
        """Let each worker release its sessions (cluster instances, servers), then kill it."""
        import ray

        try:
            ray.get([actor.close.remote() for actor in self.workers], timeout=60)
        except Exception:
            pass
        for actor in self.workers:
            try:
                ray.kill(actor)
            except Exception:
                pass
        self.workers = []


def _failure_record(spec: EpisodeSpec, cls: FailureClass, message: str) -> dict:
    return {"domain": spec.domain, "task_id": str(spec.task_id), "sample": spec.sample, "seed": spec.seed,
            "reward": None, "failure": {"class": cls.value, "message": message}, "messages": [], "durations": {}}
