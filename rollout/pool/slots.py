"""The pool's worker slots: each holds one worker actor, started, warmed, replaced or given up.

A slot's actor goes through `SlotState`s: STARTING until it answers a ping (placed on a node
and constructed), WARMING until its warm-up returns (the domains loaded), READY (it takes
episodes), and LOST once it died (`died`): then it is replaced in the same slot (a new actor,
STARTING again), at most `MAX_REPLACEMENTS_PER_SLOT` times, or the slot is GIVEN_UP. A slot
is also given up when its actor is not placed, or not warm, within `start_timeout_s` (each
phase has that bound), when it dies while starting, and when a replacement could not fit in
the cluster's CPUs now (they went with a lost node). A given-up slot's actor is killed and the
pool carries on with the slots it has; `live` tells whether any is left.

The pool puts its workers in a state (the weights they serve) with `broadcast(calls)`: every
live worker is called with them, and every worker started later (a replacement) right after it
is created, before its first job. `broadcast` is safe from any thread; the rest of
`WorkerSlots` is used from the dispatcher's thread only.
"""

from __future__ import annotations

import enum
import itertools
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from rollout.core.config import RolloutConfig
from rollout.core.failures import described
from rollout.pool.cluster import cluster_cpus, worker_config
from rollout.pool.worker import start_workers

log = logging.getLogger(__name__)
MAX_REPLACEMENTS_PER_SLOT = 3  # then the slot is given up
STOP_TIMEOUT_S = 30.0


class SlotState(enum.Enum):
    STARTING = "starting"
    WARMING = "warming"
    READY = "ready"
    LOST = "lost"
    GIVEN_UP = "given_up"


STARTED = (SlotState.STARTING, SlotState.WARMING)  # waiting for the ping or the warm-up


@dataclass
class Slot:
    """Slot `index` and its current actor; `ref`: the ping, then the warm-up; `load`: episodes in flight."""

    index: int
    actor: object
    ref: object
    deadline: float
    state: SlotState = SlotState.STARTING
    load: int = 0


class WorkerSlots:
    """`count` slots of worker actors for `cfg` (see module doc); worker i gets its share of the
    endpoint caps (`worker_config`)."""

    def __init__(
        self,
        cfg: RolloutConfig,
        *,
        count: int,
        slots_per_worker: int,
        cpus_per_worker: float,
        warmup_domains: Iterable[str] = (),
        start_timeout_s: float = 300.0,
    ):
        self.cfg = cfg
        self.count = count
        self.episodes_per_worker = slots_per_worker
        self.cpus = cpus_per_worker
        self.warmup_domains = list(warmup_domains)
        self.start_timeout = start_timeout_s
        self.slots: list[Slot] = []
        self.replacements = [0] * count
        self.replaced_workers = 0
        self.lost_slots = 0
        self.last_loss = "none"
        self._worker_ids = itertools.count()
        self._lock = threading.Lock()  # broadcast against _start: a worker is in `slots`, or gets the calls there
        self._state_calls: list[tuple[str, tuple]] = []  # what a new worker is called with first

    # ---- views ---------------------------------------------------------------------------
    @property
    def ready(self) -> list[Slot]:
        return [s for s in self.slots if s.state is SlotState.READY]

    @property
    def live(self) -> list[Slot]:
        """The slots not given up (ready, or starting an actor)."""
        return [s for s in self.slots if s.state is not SlotState.GIVEN_UP]

    def starting_refs(self) -> list:
        """The pings and warm-ups not answered yet."""
        return [s.ref for s in self.slots if s.state in STARTED]

    # ---- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        """Start an actor in every slot (once) and wait until each is ready or given up."""
        import ray

        if not self.slots:
            self.slots = [self._start(i) for i in range(self.count)]
        while True:
            pending = self.starting_refs()
            if not pending:
                return
            ray.wait(pending, num_returns=len(pending), timeout=1.0)
            self.check_starting()

    def check_starting(self) -> None:
        """Move answered slots on (STARTING -> WARMING -> READY); give up those past their deadline
        or dead while starting. A warm-up that raised leaves the slot READY: its episodes fail
        (and are retried) rather than the pool losing the worker."""
        import ray
        from ray.exceptions import RayActorError

        now = time.monotonic()
        for slot in list(self.slots):
            if slot.state not in STARTED:
                continue
            done, _ = ray.wait([slot.ref], timeout=0)
            if done:
                try:
                    ray.get(slot.ref)
                except RayActorError:
                    self._give_up(slot, f"died while {slot.state.value}")
                    continue
                except Exception:
                    log.warning(
                        "worker slot %s failed to %s; its episodes will fail and be retried",
                        slot.index,
                        "start" if slot.state is SlotState.STARTING else "warm up",
                        exc_info=True,
                    )
                if slot.state is SlotState.STARTING:
                    slot.state, slot.ref = SlotState.WARMING, slot.actor.warmup.remote(self.warmup_domains)
                    slot.deadline = time.monotonic() + self.start_timeout
                else:
                    slot.state = SlotState.READY
            elif now > slot.deadline:
                what = "placed" if slot.state is SlotState.STARTING else "warm"
                self._give_up(slot, f"not {what} within ray.worker_start_timeout_s={self.start_timeout:g}")

    def broadcast(self, calls: list[tuple[str, tuple]], timeout_s: float = 60.0) -> None:
        """Call every live worker with `calls` ((method, args), in order) and wait for those that
        are placed; every worker started from now on is called with them right after it is
        created, long before its first job. `calls` is the whole state workers must be in (each
        broadcast replaces the last). A worker that died meanwhile is skipped (its replacement
        gets them). Raises TimeoutError naming the slot that did not answer. Any thread."""
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError

        with self._lock:
            self._state_calls = list(calls)
            sent = [(s, [getattr(s.actor, m).remote(*a) for m, a in calls]) for s in self.live]
        for slot, refs in sent:
            if slot.state is SlotState.STARTING:  # not placed yet (it may wait for resources): not waited for
                continue
            try:
                ray.get(refs, timeout=timeout_s)
            except RayActorError:
                log.info("worker slot %s died before it took the pool's state; its replacement will", slot.index)
            except GetTimeoutError:
                raise TimeoutError(f"worker slot {slot.index} did not answer {calls[0][0]} within {timeout_s:g}s") from None

    def died(self, slot: Slot) -> None:
        """The actor of `slot` died: start a new one there (bounded), or give the slot up. A
        slot whose actor was already replaced (another episode of it reported first) is left alone."""
        if self.slots[slot.index] is not slot or slot.state in (SlotState.LOST, SlotState.GIVEN_UP):
            return
        slot.state = SlotState.LOST
        if self.replacements[slot.index] >= MAX_REPLACEMENTS_PER_SLOT:
            self._give_up(slot, f"replaced {MAX_REPLACEMENTS_PER_SLOT} times already")
            return
        total = _cluster_cpus()
        held = sum(self.cpus for s in self.live if s is not slot)
        if held + self.cpus > total + 1e-9:  # e.g. its node is gone: a replacement would wait forever
            self._give_up(
                slot,
                f"no room for a replacement: the cluster has {total:g} CPUs, the other workers hold "
                f"{held:g}, a worker needs ray.cpus_per_worker={self.cpus:g}",
            )
            return
        self.replacements[slot.index] += 1
        self.replaced_workers += 1
        self._start(slot.index)
        log.info("worker slot %s replaced (its actor died)", slot.index)

    def stop(self) -> None:
        """Let each ready worker release its sessions (cluster instances, servers), then kill every live actor."""
        import ray

        live = self.live
        try:
            ray.get([s.actor.close.remote() for s in live if s.state is SlotState.READY], timeout=STOP_TIMEOUT_S)
        except Exception:
            log.warning("workers did not all close their sessions within %ss", STOP_TIMEOUT_S, exc_info=True)
        for slot in live:
            _kill(slot)
        self.slots = []
        self.replacements = [0] * self.count

    def no_workers_message(self, left: int) -> str:
        return (
            f"no Ray worker can run: all {self.count} worker slots were lost and could not be replaced "
            f"(last: {self.last_loss}); {left} episodes not run. Check the cluster's "
            f"resources (ray.cpus_per_worker={self.cpus:g} each)"
        )

    # ---- internals -----------------------------------------------------------------------
    def _start(self, index: int) -> Slot:
        """A new actor in slot `index` (in `slots` once the slot list exists), called with the
        broadcast state first."""
        cfg = worker_config(self.cfg, index, self.count)
        with self._lock:
            [actor] = start_workers(1, cfg, slots=self.episodes_per_worker, cpus=self.cpus, first_id=next(self._worker_ids))
            slot = Slot(index, actor, actor.ping.remote(), time.monotonic() + self.start_timeout)
            for method, args in self._state_calls:
                getattr(actor, method).remote(*args)
            if index < len(self.slots):
                self.slots[index] = slot  # seen by a broadcast from now on
        return slot

    def _give_up(self, slot: Slot, why: str) -> None:
        _kill(slot)
        slot.state = SlotState.GIVEN_UP
        self.lost_slots += 1
        self.last_loss = why
        log.warning("worker slot %s given up: %s", slot.index, why)


def _kill(slot: Slot) -> None:
    import ray

    try:
        ray.kill(slot.actor)
    except Exception:
        log.warning("ray.kill of worker slot %s failed", slot.index, exc_info=True)


def _cluster_cpus() -> float:
    """`cluster_cpus()`, or infinity when Ray cannot say (a replacement is then tried)."""
    try:
        return cluster_cpus()
    except Exception as e:
        log.debug("Ray's cluster resources unknown (%s): trying anyway", described(e))
        return float("inf")  # unknown: try, the start deadline bounds the wait
