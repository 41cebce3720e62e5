"""Helpers shared by the tests: configs pointed at a scripted server, concurrent episode runs."""

from __future__ import annotations

import asyncio

from rollout.agent.episode import EpisodeSpec, check_episode
from rollout.agent.runner import EpisodeRunner
from rollout.core.config import load_config
from rollout.scripted.endpoints import AGENT_MODEL, USER_MODEL


def command(name: str):
    """`tau2-rollout <name> ...` in this process, through the CLI's one entry: argv -> exit status."""
    from rollout.cli import main

    return lambda argv: main([name, *argv])


def scripted_config(server, *, user: bool = True, extra: list[str] = ()):
    overrides = [f"llm.base_url={server.url}", f"llm.model={AGENT_MODEL}", "llm.max_retries=0"]
    if user:
        overrides += [f"user_llm.base_url={server.url}", f"user_llm.model={USER_MODEL}", "user_llm.max_retries=0"]
    return load_config(overrides + list(extra))


def sweep_args(server, out, *extra) -> list[str]:
    """A sweep's overrides: both endpoints on `server`, no client retries, results in `out`."""
    return [
        f"llm.base_url={server.url}",
        "llm.model=a",
        "llm.max_retries=0",
        f"user_llm.base_url={server.url}",
        "user_llm.model=u",
        "user_llm.max_retries=0",
        f"output_dir={out}",
        "progress=false",
        *extra,
    ]


def run_specs(cfg, specs, concurrency: int = 16):
    """Check episodes (InvalidInput for a bad one) and run them concurrently in one event loop;
    results in the order of `specs`."""
    episodes = [check_episode(s, cfg) for s in specs]

    async def main():
        async with EpisodeRunner(cfg) as runner:
            return await runner.run_many(episodes, concurrency)

    return asyncio.run(main())


def run_domain(cfg, domain, task_ids, *, solo=None):
    return run_specs(cfg, [EpisodeSpec(domain, t, solo=solo) for t in task_ids])


def describe(results) -> str:
    return "; ".join(f"{r.task_id}: reward={r.reward} term={r.termination} failure={r.failure}" for r in results)
