"""The pool's Ray: the one place that joins or starts it, fits the workers on its CPUs and counts them.

- `connect(ray_cfg)`: nothing when this process is connected to a Ray already (a trainer's);
  else joins the cluster at `ray.address` (`auto`: the one this process runs in, e.g. inside
  `ray job submit`; a `host:port` head must answer a TCP connect first, else `RayUnreachable`,
  where Ray itself would retry for minutes) or starts a local Ray (`ray.num_cpus`,
  `ray.object_store_mb`, the process defaults in every process it starts). Signals are held
  while Ray starts, and the Python handlers this process had for SIGINT and SIGTERM are kept
  (Ray's start installs its own SIGTERM handler). Returns whether it connected, in which case
  the caller shuts Ray down again (`disconnect`).
- `check_local_fit(ray_cfg)`: before Ray starts, whether the local Ray it would start could ever
  place the workers (a cluster is checked once joined).
- `worker_count(cfg, ray_cfg, cpus, episodes)`: the workers to start on a Ray of `cpus` CPUs
  (checked to fit): `ray.num_workers`, else one per `ray.cpus_per_worker` CPUs and no more
  than `episodes` fill (`ray.slots_per_worker` each) when the caller knows how many it will
  run; never more than the smallest endpoint cap, so that each worker's share
  (`worker_config`) is at least one request.
"""

from __future__ import annotations

import dataclasses
import math
import os
import socket
import sys
from typing import Optional

from rollout.core.config import RolloutConfig
from rollout.core.process_env import child_env, held_signals, ray_shutdown
from rollout.pool.config import RayConfig, check_fits

REACHABLE_TIMEOUT_S = 10.0


class RayUnreachable(RuntimeError):
    """`ray.address` names a head this process cannot reach."""


def connect(r: RayConfig) -> bool:
    """Join or start Ray for the pool (see module doc); True when this call connected."""
    import ray

    if ray.is_initialized():
        return False
    if r.address:
        check_reachable(r.address)
    kept = _python_handlers()
    if r.address:
        options = {"address": r.address}
    else:
        options = {
            "address": "local",
            "num_cpus": r.num_cpus,
            "include_dashboard": False,
            "object_store_memory": r.object_store_mb * 2**20,
            "runtime_env": {"env_vars": child_env()},
        }
    with held_signals():  # Ray's threads start with INT and TERM blocked: they reach the main thread
        ray.init(**options)
    _restore(kept)
    return True


def disconnect() -> None:
    """Shut down the Ray `connect` connected to (signals held, see core/process_env.py)."""
    ray_shutdown()


def cluster_cpus() -> float:
    """The CPUs of the Ray this process is connected to."""
    import ray

    return float(ray.cluster_resources().get("CPU", 0))


def check_reachable(address: str, timeout_s: float = REACHABLE_TIMEOUT_S) -> None:
    """A `host:port` head must answer a TCP connect within `timeout_s`; `auto` and `ray://`
    addresses are left to Ray. Raises RayUnreachable."""
    host, sep, port = address.rpartition(":")
    if not sep or "://" in address or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise RayUnreachable(f"the Ray head at ray.address={address} cannot be reached: {type(e).__name__}: {e}") from None


def check_local_fit(r: RayConfig) -> None:
    """Whether the local Ray `connect` would start can place the workers (nothing to check when
    `ray.address` is set or this process is connected to a Ray already). Raises InvalidInput."""
    ray = sys.modules.get("ray")  # not imported: not connected (and no need to import it to know)
    if r.address or (ray is not None and ray.is_initialized()):
        return
    cpus = r.num_cpus if r.num_cpus is not None else (os.cpu_count() or 1)
    check_fits(r, cpus, f"the local Ray has {cpus} CPUs (ray.num_cpus={r.num_cpus})")


def worker_count(cfg: RolloutConfig, r: RayConfig, cpus: float, episodes: Optional[int] = None) -> int:
    """How many workers to start on a Ray of `cpus` CPUs (see module doc). Raises InvalidInput
    when `ray.num_workers` x `ray.cpus_per_worker` cannot fit."""
    check_fits(r, cpus, f"the Ray cluster has {cpus:g} CPUs in total")
    count = r.num_workers
    if count is None:
        count = max(1, int(cpus // r.cpus_per_worker))
        if episodes is not None:
            count = min(count, max(1, math.ceil(episodes / r.slots_per_worker)))
    caps = [c for c in (cfg.llm.max_concurrency, cfg.user_llm.max_concurrency) if c > 0]
    return max(1, min([count, *caps]))


def worker_config(cfg: RolloutConfig, index: int, workers: int) -> RolloutConfig:
    """Worker `index`'s config: each pool-wide endpoint cap split exactly among `workers`
    (the shares sum to the cap, so the cap holds across the pool; 0 stays no cap)."""

    def share(total: int) -> int:
        return 0 if total <= 0 else total // workers + (1 if index < total % workers else 0)

    return dataclasses.replace(
        cfg,
        llm=dataclasses.replace(cfg.llm, max_concurrency=share(cfg.llm.max_concurrency)),
        user_llm=dataclasses.replace(cfg.user_llm, max_concurrency=share(cfg.user_llm.max_concurrency)),
    )


def _python_handlers() -> dict:
    """This process's Python handlers of SIGINT and SIGTERM (main thread only: none elsewhere)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: h for sig in (signal.SIGINT, signal.SIGTERM) if callable(h := signal.getsignal(sig))}


def _restore(handlers: dict) -> None:
    import signal

    for sig, handler in handlers.items():
        if signal.getsignal(sig) is not handler:
            signal.signal(sig, handler)
