"""The pool's dispatcher: fans requests out to worker actors, retries, survives lost workers.

`Dispatcher.poll()` keeps every ready worker's slots full (direct submission plus a `ray.wait`
loop — never ActorPool, which gives an async actor one task at a time) and returns the jobs
that ended: each with its final `Trajectory`, after a retryable infrastructure failure was
re-queued with exponential backoff while attempts were left. Guarantees:

- Every submitted job ends exactly once (scored or finally failed, or cancelled by the
  caller), or `poll` raises (`NoWorkersLeft`, `KeyboardInterrupt`).
- A worker counts only once it is placed and warm: jobs go to ready workers only, so an actor
  that cannot be placed never holds one.
- A dead worker (`RayActorError`: killed, crashed, its node lost) has its jobs re-queued (as a
  `worker_died` attempt) and is replaced in the same slot. A replacement that cannot fit in
  the cluster's CPUs now (they went with a lost node) is not started, and a worker that is not
  placed, or not warm, within `worker_start_timeout_s` is killed: either way its slot is given
  up and the pool carries on with the workers it has. Only when no worker is ready or starting
  does `poll` raise `NoWorkersLeft`.
- An episode that has run past its timeout plus a grace period is cancelled from here; the
  worker is asked first how long it has really run (`RolloutWorker.active_s`: waits for
  endpoint caps do not count), and one that does not answer has its stuck episodes cancelled.
- `cancel_group(g)` ends the group's queued jobs at once and cancels its running ones; they
  end as `cancelled` (a failure class that is not a sample and is never retried).

Endpoint caps (`llm.max_concurrency`, `user_llm.max_concurrency`) hold across the pool: each
worker gets an exact share (workers.worker_config), and there are never more workers than the
smallest cap.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Optional

from rollout.core.config import RolloutConfig
from rollout.core.failures import Failure, FailureClass, described
from rollout.pool.config import RetryConfig
from rollout.pool.jobs import Job
from rollout.pool.requests import ValidRequest
from rollout.pool.worker import capped_worker_count, start_workers, worker_config
from rollout.trajectory import Trajectory

log = logging.getLogger(__name__)
CANCEL_GRACE_S = 30.0  # the worker's own episode timeout should fire first
ASK_EVERY_S = 10.0  # how often a suspect episode's worker is asked how long it has run
ASK_TIMEOUT_S = 5.0  # a worker that does not answer within this has its stuck episodes cancelled
MAX_REPLACEMENTS_PER_SLOT = 3  # then the slot is given up
STOP_TIMEOUT_S = 30.0


class NoWorkersLeft(RuntimeError):
    """No worker can run: every slot was lost and could not be replaced."""


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
    job: Job
    worker: _Worker
    started: float
    asked: float = 0.0
    cancelled: Optional[str] = None  # why the driver cancelled it: "stuck" | "caller"


class Dispatcher:
    """Runs jobs on Ray workers (see module doc). `poll` from one thread; `submit` and the cancels from any."""

    def __init__(
        self,
        cfg: RolloutConfig,
        *,
        num_workers: int,
        slots_per_worker: int,
        cpus_per_worker: float = 1.0,
        retry: RetryConfig = RetryConfig(),
        warmup_domains: Iterable[str] = (),
        worker_start_timeout_s: float = 300.0,
        on_retry: Optional[Callable[[Job, Failure], None]] = None,
    ):
        self.cfg = cfg
        self.num_workers = capped_worker_count(cfg, num_workers)
        self.slots = slots_per_worker
        self.cpus = cpus_per_worker
        self.retry = retry
        self.warmup_domains = list(warmup_domains)
        self.start_timeout = worker_start_timeout_s
        self.on_retry = on_retry
        self.workers: list[Optional[_Worker]] = []  # by slot; None: the slot was given up
        self.replacements = [0] * self.num_workers
        self.replaced_workers = 0
        self.lost_slots = 0
        self.last_loss = "none"
        self._ids = itertools.count()
        self._worker_ids = itertools.count()
        self._ready: list[Job] = []  # popped from the end
        self._delayed: list[tuple[float, int, Job]] = []  # (not_before, job id, job)
        self._inflight: dict = {}  # ref -> _Flight
        self._inbox: list[Job] = []  # submitted from any thread, queued at the next poll
        self._cancel_groups: set[str] = set()
        self._cancel_jobs: set[int] = set()
        self._lock = threading.Lock()

    # ---- public ------------------------------------------------------------------------
    def start(self) -> None:
        """Start the workers (once) and wait until each is ready or given up."""
        if not self.workers:
            self.workers = [self._start(i) for i in range(self.num_workers)]
        self._await_starting()

    def submit(self, requests: Iterable[ValidRequest]) -> list[Job]:
        """Queue checked requests (run in the order given, from the next poll); their jobs. Any thread."""
        with self._lock:
            jobs = [Job(next(self._ids), r) for r in requests]
            self._inbox += jobs
        return jobs

    def cancel_group(self, group: str) -> None:
        """End a group's jobs: queued ones at the next poll, running ones when their cancel lands. Any thread."""
        with self._lock:
            self._cancel_groups.add(group)

    def cancel_jobs(self, ids: Iterable[int]) -> None:
        """End these jobs as `cancel_group` does (a caller that stopped listening). Any thread."""
        with self._lock:
            self._cancel_jobs.update(ids)

    @property
    def pending(self) -> int:
        """Jobs not ended yet (submitted, queued, waiting for a retry, or running)."""
        return len(self._inbox) + len(self._ready) + len(self._delayed) + len(self._inflight)

    @property
    def ready_workers(self) -> list[_Worker]:
        return [w for w in self.workers if w is not None and w.state == "ready"]

    @property
    def actors(self) -> list:
        """The actors of the live slots (ready or starting)."""
        return [w.actor for w in self.workers if w is not None]

    def poll(self, timeout_s: float = 0.25) -> list[tuple[Job, Trajectory]]:
        """Dispatch, wait up to `timeout_s` for results, and return the jobs that ended."""
        import ray

        ended: list[tuple[Job, Trajectory]] = self._apply_cancels()
        now = time.monotonic()
        while self._delayed and self._delayed[0][0] <= now:
            self._ready.append(heapq.heappop(self._delayed)[2])
        self._check_starting()
        if self._ready and not any(w is not None for w in self.workers):
            raise NoWorkersLeft(self._no_workers_message(self.pending))
        ended += self._dispatch()
        starting = self._pending_refs()
        if not self._inflight:
            wait_s = max(0.0, min(timeout_s, self._delayed[0][0] - now)) if self._delayed else timeout_s
            if starting:
                ray.wait(starting, num_returns=1, timeout=wait_s)
            elif self._ready or self._delayed:
                time.sleep(min(wait_s, 0.01) if self._ready else wait_s)
            return ended
        done, _ = ray.wait([*self._inflight, *starting], num_returns=1, timeout=timeout_s)
        for ref in done:
            flight = self._inflight.pop(ref, None)
            if flight is None:
                continue  # a starting worker's warm-up: handled by _check_starting
            flight.worker.load -= 1
            trajectory = self._collect(ref, flight)
            if self._finish(flight.job, trajectory):
                ended.append((flight.job, trajectory))
        self._cancel_stuck()
        return ended

    def stop(self) -> None:
        """Let each ready worker release its sessions (cluster instances, servers), then kill every actor."""
        import ray

        live = [w for w in self.workers if w is not None]
        try:
            ray.get([w.actor.close.remote() for w in live if w.state == "ready"], timeout=STOP_TIMEOUT_S)
        except Exception:
            log.warning("workers did not all close their sessions within %ss", STOP_TIMEOUT_S, exc_info=True)
        for w in live:
            try:
                ray.kill(w.actor)
            except Exception:
                log.warning("ray.kill of worker slot %s failed", w.index, exc_info=True)
        self.workers = []
        self.replacements = [0] * self.num_workers

    # ---- workers -----------------------------------------------------------------------
    def _start(self, index: int) -> _Worker:
        cfg = worker_config(self.cfg, index, self.num_workers)
        [actor] = start_workers(1, cfg, slots=self.slots, cpus=self.cpus, first_id=next(self._worker_ids))
        return _Worker(index, actor, actor.ping.remote(), time.monotonic() + self.start_timeout)

    def _pending_refs(self) -> list:
        """The refs of the workers that are starting or warming."""
        return [w.ref for w in self.workers if w is not None and w.state in ("starting", "warming")]

    def _await_starting(self) -> None:
        import ray

        while True:
            pending = self._pending_refs()
            if not pending:
                return
            ray.wait(pending, num_returns=len(pending), timeout=1.0)
            self._check_starting()

    def _check_starting(self) -> None:
        """Promote warm workers to ready; give up the ones past their deadline or dead at start."""
        import ray
        from ray.exceptions import RayActorError

        now = time.monotonic()
        for w in list(self.workers):
            if w is None or w.state not in ("starting", "warming"):
                continue
            done, _ = ray.wait([w.ref], timeout=0)
            if done:
                try:
                    ray.get(w.ref)
                except RayActorError:
                    self._give_up(w, f"died while {w.state}")
                    continue
                except Exception:
                    log.warning(
                        "worker slot %s failed to %s; its episodes will fail and be retried",
                        w.index,
                        "start" if w.state == "starting" else "warm up",
                        exc_info=True,
                    )
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
            log.warning("ray.kill of worker slot %s failed", w.index, exc_info=True)
        self.workers[w.index] = None
        self.lost_slots += 1
        self.last_loss = why
        log.warning("worker slot %s given up: %s", w.index, why)

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
            self._give_up(
                w,
                f"no room for a replacement: the cluster has {total:g} CPUs, the other workers hold "
                f"{held:g}, a worker needs ray.cpus_per_worker={self.cpus:g}",
            )
            return
        self.replacements[w.index] += 1
        self.replaced_workers += 1
        self.workers[w.index] = self._start(w.index)
        log.info("worker slot %s replaced (its actor died)", w.index)

    @staticmethod
    def _cluster_cpus() -> float:
        import ray

        try:
            return float(ray.cluster_resources().get("CPU", 0))
        except Exception as e:
            log.debug("Ray's cluster resources unknown (%s): trying anyway", described(e))
            return float("inf")  # unknown: try, the start deadline bounds the wait

    def _no_workers_message(self, left: int) -> str:
        return (
            f"no Ray worker can run: all {self.num_workers} worker slots were lost and could not be replaced "
            f"(last: {self.last_loss}); {left} episodes not run. Check the cluster's "
            f"resources (ray.cpus_per_worker={self.cpus:g} each)"
        )

    # ---- jobs --------------------------------------------------------------------------
    def _dispatch(self) -> list[tuple[Job, Trajectory]]:
        """Fill the ready workers' free slots; the jobs that could not be sent (ended as bad input:
        the message names the exception's type only, the request may hold keys)."""
        live = self.ready_workers
        unsent = []
        while self._ready and live:
            worker = min(live, key=lambda w: w.load)
            if worker.load >= self.slots:
                break
            job = self._ready.pop()
            try:
                ref = worker.actor.run.remote(job)
            except Exception as e:
                failure = Failure(FailureClass.INVALID_INPUT, f"the request cannot be sent to a worker: {type(e).__name__}")
                unsent.append((job, job.ended(failure)))
                self._finish(job, unsent[-1][1])
                continue
            self._inflight[ref] = _Flight(job, worker, time.monotonic())
            worker.load += 1
        return unsent

    def _apply_cancels(self) -> list[tuple[Job, Trajectory]]:
        """Take in the submitted jobs and apply the cancels asked for since the last poll."""
        import ray

        with self._lock:
            inbox, self._inbox = self._inbox, []
            groups, self._cancel_groups = self._cancel_groups, set()
            ids, self._cancel_jobs = self._cancel_jobs, set()
        self._ready[:0] = list(reversed(inbox))
        if not groups and not ids:
            return []

        def hit(job: Job) -> bool:
            return job.group in groups or job.id in ids

        cancelled = Failure(FailureClass.CANCELLED, "cancelled by the caller")
        ended = [(job, job.ended(cancelled)) for job in self._ready if hit(job)]
        ended += [(d[2], d[2].ended(cancelled)) for d in self._delayed if hit(d[2])]
        self._ready = [job for job in self._ready if not hit(job)]
        self._delayed = [d for d in self._delayed if not hit(d[2])]
        heapq.heapify(self._delayed)
        for ref, flight in self._inflight.items():
            if hit(flight.job) and flight.cancelled is None:
                flight.cancelled = "caller"
                ray.cancel(ref)
        return ended

    def _collect(self, ref, flight: _Flight) -> Trajectory:
        """The worker's trajectory, or one for the failure if the worker died or the job was cancelled."""
        import ray
        from ray.exceptions import RayActorError, TaskCancelledError

        if flight.cancelled == "caller":
            try:
                ray.get(ref)
            except Exception as e:  # cancelled as asked: whatever it did is not a sample
                log.debug("job %s cancelled by the caller ended with %s", flight.job.id, described(e))
            return flight.job.ended(Failure(FailureClass.CANCELLED, "cancelled by the caller"))
        try:
            return ray.get(ref)
        except RayActorError as e:
            self._replace(flight.worker)
            cls, message = FailureClass.WORKER_DIED, f"worker died: {type(e).__name__}"
        except TaskCancelledError:
            cls, message = FailureClass.TIMEOUT, f"cancelled by the driver after episode.timeout_s + {CANCEL_GRACE_S:.0f}s"
        except Exception as e:  # RayTaskError from a worker bug
            cls, message = FailureClass.ENV_ERROR, described(e)[:500]
            log.warning("job %s: the worker raised: %s", flight.job.id, message)
        return flight.job.ended(Failure(cls, message))

    def _finish(self, job: Job, trajectory: Trajectory) -> bool:
        """An attempt ended; False when the job is re-queued for another."""
        failure = trajectory.failure
        if failure is not None and failure.failure_class.retryable and job.attempt < self.retry.max_attempts:
            heapq.heappush(self._delayed, (time.monotonic() + self.retry.delay(job.attempt), job.id, job.retried(failure)))
            if self.on_retry:
                self.on_retry(job, failure)
            return False
        return True

    def _cancel_stuck(self) -> None:
        """Cancel episodes that have run past their budget (see module doc)."""
        import ray

        limit = self.cfg.episode.timeout_s + CANCEL_GRACE_S
        now = time.monotonic()
        suspects: dict[int, list[tuple[object, _Flight]]] = {}
        for ref, flight in self._inflight.items():
            if flight.cancelled is None and now - flight.started > limit and now - flight.asked > ASK_EVERY_S:
                suspects.setdefault(flight.worker.index, []).append((ref, flight))
        for flights in suspects.values():
            worker = flights[0][1].worker
            answer = worker.actor.active_s.remote([f.job.id for _, f in flights])
            done, _ = ray.wait([answer], timeout=ASK_TIMEOUT_S)
            try:
                active = ray.get(done[0]) if done else None
            except Exception as e:
                log.debug("worker slot %s did not say how long its jobs ran: %s", worker.index, described(e))
                active = None
            for ref, flight in flights:
                flight.asked = time.monotonic()
                if active is None or active.get(flight.job.id, 0.0) > limit:
                    flight.cancelled = "stuck"
                    ray.cancel(ref)
