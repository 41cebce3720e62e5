"""The rollout pool: a Python API over Ray actors that run TAU2 episodes for training and evaluation.

    pool = RolloutPool(["llm.capture=token_ids", "user_llm.base_url=http://sim:8000/v1"], ray={"num_workers": 4})
    batch = [RolloutRequest("airline", t, sample=k, weight_version=step,
                            policy=Endpoint("http://vllm:8000/v1", model="policy")) for t in tasks for k in range(8)]
    for group in pool.stream_groups(batch):        # the 8 samples of one task, as soon as they are all done
        train_on(group)
    pool.close()

Created on the Ray this process is connected to (the caller's, e.g. a trainer's)
or, when none is, on the cluster at `ray.address` or a local Ray it starts (and shuts down on
`close`); the pool is the one place that joins or starts Ray, fits its workers on the cluster's
CPUs and counts them (rollout/pool/cluster.py). Its workers start on
the first call and stay warm across calls; one thread of the pool feeds them and collects
what they return, so calls may overlap (a trainer's concurrent agent loops each asking for one
episode). Each call has an async twin for trainers' event loops (`arun`, `astream`,
`astream_groups`):

- `run(requests)`: the trajectories in request order;
- `stream(requests)`: each trajectory as it finishes;
- `stream_groups(requests, extra_samples=k)`: each complete group (all samples of one
  `group_id`) as soon as it is; with `k` > 0 the pool runs k extra samples of every group and
  yields the first n scored ones (n: the samples asked for), cancelling the rest. Faster
  episodes are then somewhat over-represented in a group, the usual price of redundancy;
- `cancel(group_id)`: the group's queued requests (in every call) end at once, its running
  ones are cancelled (they end as `cancelled`, never as samples);
- `stats()`: live counters (ended, failures by class, retries, in flight, workers, the
  token-capture clean/split rates, aborted calls continued or restarted);
- `weight_update(version)` (a context manager: `pause()`, the body swaps the engine's weights,
  `set_weight_version(version)`, `resume()`): episodes run on through a trainer's weight swap;
  calls the engine aborts are continued (token-in) or sent again (chat), and each completion
  token records the weight version that produced it.

A call whose caller stops listening (an exception, Ctrl-C, a generator closed early) cancels
its requests that have not ended; a call's own cancels (that, and `stream_groups`' stragglers)
touch only its own requests. Requests are checked when submitted (rollout/pool/checks.py, then
their episode against its domain and the config, once: `check(requests)` does it ahead of a
call and returns `ValidRequest`s, which the calls take as they are): a bad one raises
InvalidInput naming the field, before any of the call's episodes runs. A request's seed is derived from (the pool's seed, domain,
task id, sample) unless given: requests that repeat all four repeat the seed (a warning says
so); give each sample of a group its own `sample`. The pool's first call asks its workers
whether they can read the keys the config names (and each new `Endpoint.api_key_env`), and
refuses the call once if one cannot. After `close()` the pool refuses calls. Every request ends as a `Trajectory`: tau2's outcome (or a
classified failure after the retries of `retry.max_attempts`) and, with `llm.capture` on, the
tokens of each policy call and the stitched view (rollout/trajectory/).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import queue
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from typing import Any, Optional, Union

from rollout.core.config import RolloutConfig, load_config, validate
from rollout.core.failures import InvalidInput
from rollout.env.task_sets import register_task_sets
from rollout.pool.checks import check_requests
from rollout.pool.cluster import check_local_fit, cluster_cpus, connect, disconnect, worker_count
from rollout.pool.config import RayConfig, RetryConfig, check_pool
from rollout.pool.dispatch import Dispatcher, NoWorkersLeft
from rollout.pool.group_flow import GroupFlow
from rollout.pool.requests import Endpoint, RolloutRequest, ValidRequest
from rollout.pool.stats import PoolStats
from rollout.pool.weights import WeightState
from rollout.trajectory import Trajectory

log = logging.getLogger(__name__)
POLL_S = 0.1
Requests = Iterable[Union[RolloutRequest, ValidRequest]]  # ValidRequest: checked by this pool's `check` already
__all__ = ["NoWorkersLeft", "RolloutPool"]


def _typed(cls, value, name: str):
    """`value` as a `cls` (None: the defaults; a dict: its fields). Raises InvalidInput naming the valid keys."""
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    valid = ", ".join(f.name for f in dataclasses.fields(cls))
    if isinstance(value, Mapping) and not isinstance(value, dict):  # e.g. an OmegaConf DictConfig (verl's YAML)
        value = {str(k): value[k] for k in value}
    if not isinstance(value, dict):
        raise InvalidInput(f"{name}= is {type(value).__name__}: valid: a dict with keys {valid}, or a {cls.__name__}")
    unknown = sorted(str(k) for k in value if k not in {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise InvalidInput(f"{name}= has unknown keys {', '.join(unknown)}: valid: {valid}")
    return cls(**value)


class RolloutPool:
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
        self.ray_cfg, self.retry = _typed(RayConfig, ray, "ray"), _typed(RetryConfig, retry, "retry")
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
                while True:
                    try:
                        i, item = inbox.get(timeout=0.5)  # a timeout keeps Ctrl-C / SIGTERM deliverable
                        break
                    except queue.Empty:
                        continue
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
                while True:
                    try:
                        position, item = inbox.get(timeout=0.5)  # a timeout keeps Ctrl-C / SIGTERM deliverable
                        break
                    except queue.Empty:
                        continue
                received += 1
                group = self._ended(flow, ids, position, item)
                if group is not None:
                    yield group
                    self._feed(flow, ids, lambda i, item: inbox.put((i, item)))  # the trainer may have moved the version
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

    def _ended(self, flow: GroupFlow, ids: list[int], position: int, item: Any) -> Optional[list[Trajectory]]:
        """One end of a stream_groups call: the group it completes (if any), stragglers cancelled,
        stale groups counted and regenerated."""
        if isinstance(item, BaseException):
            raise item
        stale = flow.stale_groups
        group = flow.ended(position, item)
        if flow.stale_groups > stale:
            self.counters.stale_group()
        cancel = [ids[p] for p in flow.to_cancel()]
        if cancel and self.dispatcher is not None:
            self.dispatcher.cancel_jobs(cancel)
        return group

    def cancel(self, group_id: str) -> None:
        """Cancel a group's queued and running requests (safe from any thread)."""
        if self.dispatcher is not None:
            self.dispatcher.cancel_group(group_id)

    def stats(self) -> dict[str, Any]:
        """Live counters (see PoolStats), and the weight state (`weight_version`, `paused`)."""
        state = {"weight_version": self._weights.version, "paused": self._weights.paused}
        return {**self.counters.snapshot(self.dispatcher), **state}

    # ---- the policy's weights ----------------------------------------------------------------
    @property
    def weight_version(self) -> Optional[int]:
        """The weight version the workers were last told is served (None until one is set)."""
        return self._weights.version

    def pause(self) -> None:
        """Hold every policy call not yet sent, in every worker, until `resume` (see
        `weight_update`); returns once every placed worker holds them. Calls in flight run on."""
        self._weights_changed(paused=True)

    def resume(self) -> None:
        """Let held and new policy calls go again."""
        self._weights_changed(paused=False)

    def set_weight_version(self, version: int, *, policy: Optional[Endpoint] = None) -> None:
        """The weight version served from now on: tokens of policy calls sent from now on are
        recorded with it (where the engine reports none). `policy`: the endpoint every policy call
        sent from now on goes to, in running and new episodes (None keeps the one in force).
        Raises InvalidInput naming a bad `version` (an integer, not below the current one) or
        `policy` (an Endpoint)."""
        self._check_weights(version, policy)
        self._weights_changed(version=version, policy=policy)

    @contextlib.contextmanager
    def weight_update(self, version: int, *, policy: Optional[Endpoint] = None) -> Iterator[None]:
        """`with pool.weight_update(v): <swap the engine's weights>`: pause, the body, then
        `set_weight_version(v, policy=policy)` and resume. An exception in the body resumes
        without setting the version. Bad input raises InvalidInput before anything is paused."""
        self._check_weights(version, policy)
        self.pause()
        try:
            yield
            self.set_weight_version(version, policy=policy)
        finally:
            self.resume()

    def _check_weights(self, version: Any, policy: Any) -> None:
        if self._closed:
            raise RuntimeError("this RolloutPool is closed: create a new one")
        self._weights.check(version, policy)

    def _weights_changed(self, *, paused: Optional[bool] = None, version: Optional[int] = None, policy=None) -> None:
        """Record the weight state and tell the workers (once started; those started later are
        told when they start)."""
        if self._closed:
            raise RuntimeError("this RolloutPool is closed: create a new one")
        with self._start_lock:  # not while workers start: they are told the state the pool has then
            if policy is not None and self.dispatcher is not None and policy.api_key_env not in (None, *self._keys_read):
                self._check_keys(self.dispatcher, [policy.api_key_env])
            if paused is not None:
                self._weights.paused = paused
            if version is not None:
                self._weights.version = version
                self._weights.policy = policy or self._weights.policy
            if self.dispatcher is not None:
                self.dispatcher.broadcast(self._weights.calls(started=True))

    # ---- async twins -----------------------------------------------------------------------
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
                group = self._ended(flow, ids, *(await inbox.get()))
                if group is not None:
                    yield group
                    self._feed(flow, ids, deliver)
        finally:
            self._cancel_unfinished(ids)


def _ignore(item: Any) -> None:
    """Where the end of a job whose caller stopped listening goes."""
