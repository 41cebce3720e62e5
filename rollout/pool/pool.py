"""The rollout pool: a Python API over Ray actors that run TAU2 episodes for training and evaluation.

    pool = RolloutPool(["llm.capture=token_ids", "user_llm.base_url=http://sim:8000/v1"], ray={"num_workers": 4})
    batch = [RolloutRequest("airline", t, sample=k, weight_version=step,
                            policy=Endpoint("http://vllm:8000/v1", model="policy")) for t in tasks for k in range(8)]
    for group in pool.stream_groups(batch):        # the 8 samples of one task, as soon as they are all done
        train_on(group)
    pool.close()

Created on the Ray this process is connected to (a trainer's), else on `ray.address` or a
local Ray it starts and stops (rollout/pool/cluster.py: the one place that joins or starts Ray,
fits the workers on the cluster's CPUs and counts them). Workers start on the first call and
stay warm; one thread of the pool feeds them and collects their ends, so calls may overlap.
The calls (each with an async twin: `arun`, `astream`, `astream_groups`): `run` (trajectories
in request order), `stream` (each as it finishes), `stream_groups` (each complete group; extra
samples against stragglers; a buffer of groups ahead of the trainer and a staleness bound:
rollout/pool/group_flow.py), `cancel(group_id)`, `stats()`, and the weight calls (`pause`,
`resume`, `set_weight_version`, `weight_update`): episodes run on through a trainer's weight
swap. A call whose caller stops listening cancels its requests that have not ended; a call's
own cancels touch only its own requests. Requests are checked once, when submitted or ahead
with `check(requests)` (rollout/pool/checks.py, then against their domain and the config): a
bad one raises InvalidInput naming the field before any of the call's episodes runs. The first
call asks the workers whether they can read the keys the config and each new
`Endpoint.api_key_env` name. Every request ends as a `Trajectory`: tau2's outcome, or a
classified failure after `retry.max_attempts`, with the tokens of each policy call when
`llm.capture` is on. docs/pool.md is the manual.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Optional, Union

from rollout.core.config import RolloutConfig, load_config, validate
from rollout.core.failures import InvalidInput
from rollout.env.task_sets import register_task_sets
from rollout.pool.async_calls import AsyncCalls, Requests
from rollout.pool.checks import check_requests
from rollout.pool.cluster import check_local_fit, cluster_cpus, connect, disconnect, worker_count
from rollout.pool.config import RayConfig, RetryConfig, check_pool, typed_section
from rollout.pool.dispatch import Dispatcher, NoWorkersLeft
from rollout.pool.group_flow import GroupFlow
from rollout.pool.requests import ValidRequest
from rollout.pool.stats import PoolStats
from rollout.pool.weight_calls import WeightCalls
from rollout.pool.weights import WeightState
from rollout.trajectory import Trajectory

log = logging.getLogger(__name__)
POLL_S = 0.1
__all__ = ["NoWorkersLeft", "RolloutPool"]


class RolloutPool(AsyncCalls, WeightCalls):
    """See the module doc. `config`: a RolloutConfig, or its overrides (a dict or `key=value` list)."""

    def __init__(
        self,
        config: Union[RolloutConfig, dict, list, None] = None,
        *,
        ray: Union[RayConfig, dict, None] = None,
        retry: Union[RetryConfig, dict, None] = None,
        seed: int = 0,
        warmup_domains: Iterable[str] = (),
        on_retry: Optional[Callable[[], None]] = None,
    ):
        if isinstance(config, RolloutConfig):
            validate(config)
            self.cfg = config
        else:
            self.cfg = load_config(config)
        self.ray_cfg, self.retry = typed_section(RayConfig, ray, "ray"), typed_section(RetryConfig, retry, "retry")
        problems = check_pool(self.ray_cfg, self.retry)
        if problems:
            raise InvalidInput("; ".join(problems))
        check_local_fit(self.ray_cfg)
        register_task_sets(self.cfg.task_sets)  # read and checked here, before Ray starts
        self.seed = seed
        self._warmup = list(warmup_domains)
        self._on_retry = on_retry
        self.dispatcher: Optional[Dispatcher] = None
        self._started_ray = False
        self._start_lock = threading.Lock()
        self._waiters: dict[int, Callable[[Any], None]] = {}  # job id -> where its end goes
        self._waiters_lock = threading.Lock()
        self._pump: Optional[threading.Thread] = None
        self._closing = threading.Event()
        self._closed = False
        self._keys_read: set[str] = set()  # Endpoint.api_key_env names every worker can read
        self.counters = PoolStats()
        self._weights = WeightState()  # the policy's weights as the workers are told (weight_update)

    # ---- lifecycle ---------------------------------------------------------------------
    def start(self, domains: Iterable[str] = (), *, episodes: Optional[int] = None) -> None:
        """Join or start Ray (rollout/pool/cluster.py: none connected yet), start the workers
        (warming `domains`) and the pool's thread. The first call does it anyway; calling it first
        keeps worker start-up out of its time. `episodes`: how many episodes the pool is started
        for, when that is known (a sweep's): with `ray.num_workers` null, no more workers than
        they fill. Raises RayUnreachable, InvalidInput (the workers do not fit the cluster)."""
        with self._start_lock:
            if self._closed:
                raise RuntimeError("this RolloutPool is closed: create a new one")
            if self.dispatcher is not None:
                return
            from rollout.core.process_env import rearm_signal_handlers

            r = self.ray_cfg
            self._started_ray = connect(r) or self._started_ray
            dispatcher = Dispatcher(
                self.cfg,
                num_workers=worker_count(self.cfg, r, cluster_cpus(), episodes),
                slots_per_worker=r.slots_per_worker,
                cpus_per_worker=r.cpus_per_worker,
                retry=self.retry,
                warmup_domains=sorted({*self._warmup, *domains}),
                worker_start_timeout_s=r.worker_start_timeout_s,
                on_retry=self._retried,
            )
            dispatcher.broadcast(self._weights.calls(started=False))  # the weight state the workers start in
            dispatcher.start()
            rearm_signal_handlers()  # Ray's native code may have reset the handlers underneath (core/process_env.py)
            named = self._weights.policy
            try:
                self._check_keys(dispatcher, [named.api_key_env] if named and named.api_key_env else [])
            except InvalidInput:
                dispatcher.stop()
                raise
            self.dispatcher = dispatcher
            self._closing.clear()
            self._pump = threading.Thread(target=self._run_pump, name="rollout-pool", daemon=True)
            self._pump.start()

    def _check_keys(self, dispatcher: Dispatcher, variables: list[str]) -> None:
        """Ask every ready worker whether it can read the config's keys and `variables`;
        InvalidInput with the first worker's problem (once, before any episode is sent)."""
        import ray

        actors = [w.actor for w in dispatcher.ready_workers]
        problems = [p for p in ray.get([a.key_problem.remote(variables) for a in actors]) if p]
        if problems:
            raise InvalidInput(problems[0])
        self._keys_read.update(variables)

    def _retried(self, job, failure) -> None:
        self.counters.retried(failure)
        if self._on_retry is not None:
            self._on_retry()

    def _run_pump(self) -> None:
        """The pool's thread: polls the dispatcher and hands each ended job to its caller."""
        while not self._closing.is_set():
            try:
                ended = self.dispatcher.poll(POLL_S)
            except NoWorkersLeft as e:
                self._fail_all(e)
                continue
            except Exception as e:  # a bug: tell the callers, keep serving
                log.exception("the rollout pool's dispatcher failed")
                self._fail_all(e)
                continue
            for job, trajectory in ended:
                with self._waiters_lock:
                    deliver = self._waiters.pop(job.id, None)
                if deliver is not None:
                    self.counters.ended(trajectory)
                    deliver(trajectory)

    def _fail_all(self, error: BaseException) -> None:
        with self._waiters_lock:
            waiters, self._waiters = list(self._waiters.values()), {}
        for deliver in waiters:
            deliver(error)

    def close(self) -> None:
        """Stop the pool's thread, the workers (they release their sessions) and a Ray this pool
        started. The pool refuses calls from then on."""
        self._closed = True
        self._closing.set()
        if self._pump is not None:
            self._pump.join(timeout=30)
            self._pump = None
        self._fail_all(RuntimeError("the rollout pool was closed"))
        if self.dispatcher is not None:
            self.dispatcher.stop()
            self.dispatcher = None
        if self._started_ray:
            disconnect()
            self._started_ray = False

    def __enter__(self) -> RolloutPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- calls ---------------------------------------------------------------------------
    def check(self, requests: Requests) -> list[ValidRequest]:
        """The requests, each checked against its domain and this pool's config (before any
        worker starts), as the calls take them without checking them again. Raises InvalidInput
        naming the first bad one."""
        if self._closed:
            raise RuntimeError("this RolloutPool is closed: create a new one")
        return check_requests(requests, self.cfg, self.seed)

    def _submit(self, requests: list[ValidRequest], deliver: Callable[[int, Any], None]) -> list[int]:
        """Submit requests; `deliver(position, trajectory or error)` is called from the pool's thread."""
        self.start({r.episode.domain for r in requests})
        policies = [r.request.policy for r in requests]
        variables = sorted({p.api_key_env for p in policies if p and p.api_key_env} - self._keys_read)
        if variables:
            self._check_keys(self.dispatcher, variables)
        self.counters.submitted(len(requests))
        with self._waiters_lock:  # registered before the pool's thread can see them end
            jobs = self.dispatcher.submit(requests)
            for i, job in enumerate(jobs):
                self._waiters[job.id] = (lambda position: lambda item: deliver(position, item))(i)
        return [job.id for job in jobs]

    def _cancel_unfinished(self, ids: list[int]) -> None:
        """The caller stopped listening: cancel its jobs that have not ended (their ends are still
        counted in `stats()`, delivered to no one)."""
        with self._waiters_lock:
            left = [i for i in ids if i in self._waiters]
            for i in left:
                self._waiters[i] = _ignore
        if left and self.dispatcher is not None:
            self.dispatcher.cancel_jobs(left)

    def _stream(self, requests: Requests, ids_out: Optional[list] = None) -> Iterator[tuple[int, Trajectory]]:
        """(the request's position, its trajectory) as each finishes; `ids_out` gets the jobs' ids."""
        requests = self.check(requests)
        inbox: queue.Queue = queue.Queue()
        ids = self._submit(requests, lambda i, item: inbox.put((i, item)))
        if ids_out is not None:
            ids_out += ids
        try:
            for _ in range(len(ids)):
                i, item = _next_end(inbox)
                if isinstance(item, BaseException):
                    raise item
                yield i, item
        finally:
            self._cancel_unfinished(ids)

    def stream(self, requests: Requests) -> Iterator[Trajectory]:
        """Each request's trajectory as it finishes (see module doc)."""
        for _, trajectory in self._stream(requests):
            yield trajectory

    def run(self, requests: Requests) -> list[Trajectory]:
        """Every request's trajectory, in request order."""
        requests = list(requests)
        out: list[Optional[Trajectory]] = [None] * len(requests)
        for i, trajectory in self._stream(requests):
            out[i] = trajectory
        return out

    def stream_groups(
        self,
        requests: Requests,
        *,
        extra_samples: int = 0,
        ahead: Optional[int] = None,
        max_staleness: Optional[int] = None,
        groups_per_step: Optional[int] = None,
    ) -> Iterator[list[Trajectory]]:
        """Each complete group as soon as it is (see module doc and rollout/pool/group_flow.py)."""
        flow = self._group_flow(requests, extra_samples, ahead, max_staleness, groups_per_step)
        inbox: queue.Queue = queue.Queue()
        ids: list[int] = []
        try:
            self._feed(flow, ids, lambda i, item: inbox.put((i, item)))
            received = 0
            while not flow.done or received < len(ids):  # then the call's cancelled stragglers' ends
                flow.check_waiting()
                position, item = _next_end(inbox)
                received += 1
                self._ended(flow, ids, position, item)
                while (group := self._next_group(flow)) is not None:
                    yield group
                    self._feed(flow, ids, lambda i, item: inbox.put((i, item)))  # the trainer may have moved the version
                self._feed(flow, ids, lambda i, item: inbox.put((i, item)))  # groups run again
        finally:
            self._cancel_unfinished(ids)

    def _group_flow(self, requests, extra_samples, ahead, max_staleness, groups_per_step) -> GroupFlow:
        if self._closed:
            raise RuntimeError("this RolloutPool is closed: create a new one")
        return GroupFlow(
            requests,
            extra_samples=extra_samples,
            check=lambda rs: check_requests(rs, self.cfg, self.seed),
            version=lambda: self.weight_version,
            base_seed=self.seed,
            ahead=ahead,
            max_staleness=max_staleness,
            groups_per_step=groups_per_step,
        )

    def _feed(self, flow: GroupFlow, ids: list[int], deliver: Callable[[int, Any], None]) -> None:
        """Submit what the call starts now; `deliver(position in the call, item)`."""
        requests = flow.to_submit()
        if requests:
            first = len(ids)
            ids += self._submit(requests, lambda i, item: deliver(first + i, item))

    def _ended(self, flow: GroupFlow, ids: list[int], position: int, item: Any) -> None:
        """One end of a stream_groups call: to the flow, and its stragglers cancelled."""
        if isinstance(item, BaseException):
            raise item
        flow.ended(position, item)
        cancel = [ids[p] for p in flow.to_cancel()]
        if cancel and self.dispatcher is not None:
            self.dispatcher.cancel_jobs(cancel)

    def _next_group(self, flow: GroupFlow) -> Optional[list[Trajectory]]:
        """The flow's next group to hand back (stale ones it drops are counted)."""
        stale = flow.stale_groups
        group = flow.next_group()
        for _ in range(flow.stale_groups - stale):
            self.counters.stale_group()
        return group

    def cancel(self, group_id: str) -> None:
        """Cancel a group's queued and running requests (safe from any thread)."""
        if self.dispatcher is not None:
            self.dispatcher.cancel_group(group_id)

    def stats(self) -> dict[str, Any]:
        """Live counters (see PoolStats), and the weight state (`weight_version`, `paused`)."""
        state = {"weight_version": self._weights.version, "paused": self._weights.paused}
        return {**self.counters.snapshot(self.dispatcher), **state}


def _ignore(item: Any) -> None:
    """Where the end of a job whose caller stopped listening goes."""


def _next_end(inbox: queue.Queue) -> tuple[int, Any]:
    """The next (position, end) a call's inbox gets; waits in short slices, so that Ctrl-C and
    SIGTERM stay deliverable to the waiting thread."""
    while True:
        try:
            return inbox.get(timeout=0.5)
        except queue.Empty:
            continue
