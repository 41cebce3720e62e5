"""P8: the training path (`Tau2Agent.run`, as AReaL calls it) beside the sweep path, in one run.

- `cpu`: per domain, episodes run through `Tau2Agent.run` as AReaL's inline mode runs them
  (one event loop, `in_flight` at once, AReaL's shared `httpx.AsyncClient` and a session key
  per episode), and the same episodes through the sweep path (`EpisodeRunner.run_many`, P7's
  engine), alternately, `reps` times. Rollout CPU per completion and per episode (the scripted
  server in its own process, its CPU apart); the goal is the training path within 10 % of the
  sweep path.
- `aenv_start`: on the aenv backend, the time from calling `Tau2Agent.run` until the episode's
  environment is reset (`durations["start_s"]`), for episodes after the first of the process,
  against a fresh aenv server per episode (what the workflow did before it kept instances),
  measured in the same run. Goal: <= 0.3 s, like P5.
"""

from __future__ import annotations

import asyncio
import statistics
import time

from rollout.agent.episode import EpisodeSpec, check_episode
from rollout.agent.runner import EpisodeRunner
from rollout.bench.common import episode_config, scripted_process
from rollout.env.domains import BENCHMARK_DOMAINS, load_domain
from rollout.scripted.endpoints import AGENT_MODEL, USER_MODEL

DOMAINS = BENCHMARK_DOMAINS
CPU_GOAL_RATIO = 1.10
START_GOAL_S = 0.3


def _rows(domain: str, count: int) -> list[dict]:
    ids = load_domain(domain).task_ids()
    return [{"domain": domain, "task_id": ids[i % len(ids)], "sample": i // len(ids), "seed": i} for i in range(count)]


def _agent(url: str, **env):
    from rollout.areal import Tau2Agent

    return Tau2Agent(
        llm={"model": AGENT_MODEL, "max_retries": 0}, user_llm={"base_url": url, "model": USER_MODEL, "max_retries": 0}, env=env
    )


async def _training(url: str, rows: list[dict], in_flight: int):
    import httpx

    agent = _agent(url)
    sem = asyncio.Semaphore(in_flight)
    async with httpx.AsyncClient(timeout=600) as http:

        async def one(i: int, row: dict):
            async with sem:
                return await agent.run_episode(row, base_url=url, api_key=f"session-{i}", http_client=http)

        await one(-1, rows[0])  # warm: config, clients, domain, caches (as the sweep side warms)
        cpu0 = time.process_time()
        results = await asyncio.gather(*[one(i, r) for i, r in enumerate(rows)])
        return time.process_time() - cpu0, results


async def _sweep(url: str, rows: list[dict], in_flight: int):
    cfg = episode_config(url, "sampling=train")
    specs = [EpisodeSpec(r["domain"], r["task_id"], sample=r["sample"], seed=r["seed"]) for r in rows]
    episodes = [check_episode(s, cfg) for s in specs]
    async with EpisodeRunner(cfg, slots=in_flight) as runner:
        await runner.run(episodes[0])
        cpu0 = time.process_time()
        results = await runner.run_many(episodes)
        return time.process_time() - cpu0, results


def _measure(server, path, rows, in_flight: int) -> dict:
    served0, server0 = server.completions(), server.cpu_s()
    cpu, results = asyncio.run(path(server.url, rows, in_flight))
    served, server_cpu = server.completions() - served0, server.cpu_s() - server0
    bad = [r.failure for r in results if r.reward != 1.0]
    assert not bad, bad[:3]
    return {"cpu_s": cpu, "completions": served, "episodes": len(results), "server_cpu_s": server_cpu}


def bench_cpu(domains=DOMAINS, in_flight: int = 8, episodes: int = 24, reps: int = 3) -> dict:
    out = {}
    with scripted_process() as server:
        for domain in domains:
            rows = _rows(domain, episodes)
            runs = {"training": [], "sweep": []}
            for _ in range(reps):  # alternate, so drift in the machine's speed hits both alike
                runs["sweep"].append(_measure(server, _sweep, rows, in_flight))
                runs["training"].append(_measure(server, _training, rows, in_flight))
            row = {}
            for path, measured in runs.items():
                per_completion = statistics.median(1000 * m["cpu_s"] / m["completions"] for m in measured)
                per_episode = statistics.median(1000 * m["cpu_s"] / m["episodes"] for m in measured)
                row[path] = {
                    "rollout_ms_per_completion": round(per_completion, 2),
                    "rollout_ms_per_episode": round(per_episode, 1),
                    "completions_per_episode": round(measured[0]["completions"] / measured[0]["episodes"], 1),
                }
            row["ratio"] = round(row["training"]["rollout_ms_per_completion"] / row["sweep"]["rollout_ms_per_completion"], 3)
            out[domain] = row
    return {
        "in_flight": in_flight,
        "episodes": episodes,
        "reps": reps,
        "goal_ratio": CPU_GOAL_RATIO,
        "domains": out,
        "ratio_max": max(r["ratio"] for r in out.values()),
    }


def bench_aenv_start(episodes: int = 8, fresh_reps: int = 3) -> dict:
    """Episode start on aenv through Tau2Agent.run (after the first) vs a fresh server per episode."""
    from rollout.areal.runtime import RUNTIMES
    from rollout.env.aenv.session import open_aenv_session
    from rollout.env.protocol import ResetRequest

    task = load_domain("telecom").task_ids()[0]
    row = {"domain": "telecom", "task_id": task, "solo": True}
    with scripted_process() as server:
        agent = _agent(server.url, backend="aenv", max_sessions=1)

        async def reused():
            results = [await agent.run_episode(row, base_url=server.url, api_key="k") for _ in range(episodes)]
            assert all(r.reward == 1.0 for r in results), [r.failure for r in results]
            return [r.durations["start_s"] for r in results]

        starts = asyncio.run(reused())
        RUNTIMES.close_all()

        async def fresh():
            cfg = episode_config(server.url, "env.backend=aenv")
            out = []
            for _ in range(fresh_reps):
                t0 = time.perf_counter()
                session = await open_aenv_session(cfg, [])
                await session.reset(ResetRequest(domain="telecom", task_id=task, solo=True))
                out.append(time.perf_counter() - t0)
                await session.close()
            return out

        fresh_s = asyncio.run(fresh())
    later = statistics.median(starts[1:])
    return {
        "first_start_s": round(starts[0], 3),
        "later_start_s": round(later, 4),
        "fresh_server_s": round(statistics.median(fresh_s), 3),
        "speedup": round(statistics.median(fresh_s) / later, 1),
        "episodes": episodes,
        "goal_s": START_GOAL_S,
    }


def bench_p8(quick: bool = False) -> dict:
    if quick:
        return {
            "cpu": bench_cpu(domains=("telecom",), in_flight=2, episodes=2, reps=1),
            "aenv_start": bench_aenv_start(episodes=2, fresh_reps=1),
        }
    return {"cpu": bench_cpu(), "aenv_start": bench_aenv_start()}
