"""P10: the rollout pool as a trainer uses it: token capture on vs off, and `stream_groups`' cost.

- `capture`: at 64 and 256 episodes in flight (2 Ray workers; airline, retail and telecom tasks
  in groups of 8 samples), the same batch through a pool with `llm.capture=token_ids` and through
  one with capture off, alternately, `reps` times. The scripted server (its own process) answers
  after a fixed latency per completion, in vLLM's token mode when asked; the latency is set so
  that both levels ask for ~128 completions/s, within what two cores serve. Per run:
  episodes per second, the rollout system's CPU per completion (every process on the machine
  but the model server's: the driver, the Ray workers, Ray's own daemons), the driver's CPU per
  episode and the model server's CPU per completion (what the double costs, apart). Goal:
  capture costs <= 10 % of throughput.
- `stream_groups`: the driver process's CPU per episode (its pump thread included) for one batch
  handed back by `run` and by `stream_groups`, same pool, capture on, alternately.
"""

from __future__ import annotations

import os
import statistics
import time

from rollout.bench.common import episode_config, scripted_process
from rollout.env.domains import BENCHMARK_DOMAINS, load_domain

DOMAINS = BENCHMARK_DOMAINS
GROUP = 8
LOCAL_RAY = {"num_cpus": 2, "object_store_mb": 512}  # the local Ray each measured pool starts (and stops on close)
THROUGHPUT_GOAL_RATIO = 0.90  # capture on / off, episodes per second
LEVELS = ((64, 0.5), (256, 2.0))  # (episodes in flight, seconds per completion): ~128 completions/s each


def machine_busy_s() -> float:
    """CPU seconds the whole machine has been busy (all cores), from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def batch(episodes: int, weight_version: int = 1) -> list:
    """`episodes` requests in groups of GROUP samples, tasks taken round-robin over DOMAINS."""
    from rollout.pool import RolloutRequest

    ids = {d: load_domain(d).task_ids() for d in DOMAINS}
    out = []
    for g in range(episodes // GROUP):
        domain = DOMAINS[g % len(DOMAINS)]
        task = ids[domain][(g // len(DOMAINS)) % len(ids[domain])]
        out += [RolloutRequest(domain, task, sample=k, weight_version=weight_version) for k in range(GROUP)]
    return out


def _pool(url: str, capture: bool, in_flight: int):
    from rollout.pool import RolloutPool

    cfg = episode_config(url, "sampling=train", *(["llm.capture=token_ids"] if capture else []))
    pool = RolloutPool(cfg, ray={"num_workers": 2, "slots_per_worker": in_flight // 2, **LOCAL_RAY}, retry={"max_attempts": 1})
    pool.start(DOMAINS)
    pool.run(batch(GROUP * 2))  # warm: clients, caches, the tokenizer on the server side
    return pool


def _timed(server, pool, requests, call: str = "run") -> dict:
    served0, server0, busy0, driver0 = server.completions(), server.cpu_s(), machine_busy_s(), time.process_time()
    start = time.perf_counter()
    if call == "run":
        out = pool.run(requests)
    else:
        out = [t for group in pool.stream_groups(requests) for t in group]
    elapsed = time.perf_counter() - start
    driver = time.process_time() - driver0
    served, server_cpu = server.completions() - served0, server.cpu_s() - server0
    rollout_cpu = machine_busy_s() - busy0 - server_cpu
    bad = [t.failure for t in out if t.reward != 1.0]
    assert not bad, bad[:3]
    return {
        "eps_per_s": len(out) / elapsed,
        "rollout_ms_per_completion": 1000 * rollout_cpu / served,
        "driver_ms_per_episode": 1000 * driver / len(out),
        "completions": served,
        "episodes": len(out),
        "server_ms_per_completion": 1000 * server_cpu / served,
        "captured_calls": sum(len(t.turns) for t in out if t.turns),
    }


def _medians(runs: dict[str, list[dict]], keys: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """{mode: {key: median over that mode's runs}} (rounded to 3 places)."""
    return {mode: {k: round(statistics.median(r[k] for r in rs), 3) for k in keys} for mode, rs in runs.items()}


def bench_capture(levels=LEVELS, waves: int = 2, reps: int = 2) -> dict:
    out = {}
    for in_flight, latency in levels:
        requests = batch(in_flight * waves)
        runs: dict[str, list[dict]] = {"off": [], "on": []}
        with scripted_process(latency) as server:
            for _ in range(reps):  # alternate, so drift in the machine's speed hits both alike
                for mode in ("off", "on"):
                    with _pool(server.url, mode == "on", in_flight) as pool:
                        runs[mode].append(_timed(server, pool, requests))
                        if mode == "on":
                            capture = pool.stats()["capture"]
        row: dict = _medians(
            runs, ("eps_per_s", "rollout_ms_per_completion", "driver_ms_per_episode", "server_ms_per_completion")
        )
        row["throughput_ratio"] = round(row["on"]["eps_per_s"] / row["off"]["eps_per_s"], 3)
        row["cpu_ratio"] = round(row["on"]["rollout_ms_per_completion"] / row["off"]["rollout_ms_per_completion"], 3)
        row["latency_s"] = latency
        row["episodes"] = len(requests)
        row["completions_per_episode"] = round(runs["on"][0]["completions"] / runs["on"][0]["episodes"], 1)
        row["capture"] = {k: capture.get(k) for k in ("calls", "captured", "clean_rate", "trajectories_clean", "trajectories")}
        out[str(in_flight)] = row
    return {
        "levels": out,
        "goal_throughput_ratio": THROUGHPUT_GOAL_RATIO,
        "throughput_ratio_min": min(r["throughput_ratio"] for r in out.values()),
    }


def bench_stream_groups(in_flight: int = 64, latency: float = 0.2, waves: int = 2, reps: int = 3) -> dict:
    requests = batch(in_flight * waves)
    runs: dict[str, list[dict]] = {"run": [], "stream_groups": []}
    with scripted_process(latency) as server:
        with _pool(server.url, True, in_flight) as pool:
            for _ in range(reps):
                for call in runs:
                    runs[call].append(_timed(server, pool, requests, call))
    row: dict = _medians(runs, ("driver_ms_per_episode", "eps_per_s"))
    row["driver_ratio"] = round(row["stream_groups"]["driver_ms_per_episode"] / row["run"]["driver_ms_per_episode"], 3)
    return {"in_flight": in_flight, "episodes": len(requests), "latency_s": latency, **row}


def bench_p10(quick: bool = False) -> dict:
    if quick:
        return {
            "capture": bench_capture(levels=((8, 0.05),), waves=1, reps=1),
            "stream_groups": bench_stream_groups(in_flight=8, latency=0.05, waves=1, reps=1),
        }
    return {"capture": bench_capture(), "stream_groups": bench_stream_groups()}


__all__ = ["bench_p10", "machine_busy_s"]
