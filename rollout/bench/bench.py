"""`tau2-rollout bench [out=bench.json] [quick=true] [rows=[P1,P7]] [p6_sizes=[1000,5000]]`: the rollout system against its baselines.

Each row runs the baseline side by side in the same run and reports the median of
several repetitions; the scripted model server runs in a separate process.

  P1  environment-side cost per episode (gold actions, zero-latency model): ours
      (LocalSession) vs tau2's AgentGymEnv driven with the same actions
  P2  LLM-bound throughput (200 ms per completion; 8/32/64 episodes in flight): ours (one
      process, and on Ray with 2 workers) vs the ideal N / (completions per episode x
      latency) and vs `tau2 run --max-concurrency N`
  P3  Ray fan-out (2 workers) vs the same episodes in one process with plain asyncio
  P4  memory per in-flight airline episode vs the airline DB's in-memory size (rollout/bench/memory.py)
  P5  aenv backend: starting an episode on a reused instance vs on a fresh server
  P6  a sweep's cost as it grows (rollout/bench/scale.py): time, driver memory, bytes,
      resume, summary and report at 1,000 / 5,000 / 20,000 episodes (`p6_sizes`)
  P7  rollout CPU per model completion per domain and in-flight level, the scripted server's
      CPU apart, and a profile split by component (rollout/bench/cpu.py)
  P8  the training path: CPU per completion through `Tau2Agent.run` (as AReaL calls it) beside
      the sweep path, and episode start on aenv through it vs a fresh server (rollout/bench/training.py)
  P9  HTTP client CPU per chat request: fast_http vs httpx, aiohttp and openai (rollout/bench/http_ab.py)
  P10 the rollout pool with token capture on vs off at 64 / 256 in flight, and the driver's cost
      of `stream_groups` vs `run` (rollout/bench/pool_training.py)
  P11 token-in vs chat capture through the pool at 64 in flight on Qwen3 (thinking on, off) and
      Qwen2.5 templates: throughput, CPU per completion, split boundaries (rollout/bench/token_in.py)

Keys: `out` (default bench.json), `quick` (true: tiny sizes, a smoke run, not a measurement),
`rows` (a subset, e.g. `rows=[P1,P3]`; CPU is P7; default: all), `p6_sizes` (P6's sweep sizes
in episodes; default [1000,5000,20000], quick: [4,8]).

`python -m rollout.bench.table bench.json` prints the performance table of docs/performance.md.
Exit status: 0 written; 2 bad input.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Optional

from rollout.agent.episode import EpisodeSpec, check_episode
from rollout.agent.runner import EpisodeRunner
from rollout.bench.baselines import gold_script, play_in_gym, run_tau2_runner
from rollout.bench.common import episode_config, scripted_server
from rollout.bench.cpu import bench_p7
from rollout.bench.http_ab import bench_http_ab
from rollout.bench.memory import bench_p4
from rollout.bench.pool_training import bench_p10
from rollout.bench.scale import DEFAULT_SIZES, bench_p6
from rollout.bench.token_in import bench_p11
from rollout.bench.training import bench_p8
from rollout.core.command import CommandArgs, parse_args
from rollout.core.failures import InvalidInput
from rollout.env.domains import load_domain

DOMAINS = ("airline", "retail", "telecom")
ROWS = ("P1", "P2", "P3", "P4", "P5", "P6", "P7", "P8", "P9", "P10", "P11")
ROW_ALIASES = MappingProxyType({"CPU": "P7"})
QUICK_P6_SIZES = (4, 8)


@dataclass
class BenchArgs(CommandArgs):
    """The command's arguments (see module doc)."""

    out: str = "bench.json"
    quick: bool = False
    rows: list[str] = field(default_factory=lambda: list(ROWS))
    p6_sizes: Optional[list[int]] = None


def selected_rows(args: BenchArgs) -> set[str]:
    """The rows to run (aliases resolved). Raises InvalidInput for an unknown row or a bad size."""
    rows = {ROW_ALIASES.get(r.upper(), r.upper()) for r in args.rows}
    unknown = sorted(rows - set(ROWS))
    if unknown or not rows:
        raise InvalidInput(f"rows={args.rows}: valid rows: {', '.join(ROWS)} (CPU = P7), at least one")
    if args.p6_sizes is not None and (not args.p6_sizes or min(args.p6_sizes) < 1):
        raise InvalidInput(f"p6_sizes={args.p6_sizes}: valid: a list of integers >= 1")
    return rows


# ---- P1 -------------------------------------------------------------------------------------
async def _ours_env_side(cfg, domain: str, task_id: str) -> float:
    """Seconds for the environment side of one episode driven directly with the gold actions."""
    from rollout.core.clients import make_client
    from rollout.env.local import LocalSession
    from rollout.env.protocol import RawToolCall, ResetRequest
    from rollout.scripted.policies import CLOSING

    client = make_client(cfg.user_llm, role="user_llm")
    session = LocalSession(user_client=client, user_model=cfg.user_llm.model, user_cfg=cfg.user_llm)
    script = gold_script(load_domain(domain).task(task_id), solo=False)
    start = time.perf_counter()
    await session.reset(ResetRequest(domain=domain, task_id=task_id, solo=False, episode_id="bench"))
    for i, action in enumerate(script):
        if "tool" in action:
            await session.agent_step(None, [RawToolCall(f"c{i}", action["tool"], json.dumps(action["arguments"]))])
        else:
            await session.agent_step(action["text"], [])
    if session.termination is None:
        await session.agent_step(CLOSING, [])
    scored = await session.finish()
    elapsed = time.perf_counter() - start
    await client.close()
    assert scored.reward == 1.0, (domain, task_id, scored.reward)
    return elapsed


def bench_p1(url: str, tasks: int, reps: int) -> dict:
    out = {}
    for domain in DOMAINS:
        ids = load_domain(domain).task_ids()[:tasks]
        cfg = episode_config(url)
        asyncio.run(_ours_env_side(cfg, domain, ids[0]))  # warm: domain loaded, caches filled
        ours, base = [], []
        for _ in range(reps):
            for task_id in ids:
                ours.append(asyncio.run(_ours_env_side(cfg, domain, task_id)))
                script = gold_script(load_domain(domain).task(task_id), solo=False)
                start = time.perf_counter()
                reward, _ = play_in_gym(domain, task_id, script, solo=False, user_url=url)
                base.append(time.perf_counter() - start)
                assert reward == 1.0, (domain, task_id, reward)
        o, b = statistics.median(ours), statistics.median(base)
        out[domain] = {"ours_s": round(o, 4), "baseline_s": round(b, 4), "speedup": round(b / o, 1)}
    return out


# ---- P2 -------------------------------------------------------------------------------------
P2_DOMAIN = "telecom"


async def _throughput(cfg, specs, in_flight: int) -> tuple[float, int]:
    """(episodes per second, completions) with at most `in_flight` episodes at once."""
    episodes = [check_episode(s, cfg) for s in specs]
    async with EpisodeRunner(cfg, slots=in_flight) as runner:
        await runner.run(episodes[0])  # warm up the clients and the domain
        start = time.perf_counter()
        results = await runner.run_many(episodes)
        elapsed = time.perf_counter() - start
    assert all(r.reward == 1.0 for r in results), [r.failure for r in results if r.reward != 1.0][:3]
    completions = sum(r.usage["agent"]["requests"] + r.usage["user"].get("requests", 0) for r in results)
    return len(results) / elapsed, completions


def _ray_throughput(cfg, specs, in_flight: int, workers: int = 2) -> float:
    """Episodes per second of the same episodes on Ray (the rollout pool, `workers` actors on a
    local Ray of `workers` CPUs, which the pool starts and stops)."""
    from rollout.pool import RolloutPool

    ray = {"num_workers": workers, "slots_per_worker": max(1, in_flight // workers), "num_cpus": workers, "object_store_mb": 256}
    with RolloutPool(cfg, ray=ray) as pool:
        pool.start([P2_DOMAIN])
        pool.run(_requests(specs[:workers]))  # warm: clients, caches
        start = time.perf_counter()
        out = pool.run(_requests(specs))
        elapsed = time.perf_counter() - start
    assert all(t.reward == 1.0 for t in out), [t.failure for t in out if t.reward != 1.0][:3]
    return len(specs) / elapsed


def _requests(specs):
    from rollout.pool import RolloutRequest

    return [RolloutRequest(s.domain, s.task_id, s.sample, seed=s.seed, solo=s.solo) for s in specs]


def bench_p2(sizes: list[int], latency: float, episodes_per_slot: int, with_tau2: bool, with_ray: bool = True) -> dict:
    out = {}
    ids = load_domain(P2_DOMAIN).task_ids()
    with scripted_server(latency) as url:
        for n in sizes:  # n tasks x episodes_per_slot samples, the same episodes for both systems
            specs = [EpisodeSpec(P2_DOMAIN, ids[i], sample=k) for k in range(episodes_per_slot) for i in range(n)]
            count = len(specs)
            eps, completions = asyncio.run(_throughput(episode_config(url), specs, n))
            ideal = n / (completions / count * latency)
            row = {
                "eps_per_s": round(eps, 3),
                "ideal_eps_per_s": round(ideal, 3),
                "fraction_of_ideal": round(eps / ideal, 3),
                "completions_per_episode": round(completions / count, 2),
            }
            if with_ray:  # the same episodes fanned out to 2 worker processes
                ray_eps = _ray_throughput(episode_config(url), specs, n)
                row["ray_eps_per_s"] = round(ray_eps, 3)
                row["ray_fraction_of_ideal"] = round(ray_eps / ideal, 3)
            if with_tau2:
                tau2 = run_tau2_runner(P2_DOMAIN, ids[:n], url=url, concurrency=n, trials=episodes_per_slot)
                row["tau2_runner_eps_per_s"] = round(tau2["eps_per_s"], 3) if tau2["eps_per_s"] else None
                if tau2.get("error"):
                    row["tau2_runner_error"] = tau2["error"]
            out[str(n)] = row
    return out


# ---- P3 -------------------------------------------------------------------------------------
def bench_p3(episodes: int, latency: float, reps: int) -> dict:
    from rollout.pool import RolloutPool

    ids = load_domain("telecom").task_ids()
    specs = [EpisodeSpec("telecom", ids[i % len(ids)], sample=i // len(ids)) for i in range(episodes)]
    ray_s, local_s = [], []
    with scripted_server(latency) as url:
        cfg = episode_config(url)
        ray = {"num_workers": 2, "slots_per_worker": 16, "num_cpus": 2, "object_store_mb": 256}
        with RolloutPool(cfg, ray=ray) as pool:  # a local Ray the pool starts and stops
            pool.start(["telecom"])
            pool.run(_requests(specs[:8]))  # warm-up, as the in-process runs warm up too
            for _ in range(reps):
                start = time.perf_counter()
                pool.run(_requests(specs))
                ray_s.append(time.perf_counter() - start)
        for rep in range(reps):

            async def local():  # noqa: B023
                episodes = [check_episode(s, cfg) for s in specs]
                async with EpisodeRunner(cfg, slots=32) as runner:
                    await runner.run(episodes[0])
                    start = time.perf_counter()
                    await runner.run_many(episodes)
                    return time.perf_counter() - start

            local_s.append(asyncio.run(local()))
    ray_med, local_med = statistics.median(ray_s), statistics.median(local_s)
    return {"ray_s": round(ray_med, 3), "inprocess_s": round(local_med, 3), "overhead": round(ray_med / local_med - 1, 3)}


# ---- P5 -------------------------------------------------------------------------------------
def bench_p5(reps: int) -> dict:
    from rollout.env.aenv.session import open_aenv_session
    from rollout.env.protocol import ResetRequest

    async def main(url):
        cfg = episode_config(url, "env.backend=aenv")
        request = ResetRequest(domain="telecom", task_id=load_domain("telecom").task_ids()[0], solo=True)
        fresh, reused = [], []
        for _ in range(reps):
            start = time.perf_counter()
            session = await open_aenv_session(cfg, [])
            await session.reset(request)
            fresh.append(time.perf_counter() - start)
            for _ in range(5):
                start = time.perf_counter()
                await session.reset(request)
                reused.append(time.perf_counter() - start)
            await session.close()
        return statistics.median(reused), statistics.median(fresh)

    with scripted_server() as url:
        reused_s, fresh_s = asyncio.run(main(url))
    return {"reused_s": round(reused_s, 4), "fresh_s": round(fresh_s, 3), "speedup": round(fresh_s / reused_s, 1)}


# ---- driver -----------------------------------------------------------------------------------
def run(argv: list[str]) -> int:
    """The command (see module doc): its exit status; bad input raises InvalidInput."""
    args = parse_args(argv, BenchArgs)
    rows = selected_rows(args)
    q = args.quick
    report: dict = {"machine": machine(), "quick": q}
    with scripted_server() as url:
        if "P1" in rows:
            report["P1"] = bench_p1(url, tasks=1 if q else 4, reps=1 if q else 3)
            _print("P1", report["P1"])
    if "P2" in rows:
        report["P2"] = bench_p2([2] if q else [8, 32, 64], latency=0.2, episodes_per_slot=1 if q else 3, with_tau2=True)
        _print("P2", report["P2"])
    if "P3" in rows:
        report["P3"] = bench_p3(episodes=8 if q else 128, latency=0.05, reps=1 if q else 3)
        _print("P3", report["P3"])
    if "P4" in rows:
        report["P4"] = bench_p4(in_flight=4 if q else 32)
        _print("P4", report["P4"])
    if "P5" in rows:
        report["P5"] = bench_p5(reps=1 if q else 3)
        _print("P5", report["P5"])
    if "P6" in rows:
        sizes = args.p6_sizes or list(QUICK_P6_SIZES if q else DEFAULT_SIZES)
        report["P6"] = bench_p6(sizes, tasks=4 if q else 50)
        _print("P6", report["P6"])
    if "P7" in rows:
        report["P7"] = bench_p7(in_flight=(2,), min_episodes=2, profile_in_flight=2, profile_episodes=2) if q else bench_p7()
        _print("P7", report["P7"])
    if "P8" in rows:
        report["P8"] = bench_p8(quick=q)
        _print("P8", report["P8"])
    if "P9" in rows:
        report["P9"] = bench_http_ab(requests=32, reps=1) if q else bench_http_ab()
        _print("P9", report["P9"])
    if "P10" in rows:
        report["P10"] = bench_p10(quick=q)
        _print("P10", report["P10"])
    if "P11" in rows:
        report["P11"] = bench_p11(quick=q)
        _print("P11", report["P11"])
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


def machine() -> dict:
    """What the figures were measured on: CPUs, memory, CPU model, Python, and when."""
    info = {"cpus": os.cpu_count(), "python": sys.version.split()[0], "date": time.strftime("%Y-%m-%d", time.gmtime())}
    try:
        with open("/proc/meminfo") as f:
            info["memory_gib"] = round(int(f.readline().split()[1]) / 2**20, 1)
        with open("/proc/cpuinfo") as f:
            info["cpu_model"] = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), None)
    except OSError:
        pass
    return info


def _print(row: str, data: dict) -> None:
    print(f"{row}: {json.dumps(data)}", flush=True)
