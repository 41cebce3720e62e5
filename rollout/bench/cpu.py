"""P7: the rollout system's CPU per model completion, and where it goes.

Measured per domain (airline, retail, telecom; oracle policy, zero-latency scripted model in
its own process) at a few in-flight levels, in one rollout process (EpisodeRunner):

- `rollout_ms`: CPU seconds of the rollout process (time.process_time: every thread of it)
  over the measured episodes, divided by the completions they made (agent and user
  simulator requests alike, as counted by the server);
- `server_ms`: the scripted server's own CPU per completion (its process, /proc/<pid>/stat),
  reported apart: on a real deployment the model is not on the rollout machine.

After its warm-up episode the process settles its heap (`settle_heap`), as the pool's workers
do after theirs. With `transports=("fast_http", "aiohttp")` every cell is measured again with
aiohttp as the clients' HTTP transport (rollout/bench/aiohttp_transport.py), in turn with fast_http.

Then one cProfile run per domain splits the rollout process's CPU into components
(`COMPONENTS`). Each profiled function's own time goes to the component of its file; a
function that belongs to none (builtins, pydantic, copy, typing, ...) is charged to its
callers in proportion to the time spent under each call edge (gprof's assumption), so e.g.
pydantic parsing under openai counts as HTTP client, and tau2 code under the evaluator as
evaluation. The event loop's thread and its default executor's threads (evaluation runs
there) are profiled and merged. cProfile inflates per-call cost: the shares are its view,
the milliseconds come from the unprofiled runs.
"""

from __future__ import annotations

import asyncio
import cProfile
import pstats
import statistics
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

from rollout.agent.episode import EpisodeSpec, check_episode
from rollout.agent.runner import EpisodeRunner
from rollout.bench.aiohttp_transport import http_transport
from rollout.bench.common import episode_config, scripted_process
from rollout.core.process_env import settle_heap
from rollout.env.domains import BENCHMARK_DOMAINS, load_domain

DOMAINS = BENCHMARK_DOMAINS
GOAL_MS = 3.0

# component -> what it covers (the table and docs print these names)
COMPONENTS = {
    "agents_sdk": "OpenAI Agents SDK run loop (agents package)",
    "http_client": "HTTP client and response parsing (rollout.core.clients, rollout.core.fast_http, openai, httpx/httpcore/h11, sockets)",
    "json": "JSON encoding/decoding wherever it happens",
    "tau2_env": "tau2 tools and environment steps (rollout.env.local and the tau2 code it calls)",
    "user_sim": "user simulator request/response conversion (rollout.env.user_sim, rollout.env.messages)",
    "evaluation": "evaluation (rollout.env.evaluation, tau2's evaluator and what they call)",
    "episode_glue": "our episode loop (rollout.agent.turns, rollout.agent.episode, rollout.agent.runner, rollout.env.sessions)",
    "asyncio": "the asyncio event loop itself",
    "other": "not attributable (profiler roots)",
}

_FILE_RULES = (  # (path fragment, component): first match wins; files matching none are charged to their callers
    ("/site-packages/agents/", "agents_sdk"),
    ("/rollout/core/clients.py", "http_client"),
    ("/rollout/core/fast_http/", "http_client"),
    ("/site-packages/openai/", "http_client"),
    ("/site-packages/httpx", "http_client"),
    ("/site-packages/httpcore", "http_client"),
    ("/site-packages/h11/", "http_client"),
    ("/site-packages/anyio/", "http_client"),
    ("/site-packages/aiohttp/", "http_client"),
    ("/lib/python3.11/socket.py", "http_client"),
    ("/lib/python3.11/ssl.py", "http_client"),
    ("/lib/python3.11/http/", "http_client"),
    ("/lib/python3.11/email/", "http_client"),
    ("/lib/python3.11/json/", "json"),
    ("/site-packages/orjson", "json"),
    ("/site-packages/tau2/evaluator/", "evaluation"),
    ("/rollout/env/evaluation.py", "evaluation"),
    ("/rollout/env/user_sim.py", "user_sim"),
    ("/rollout/env/messages.py", "user_sim"),
    ("/rollout/env/local.py", "tau2_env"),
    ("/rollout/env/recorder.py", "tau2_env"),
    ("/rollout/agent/", "episode_glue"),
    ("/rollout/env/sessions.py", "episode_glue"),
    ("/lib/python3.11/asyncio/", "asyncio"),
    ("/lib/python3.11/selectors.py", "asyncio"),
)
_BUILTIN_RULES = (("_json", "json"), ("json", "json"), ("orjson", "json"), ("_socket", "http_client"), ("_ssl", "http_client"))


def _component(filename: str, function: str) -> Optional[str]:
    """The component a profiled function belongs to, or None (charged to its callers)."""
    if filename in ("~", "") or filename.startswith("<"):
        return next((c for key, c in _BUILTIN_RULES if key in function), None)
    return next((c for frag, c in _FILE_RULES if frag in filename), None)


class ProfilingExecutor(ThreadPoolExecutor):
    """A default executor whose calls run under a cProfile of their thread (`profiles`)."""

    def __init__(self):
        super().__init__(thread_name_prefix="bench-profiled")
        self.profiles: list[cProfile.Profile] = []
        self._local = threading.local()

    def submit(self, fn, /, *args, **kwargs):
        def profiled():
            profile = getattr(self._local, "profile", None)
            if profile is None:
                profile = self._local.profile = cProfile.Profile()
                self.profiles.append(profile)
            profile.enable()
            try:
                return fn(*args, **kwargs)
            finally:
                profile.disable()

        return super().submit(profiled)


def component_shares(stats: pstats.Stats) -> tuple[dict[str, float], list[list]]:
    """(share of profiled CPU per component, the 8 functions with the most own time)."""
    stats = stats.stats  # func -> (cc, nc, tt, ct, callers{func: (nc, cc, tt, ct)})
    memo: dict = {}

    def owners(func, depth=0) -> dict[str, float]:
        if func in memo:
            return memo[func]
        comp = _component(func[0], func[2])
        if comp is not None:
            memo[func] = {comp: 1.0}
            return memo[func]
        memo[func] = {"other": 1.0}  # cycle guard while resolving
        callers = stats[func][4] if func in stats else {}
        weights = {c: (e[3] or e[0]) for c, e in callers.items()}
        total = sum(weights.values())
        if not total or depth > 50:
            return memo[func]
        out: dict[str, float] = defaultdict(float)
        for caller, w in weights.items():
            for comp, frac in owners(caller, depth + 1).items():
                out[comp] += frac * w / total
        memo[func] = dict(out)
        return memo[func]

    by_comp: dict[str, float] = defaultdict(float)
    for func, (_, _, tottime, _, _) in stats.items():
        if "epoll" in func[2] or "select" == func[2]:  # waiting for I/O, not CPU
            continue
        for comp, frac in owners(func).items():
            by_comp[comp] += tottime * frac
    total = sum(by_comp.values()) or 1.0
    shares = {c: round(by_comp.get(c, 0.0) / total, 3) for c in COMPONENTS}
    top = sorted(((k, v[2]) for k, v in stats.items() if "epoll" not in k[2]), key=lambda kv: -kv[1])[:8]
    top_functions = [[f"{_short(k[0])}:{k[1]}({k[2]})", round(tt / total, 3)] for k, tt in top]
    return shares, top_functions


def _short(filename: str) -> str:
    for marker in ("/site-packages/", "/lib/python3.11/", "/work/main/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def _specs(domain: str, count: int) -> list[EpisodeSpec]:
    ids = load_domain(domain).task_ids()
    return [EpisodeSpec(domain, ids[i % len(ids)], sample=i // len(ids)) for i in range(count)]


async def _measure(
    cfg, server, specs, in_flight: int, profile: Optional[cProfile.Profile] = None, executor: Optional[ProfilingExecutor] = None
) -> dict:
    if executor is not None:
        asyncio.get_running_loop().set_default_executor(executor)
    episodes = [check_episode(s, cfg) for s in specs]
    async with EpisodeRunner(cfg, slots=in_flight) as runner:
        await runner.run(episodes[0])  # warm: clients, domain, caches
        settle_heap()  # as the pool's workers do once warm
        served0, server0, cpu0 = server.completions(), server.cpu_s(), time.process_time()
        if profile:
            profile.enable()
        results = await runner.run_many(episodes)
        if profile:
            profile.disable()
        cpu, server_cpu = time.process_time() - cpu0, server.cpu_s() - server0
        served = server.completions() - served0
    assert all(r.reward == 1.0 for r in results), [r.failure for r in results if r.reward != 1.0][:3]
    return {
        "rollout_ms": round(1000 * cpu / served, 2),
        "server_ms": round(1000 * server_cpu / served, 2),
        "completions": served,
        "episodes": len(specs),
    }


def bench_p7(
    domains=DOMAINS,
    in_flight=(1, 8, 32),
    episodes_per_slot: int = 3,
    min_episodes: int = 16,
    profile_in_flight: int = 8,
    profile_episodes: int = 24,
    transports: tuple[str, ...] = ("fast_http",),
) -> dict:
    """The P7 row of bench.json (see module doc). Each transport of `transports` after the
    first (the product's, fast_http) measures every cell again with the clients over it, in
    turn with the first (`cell[transport]`)."""
    out: dict = {"goal_ms": GOAL_MS, "domains": {}, "profile": {}}
    with scripted_process() as server:
        cfg = episode_config(server.url)
        for domain in domains:
            row = {}
            for i, n in enumerate(in_flight):
                specs = _specs(domain, max(min_episodes, episodes_per_slot * n))
                by_transport = {}
                for transport in transports if i % 2 == 0 else transports[::-1]:  # in turn: drift hits both
                    with http_transport(transport):
                        by_transport[transport] = asyncio.run(_measure(cfg, server, specs, n))
                row[str(n)] = {**by_transport[transports[0]], **{t: by_transport[t] for t in transports[1:]}}
            out["domains"][domain] = row
            profile, executor = cProfile.Profile(), ProfilingExecutor()
            asyncio.run(_measure(cfg, server, _specs(domain, profile_episodes), profile_in_flight, profile, executor))
            stats = pstats.Stats(profile)
            for thread_profile in executor.profiles:
                stats.add(thread_profile)
            shares, top = component_shares(stats)
            out["profile"][domain] = {
                "in_flight": profile_in_flight,
                "episodes": profile_episodes,
                "share": shares,
                "top_functions": top,
            }
    cells = [c for row in out["domains"].values() for c in row.values()]
    out["rollout_ms_max"] = max(c["rollout_ms"] for c in cells)
    out["rollout_ms_median"] = statistics.median(c["rollout_ms"] for c in cells)
    out["server_ms_median"] = statistics.median(c["server_ms"] for c in cells)
    for transport in transports[1:]:  # its CPU per completion over fast_http's, cell by cell
        out[f"{transport}_ratio_median"] = round(
            statistics.median(c[transport]["rollout_ms"] / c["rollout_ms"] for c in cells), 3
        )
    out["components"] = COMPONENTS
    return out
