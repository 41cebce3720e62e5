"""The sweep driver: fans episodes out to worker actors, gathers, retries, always finishes.

`SweepDriver.run(specs)` keeps every ready worker's slots full (direct submission plus a
`ray.wait` loop — never ActorPool, which gives an async actor one task at a time), and for
each finished episode either writes its `SweepRecord` to the store at once or, for a
retryable infrastructure failure with attempts left, re-queues it after an exponential
backoff. Guarantees:

- Every episode handed to `run` is written exactly once (scored or finally failed), or
  `run` raises (`NoWorkersLeft`, `KeyboardInterrupt`) with the finished ones on disk.
- A worker counts only once it is placed and warm: episodes are dispatched to ready
  workers only, so an actor that cannot be placed never holds an episode.
- A dead worker (`RayActorError`: killed, crashed, its node lost) has its in-flight
  episodes re-queued (as a `worker_died` attempt) and is replaced in the same slot. A
  replacement that cannot fit in the cluster's CPUs now (they went with a lost node) is
  not started, and a worker that is not placed, or not warm, within
  `worker_start_timeout_s` is killed: either way its slot is given up and the sweep
  carries on with the workers it has. Only when no worker is ready or starting does `run` raise `NoWorkersLeft`.
- An episode stuck past its timeout plus a grace period is cancelled from the driver.
- Ctrl-C / SIGTERM (`KeyboardInterrupt`): in-flight episodes are cancelled and nothing is
  written for them; the workers are stopped; the interrupt propagates.

Endpoint caps (`llm.max_concurrency`, `user_llm.max_concurrency`) hold across the sweep:
each worker slot gets an exact share (see workers.worker_config), and there are never
more workers than the smallest cap.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Optional

from rollout.agent.episode import EpisodeSpec
from rollout.config import RolloutConfig
from rollout.failures import Failure, FailureClass
from rollout.results import EpisodeResult
from rollout.sweep.config import RetryConfig
from rollout.sweep.plan import key_of
from rollout.sweep.progress import Progress
from rollout.sweep.records import EpisodeStore, SweepRecord
from rollout.sweep.workers import capped_worker_count, start_workers, worker_config

CANCEL_GRACE_S = 30.0  # the actor's own episode timeout should fire first
MAX_REPLACEMENTS_PER_SLOT = 3  # then the slot is given up
STOP_TIMEOUT_S = 30.0


class NoWorkersLeft(RuntimeError):
    """No worker can run: every slot was lost and could not be replaced."""


@dataclass
class _Task:
    spec: EpisodeSpec
    attempts: int = 0
    earlier_failures: list[Failure] = field(default_factory=list)


@dataclass
class _Worker:
    """One actor in slot `index`: starting (until it answers a ping: placed and constructed),
    warming (until its warm-up returns), ready, or lost. Each of the first two phases is
    bounded by `worker_start_timeout_s`."""

    index: int
    actor: object
    ref: object  # the ping, then the warm-up
    deadline: float
    state: str = "starting"
    load: int = 0


@dataclass
class _Flight:
    task: _Task
    worker: _Worker
    started: float
    cancelled: bool = False


class SweepDriver:
    """Runs a list of episodes on Ray workers and writes each finished one to `store`."""

    def __init__(self, episode_cfg: RolloutConfig, store: EpisodeStore, *, num_workers: int, slots_per_worker: int,
                 cpus_per_worker: float = 1.0, retry: RetryConfig = RetryConfig(), progress: Optional[Progress] = None,
                 on_record: Optional[Callable[[SweepDriver, SweepRecord], None]] = None,
                 warmup_domains: list[str] = (), worker_start_timeout_s: float = 300.0):
        self.cfg = episode_cfg
        self.store = store
        self.num_workers = capped_worker_count(episode_cfg, num_workers)
        self.slots = slots_per_worker
        self.cpus = cpus_per_worker
        self.retry = retry
        self.progress = progress
        self.on_record = on_record
        self.warmup_domains = list(warmup_domains)
        self.start_timeout = worker_start_timeout_s
        self.workers: list[Optional[_Worker]] = []  # by slot; None: the slot was given up
        self.replacements = [0] * self.num_workers
        self.replaced_workers = 0
        self.lost_slots = 0
        self.last_loss = "none"
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
        try:
            if not self.workers:
                self.workers = [self._start(i) for i in range(self.num_workers)]
            self._await_starting()  # episode timing excludes worker start-up
            self.started = time.monotonic()
            if self.progress:
                self.progress.started = self.started
            while ready or delayed or inflight:
                now = time.monotonic()
                while delayed and delayed[0][0] <= now:
                    ready.append(heapq.heappop(delayed)[2])
                self._check_starting(timeout=0)
                if ready and not any(w is not None for w in self.workers):
                    raise NoWorkersLeft(self._no_workers_message(len(ready) + len(delayed) + len(inflight)))
                self._dispatch(ready, inflight)
                starting = self._pending()
                if not inflight:
                    wait_s = max(0.0, min(0.25, delayed[0][0] - now)) if delayed else 0.25
                    if starting:
                        ray.wait(starting, num_returns=1, timeout=wait_s)
                    else:
                        time.sleep(wait_s if delayed else 0.01)
                    continue
                done, _ = ray.wait([*inflight, *starting], num_returns=1, timeout=0.25)
                for ref in done:
                    flight = inflight.pop(ref, None)
                    if flight is None:
                        continue  # a starting worker's warm-up: handled by _check_starting
                    flight.worker.load -= 1
                    result, worker_id = self._collect(ref, flight)
                    self._finish(flight.task, result, worker_id, ready, delayed)
                self._cancel_stuck(inflight)
        except KeyboardInterrupt:
            for ref in inflight:
                ray.cancel(ref)
            keep_workers = False
            raise
        except BaseException:
            keep_workers = False
            raise
        finally:
            self.finished = time.monotonic()
            if not keep_workers:
                self.stop_workers()

    @property
    def actors(self) -> list:
        """The actors of the live slots (ready or starting)."""
        return [w.actor for w in self.workers if w is not None]

    # ---- workers -----------------------------------------------------------------------
    def _start(self, index: int) -> _Worker:
        cfg = worker_config(self.cfg, index, self.num_workers)
        [actor] = start_workers(1, cfg, slots=self.slots, cpus=self.cpus, first_id=next(self._next_id))
        return _Worker(index, actor, actor.ping.remote(), time.monotonic() + self.start_timeout)

    def _pending(self) -> list:
        """The refs of the workers that are starting or warming."""
        return [w.ref for w in self.workers if w is not None and w.state in ("starting", "warming")]

    def _await_starting(self) -> None:
        """Wait until no worker is starting (each is ready or given up, bounded by its deadline)."""
        import ray

        while True:
            pending = self._pending()
            if not pending:
                return
            ray.wait(pending, num_returns=len(pending), timeout=1.0)
            self._check_starting(timeout=0)

    def _check_starting(self, timeout: float) -> None:
        """Promote warm workers to ready; give up the ones past their deadline or dead at start."""
        import ray
        from ray.exceptions import RayActorError

        now = time.monotonic()
        for w in list(self.workers):
            if w is None or w.state not in ("starting", "warming"):
                continue
            done, _ = ray.wait([w.ref], timeout=timeout)
            if done:
                try:
                    ray.get(w.ref)
                except RayActorError:
                    self._give_up(w, f"died while {w.state}")
                    continue
                except Exception:
                    pass  # a worker that cannot warm up fails its episodes, which are then retried
                if w.state == "starting":
                    w.state, w.ref = "warming", w.actor.warmup.remote(self.warmup_domains)
                    w.deadline = time.monotonic() + self.start_timeout
                else:
                    w.state = "ready"
            elif now > w.deadline:
                what = "placed" if w.state == "starting" else "warm"
                self._give_up(w, f"not {what} within ray.worker_start_timeout_s={self.start_timeout:g}")

    def _give_up(self, w: _Worker, why: str) -> None:
        import ray

        try:
            ray.kill(w.actor)
        except Exception:
            pass
        self.workers[w.index] = None
        self.lost_slots += 1
        self.last_loss = why

    def _replace(self, w: _Worker) -> None:
        """The actor of slot `w.index` died: start a new one there (bounded), or give the slot up."""
        if self.workers[w.index] is not w:
            return  # already replaced (another episode of the same actor reported first)
        w.state = "lost"
        if self.replacements[w.index] >= MAX_REPLACEMENTS_PER_SLOT:
            self._give_up(w, f"replaced {MAX_REPLACEMENTS_PER_SLOT} times already")
            return
        total = self._cluster_cpus()
        held = sum(self.cpus for x in self.workers if x is not None and x is not w)
        if held + self.cpus > total + 1e-9:  # e.g. its node is gone: a replacement would wait forever
            self._give_up(w, f"no room for a replacement: the cluster has {total:g} CPUs, the other workers hold "
                             f"{held:g}, a worker needs ray.cpus_per_worker={self.cpus:g}")
            return
        self.replacements[w.index] += 1
        self.replaced_workers += 1
        self.workers[w.index] = self._start(w.index)

    @staticmethod
    def _cluster_cpus() -> float:
        import ray

        try:
            return float(ray.cluster_resources().get("CPU", 0))
        except Exception:
            return float("inf")  # unknown: try, the start deadline bounds the wait

    def _no_workers_message(self, left: int) -> str:
        return (f"no Ray worker can run: all {self.num_workers} worker slots were lost and could not be replaced "
                f"(last: {self.last_loss}); {left} episodes not run. Check the cluster's "
                f"resources (ray.cpus_per_worker={self.cpus:g} each); rerun with the same output_dir to resume")

    # ---- episodes ----------------------------------------------------------------------
    def _dispatch(self, ready: list[_Task], inflight: dict) -> None:
        live = [w for w in self.workers if w is not None and w.state == "ready"]
        while ready and live:
            worker = min(live, key=lambda w: w.load)
            if worker.load >= self.slots:
                return
            task = ready.pop()
            ref = worker.actor.run.remote(dataclasses.asdict(task.spec))
            inflight[ref] = _Flight(task, worker, time.monotonic())
            worker.load += 1

    def _collect(self, ref, flight: _Flight) -> tuple[EpisodeResult, Optional[int]]:
        """(the worker's result and id), or a synthesized failure if the worker died or was cancelled."""
        import ray
        from ray.exceptions import RayActorError, TaskCancelledError

        try:
            out = ray.get(ref)
            worker = out.pop("worker", None)
            return EpisodeResult.from_dict(out), worker
        except RayActorError as e:
            self._replace(flight.worker)
            cls, message = FailureClass.WORKER_DIED, f"worker died: {type(e).__name__}"
        except TaskCancelledError:
            cls, message = FailureClass.TIMEOUT, f"cancelled by the driver after episode.timeout_s + {CANCEL_GRACE_S:.0f}s"
        except Exception as e:  # RayTaskError from a worker bug
            cls, message = FailureClass.ENV_ERROR, f"{type(e).__name__}: {str(e)[:500]}"
        return flight.task.spec.failed(Failure(cls, message)), None

    def _finish(self, task: _Task, result: EpisodeResult, worker_id: Optional[int], ready: list[_Task],
                delayed: list) -> None:
        task.attempts += 1
        failure = result.failure
        if failure is not None and failure.failure_class.retryable and task.attempts < self.retry.max_attempts:
            task.earlier_failures.append(failure)
            heapq.heappush(delayed, (time.monotonic() + self.retry.delay(task.attempts), id(task), task))
            if self.progress:
                self.progress.retry()
            return
        record = SweepRecord.from_result(result, attempts=task.attempts, earlier_failures=task.earlier_failures,
                                         worker=worker_id)
        (record.domain, record.task_id, record.sample), record.seed = key_of(task.spec), task.spec.seed
        self.store.append(record)
        self.written += 1
        if self.progress:
            self.progress.record(record)
        if self.on_record:
            self.on_record(self, record)

    def _cancel_stuck(self, inflight: dict) -> None:
        import ray

        limit = self.cfg.episode.timeout_s + CANCEL_GRACE_S
        now = time.monotonic()
        for ref, flight in inflight.items():
            if not flight.cancelled and now - flight.started > limit:
                ray.cancel(ref)
                flight.cancelled = True

    def stop_workers(self) -> None:
        """Let each ready worker release its sessions (cluster instances, servers), then kill every actor."""
        import ray

        live = [w for w in self.workers if w is not None]
        try:
            ray.get([w.actor.close.remote() for w in live if w.state == "ready"], timeout=STOP_TIMEOUT_S)
        except Exception:
            pass
        for w in live:
            try:
                ray.kill(w.actor)
            except Exception:
                pass
        self.workers = []
        self.replacements = [0] * self.num_workers
