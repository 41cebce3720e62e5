"""The benchmark's rows (P1-P12: what each measures is in the `bench` command's help and
docs/performance.md): `run_rows(rows, quick=..., p6_sizes=..., on_row=...)` runs the selected
rows, hands each row's figures to `on_row` as it finishes, and returns the whole report with
the machine it ran on.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Optional

from rollout.agent.episode import EpisodeSpec, check_episode
from rollout.agent.runner import EpisodeRunner
from rollout.bench.aiohttp_transport import TRANSPORTS, http_transport, ray_transport
from rollout.bench.async_rl import bench_p12
from rollout.bench.baselines import gold_script, play_in_gym, run_tau2_runner
from rollout.bench.common import episode_config, scripted_server
from rollout.bench.cpu import bench_p7
from rollout.bench.http_ab import bench_http_ab
from rollout.bench.memory import bench_p4
from rollout.bench.pool_training import bench_p10
from rollout.bench.scale import DEFAULT_SIZES, bench_p6
from rollout.bench.token_in import bench_p11
from rollout.bench.training import bench_p8
from rollout.core.process_env import settle_heap
from rollout.env.domains import load_domain

DOMAINS = ("airline", "retail", "telecom")
ROWS = ("P1", "P2", "P3", "P4", "P5", "P6", "P7", "P8", "P9", "P10", "P11", "P12")
QUICK_P6_SIZES = (4, 8)


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


async def _throughput(cfg, specs, in_flight: int) -> tuple[float, list[int]]:
    """(episodes per second, each episode's completions) with at most `in_flight` episodes at once."""
    episodes = [check_episode(s, cfg) for s in specs]
    async with EpisodeRunner(cfg, slots=in_flight) as runner:
        await runner.run(episodes[0])  # warm up the clients and the domain
        settle_heap()  # as the pool's workers do once warm
        start = time.perf_counter()
        results = await runner.run_many(episodes)
        elapsed = time.perf_counter() - start
    assert all(r.reward == 1.0 for r in results), [r.failure for r in results if r.reward != 1.0][:3]
    return len(results) / elapsed, [r.usage["agent"]["requests"] + r.usage["user"].get("requests", 0) for r in results]


def packing_bound(completions: list[int], in_flight: int, latency: float) -> float:
    """Episodes per second of a system with no overhead at all (every completion exactly
    `latency`) that starts the episodes in order, each as soon as one of `in_flight` slots is
    free: what the episodes' unequal lengths allow (the ideal assumes every slot busy to the end)."""
    slots = [0.0] * in_flight
    for c in completions:
        heapq.heapreplace(slots, slots[0] + c * latency)
    return len(completions) / max(slots)


def _ray_throughput(cfg, specs, in_flight: int, workers: int = 2, transport: str = "fast_http") -> float:
    """Episodes per second of the same episodes on Ray (the rollout pool, `workers` actors on a
    local Ray of `workers` CPUs, which the pool starts and stops), the workers' clients over
    `transport` (aiohttp_transport.TRANSPORTS)."""
    from rollout.pool import RolloutPool

    ray = {"num_workers": workers, "slots_per_worker": max(1, in_flight // workers), "num_cpus": workers, "object_store_mb": 256}
    with ray_transport(transport), RolloutPool(cfg, ray=ray) as pool:
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


def bench_p2(
    sizes: list[int],
    latency: float,
    episodes_per_slot: int,
    with_tau2: bool,
    with_ray: bool = True,
    transports: tuple[str, ...] = ("fast_http",),
) -> dict:
    """The P2 rows. Each transport of `transports` after the first (the product's, fast_http)
    runs the same episodes again with the clients over it, in one process and on Ray, in turn
    with the first (`row[transport]`, rollout/bench/aiohttp_transport.py)."""
    out = {}
    ids = load_domain(P2_DOMAIN).task_ids()
    with scripted_server(latency) as url:
        for level, n in enumerate(sizes):  # n tasks x episodes_per_slot samples, the same episodes for both systems
            specs = [EpisodeSpec(P2_DOMAIN, ids[i], sample=k) for k in range(episodes_per_slot) for i in range(n)]
            count = len(specs)
            runs = {}
            for transport in transports if level % 2 == 0 else transports[::-1]:  # in turn: drift hits both
                with http_transport(transport):
                    runs[transport] = asyncio.run(_throughput(episode_config(url), specs, n))
            eps, per_episode = runs[transports[0]]
            completions = sum(per_episode)
            ideal = n / (completions / count * latency)
            bound = packing_bound(per_episode, n, latency)
            row = {
                "eps_per_s": round(eps, 3),
                "ideal_eps_per_s": round(ideal, 3),
                "fraction_of_ideal": round(eps / ideal, 3),
                "completions_per_episode": round(completions / count, 2),
                "packing_bound_eps_per_s": round(bound, 3),
                "packing_bound_of_ideal": round(bound / ideal, 3),
                **{
                    t: {"eps_per_s": round(runs[t][0], 3), "fraction_of_ideal": round(runs[t][0] / ideal, 3)}
                    for t in transports[1:]
                },
            }
            if with_ray:  # the same episodes fanned out to 2 worker processes
                ray_eps = {}
                for transport in transports if level % 2 else transports[::-1]:
                    ray_eps[transport] = _ray_throughput(episode_config(url), specs, n, transport=transport)
                row["ray_eps_per_s"] = round(ray_eps[transports[0]], 3)
                row["ray_fraction_of_ideal"] = round(ray_eps[transports[0]] / ideal, 3)
                for t in transports[1:]:
                    row[t].update(ray_eps_per_s=round(ray_eps[t], 3), ray_fraction_of_ideal=round(ray_eps[t] / ideal, 3))
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
                    settle_heap()  # as the pool's workers do once warm
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
def run_rows(
    rows: set[str],
    *,
    quick: bool = False,
    p6_sizes: Optional[list[int]] = None,
    on_row: Optional[Callable[[str, dict], None]] = None,
    transports: tuple[str, ...] = TRANSPORTS,
) -> dict:
    """The report of the selected rows (`ROWS`), with `machine()`; `quick`: tiny sizes, a smoke
    run. `on_row(row, figures)` is called as each row finishes. P2 (in one process and on Ray)
    and P7 run with each of `transports` as the clients' HTTP transport (fast_http first, the
    product's)."""
    q = quick
    report: dict = {"machine": machine(), "quick": q}

    def done(row: str, figures: dict) -> None:
        report[row] = figures
        if on_row is not None:
            on_row(row, figures)

    with scripted_server() as url:
        if "P1" in rows:
            done("P1", bench_p1(url, tasks=1 if q else 4, reps=1 if q else 3))
    if "P2" in rows:
        sizes = [2] if q else [8, 32, 64]
        done("P2", bench_p2(sizes, latency=0.2, episodes_per_slot=1 if q else 3, with_tau2=True, transports=transports))
    if "P3" in rows:
        done("P3", bench_p3(episodes=8 if q else 128, latency=0.05, reps=1 if q else 3))
    if "P4" in rows:
        done("P4", bench_p4(in_flight=4 if q else 32))
    if "P5" in rows:
        done("P5", bench_p5(reps=1 if q else 3))
    if "P6" in rows:
        done("P6", bench_p6(p6_sizes or list(QUICK_P6_SIZES if q else DEFAULT_SIZES), tasks=4 if q else 50))
    if "P7" in rows:
        quick_p7 = {"in_flight": (2,), "min_episodes": 2, "profile_in_flight": 2, "profile_episodes": 2} if q else {}
        done("P7", bench_p7(transports=transports, **quick_p7))
    if "P8" in rows:
        done("P8", bench_p8(quick=q))
    if "P9" in rows:
        done("P9", bench_http_ab(requests=32, reps=1) if q else bench_http_ab())
    if "P10" in rows:
        done("P10", bench_p10(quick=q))
    if "P11" in rows:
        done("P11", bench_p11(quick=q))
    if "P12" in rows:
        done("P12", bench_p12(quick=q))
    return report


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
