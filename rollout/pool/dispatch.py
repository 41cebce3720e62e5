"""The pool's dispatcher: fans jobs out to worker actors, retries, survives lost workers.

It joins the worker slots (slots.py: start, warm, replace, give up) and the job queue (jobs.py:
order, backoff, the retry rule) with what happens on Ray: episodes in flight, their cancels, and
Ray's errors turned into failure classes. `Dispatcher.poll()` keeps every ready worker's slots full (direct submission plus a `ray.wait`
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
worker gets an exact share (cluster.worker_config), and there are never more workers than the
smallest cap (cluster.worker_count).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Optional

from rollout.core.config import RolloutConfig
from rollout.core.failures import Failure, FailureClass, described
from rollout.pool.config import RetryConfig
from rollout.pool.jobs import Job, JobQueue, retry_delay
from rollout.pool.requests import ValidRequest
from rollout.pool.slots import Slot, WorkerSlots
from rollout.trajectory import Trajectory

log = logging.getLogger(__name__)
CANCEL_GRACE_S = 30.0  # the worker's own episode timeout should fire first
ASK_EVERY_S = 10.0  # how often a suspect episode's worker is asked how long it has run
ASK_TIMEOUT_S = 5.0  # a worker that does not answer within this has its stuck episodes cancelled
CANCELLED = Failure(FailureClass.CANCELLED, "cancelled by the caller")


class NoWorkersLeft(RuntimeError):
    """No worker can run: every slot was lost and could not be replaced."""


@dataclass
class _Flight:
    job: Job
    slot: Slot
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
        self.slots = WorkerSlots(
            cfg,
            count=num_workers,
            slots_per_worker=slots_per_worker,
            cpus_per_worker=cpus_per_worker,
            warmup_domains=warmup_domains,
            start_timeout_s=worker_start_timeout_s,
        )
        self.episodes_per_worker = slots_per_worker
        self.retry = retry
        self.on_retry = on_retry
        self.queue = JobQueue()
        self._inflight: dict = {}  # ref -> _Flight

    # ---- public ------------------------------------------------------------------------
    def start(self) -> None:
        """Start the workers (once) and wait until each is ready or given up."""
        self.slots.start()

    def submit(self, requests: Iterable[ValidRequest]) -> list[Job]:
        """Queue checked requests (run in the order given, from the next poll); their jobs. Any thread."""
        return self.queue.submit(requests)

    def cancel_group(self, group: str) -> None:
        """End a group's jobs: queued ones at the next poll, running ones when their cancel lands. Any thread."""
        self.queue.cancel_group(group)

    def cancel_jobs(self, ids: Iterable[int]) -> None:
        """End these jobs as `cancel_group` does (a caller that stopped listening). Any thread."""
        self.queue.cancel_jobs(ids)

    def broadcast(self, calls: list[tuple[str, tuple]], timeout_s: float = 60.0) -> None:
        """Put every worker, and every worker started from now on, in the state `calls` make
        (WorkerSlots.broadcast). Any thread."""
        self.slots.broadcast(calls, timeout_s)

    @property
    def pending(self) -> int:
        """Jobs not ended yet (submitted, queued, waiting for a retry, or running)."""
        return len(self.queue) + len(self._inflight)

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    @property
    def queued(self) -> int:
        """Jobs queued or waiting for a retry."""
        return self.queue.ready + self.queue.delayed

    @property
    def num_workers(self) -> int:
        return self.slots.count

    @property
    def workers(self) -> list[Slot]:
        """The worker slots, in order (a given-up slot's state is GIVEN_UP)."""
        return self.slots.slots

    @property
    def ready_workers(self) -> list[Slot]:
        return self.slots.ready

    @property
    def actors(self) -> list:
        """The actors of the live slots (ready or starting)."""
        return [s.actor for s in self.slots.live]

    @property
    def replaced_workers(self) -> int:
        return self.slots.replaced_workers

    @property
    def lost_slots(self) -> int:
        return self.slots.lost_slots

    def poll(self, timeout_s: float = 0.25) -> list[tuple[Job, Trajectory]]:
        """Dispatch, wait up to `timeout_s` for results, and return the jobs that ended."""
        import ray

        ended: list[tuple[Job, Trajectory]] = self._apply_cancels()
        now = time.monotonic()
        self.queue.release_due(now)
        self.slots.check_starting()
        if self.queue.ready and not self.slots.live:
            raise NoWorkersLeft(self.slots.no_workers_message(self.pending))
        ended += self._dispatch()
        starting = self.slots.starting_refs()
        if not self._inflight:
            due = self.queue.next_due()
            wait_s = max(0.0, min(timeout_s, due - now)) if due is not None else timeout_s
            if starting:
                ray.wait(starting, num_returns=1, timeout=wait_s)
            elif self.queue.ready or due is not None:
                time.sleep(min(wait_s, 0.01) if self.queue.ready else wait_s)
            return ended
        done, _ = ray.wait([*self._inflight, *starting], num_returns=1, timeout=timeout_s)
        for ref in done:
            flight = self._inflight.pop(ref, None)
            if flight is None:
                continue  # a starting worker's warm-up: handled by check_starting
            flight.slot.load -= 1
            trajectory = self._collect(ref, flight)
            if self._finish(flight.job, trajectory):
                ended.append((flight.job, trajectory))
        self._cancel_stuck()
        return ended

    def stop(self) -> None:
        """Let each ready worker release its sessions (cluster instances, servers), then kill every actor."""
        self.slots.stop()

    # ---- jobs --------------------------------------------------------------------------
    def _dispatch(self) -> list[tuple[Job, Trajectory]]:
        """Fill the ready workers' free slots; the jobs that could not be sent (ended as bad input:
        the message names the exception's type only, the request may hold keys)."""
        live = self.slots.ready
        unsent = []
        while self.queue.ready and live:
            slot = min(live, key=lambda s: s.load)
            if slot.load >= self.episodes_per_worker:
                break
            job = self.queue.pop()
            try:
                ref = slot.actor.run.remote(job)
            except Exception as e:
                failure = Failure(FailureClass.INVALID_INPUT, f"the request cannot be sent to a worker: {type(e).__name__}")
                unsent.append((job, job.ended(failure)))
                continue
            self._inflight[ref] = _Flight(job, slot, time.monotonic())
            slot.load += 1
        return unsent

    def _apply_cancels(self) -> list[tuple[Job, Trajectory]]:
        """Take in the submitted jobs and apply the cancels asked for since the last poll: queued
        jobs end now, running ones are cancelled on their worker (they end when that lands)."""
        import ray

        hit = self.queue.take_in()
        if hit is None:
            return []
        for ref, flight in self._inflight.items():
            if hit(flight.job) and flight.cancelled is None:
                flight.cancelled = "caller"
                ray.cancel(ref)
        return [(job, job.ended(CANCELLED)) for job in self.queue.cancel(hit)]

    def _collect(self, ref, flight: _Flight) -> Trajectory:
        """The worker's trajectory, or one for the failure if the worker died or the job was cancelled."""
        import ray
        from ray.exceptions import RayActorError, TaskCancelledError

        if flight.cancelled == "caller":
            try:
                ray.get(ref)
            except Exception as e:  # cancelled as asked: whatever it did is not a sample
                log.debug("job %s cancelled by the caller ended with %s", flight.job.id, described(e))
            return flight.job.ended(CANCELLED)
        try:
            return ray.get(ref)
        except RayActorError as e:
            self.slots.died(flight.slot)
            cls, message = FailureClass.WORKER_DIED, f"worker died: {type(e).__name__}"
        except TaskCancelledError:
            cls, message = FailureClass.TIMEOUT, f"cancelled by the driver after episode.timeout_s + {CANCEL_GRACE_S:.0f}s"
        except Exception as e:  # RayTaskError from a worker bug
            cls, message = FailureClass.ENV_ERROR, described(e)[:500]
            log.warning("job %s: the worker raised: %s", flight.job.id, message)
        return flight.job.ended(Failure(cls, message))

    def _finish(self, job: Job, trajectory: Trajectory) -> bool:
        """An attempt ended; False when the job is re-queued for another (`retry_delay`)."""
        delay = retry_delay(job, trajectory.failure, self.retry)
        if delay is None:
            return True
        self.queue.retry_later(job.retried(trajectory.failure), delay)
        if self.on_retry:
            self.on_retry(job, trajectory.failure)
        return False

    def _cancel_stuck(self) -> None:
        """Cancel episodes that have run past their budget (see module doc)."""
        import ray

        limit = self.cfg.episode.timeout_s + CANCEL_GRACE_S
        now = time.monotonic()
        suspects: dict[int, list[tuple[object, _Flight]]] = {}  # by slot (its current actor)
        for ref, flight in self._inflight.items():
            if flight.cancelled is None and now - flight.started > limit and now - flight.asked > ASK_EVERY_S:
                suspects.setdefault(id(flight.slot), []).append((ref, flight))
        for flights in suspects.values():
            slot = flights[0][1].slot
            answer = slot.actor.active_s.remote([f.job.id for _, f in flights])
            done, _ = ray.wait([answer], timeout=ASK_TIMEOUT_S)
            try:
                active = ray.get(done[0]) if done else None
            except Exception as e:
                log.debug("worker slot %s did not say how long its jobs ran: %s", slot.index, described(e))
                active = None
            for ref, flight in flights:
                flight.asked = time.monotonic()
                if active is None or active.get(flight.job.id, 0.0) > limit:
                    flight.cancelled = "stuck"
                    ray.cancel(ref)
