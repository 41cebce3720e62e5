"""`tau2-rollout episode domain=D task_id=T [--config FILE ...] [key=value ...]`: run one episode, print its transcript and reward.

    tau2-rollout episode domain=airline task_id=12 llm.scripted=oracle     # offline: reward 1.0
    tau2-rollout episode domain=telecom task_id='<id>' llm.scripted=oracle solo=true json=true
    tau2-rollout episode domain=retail list=true split=test                 # the task ids of a split
    tau2-rollout episode domain=retail task_id=3 llm.base_url=http://gpu:8000/v1 user_llm.base_url=...

Keys: `domain` (a tau2 domain, a task set tau2 registers such as telecom_full, or one of the
config's `task_sets`), `task_id` (taken as written, not parsed: telecom's ids start with `[`),
`seed`, `solo` (true | false; default: solo when no user
simulator is configured), `list=true` (print the task ids of `split`), `json=true` (print
the whole result as JSON), and every key of a sweep's episode settings (rollout/defaults/
defaults.yaml: `llm.*`, `user_llm.*`, `sampling`, `episode.*`, `env.*`), `llm.scripted`
(oracle | noop: the built-in scripted model plays both endpoints) included; `--config FILE`
merges a YAML file under them. Exit status: 0 scored, 1 infrastructure failure (its class
and cause printed), 2 bad input.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Optional

from rollout.agent.episode import EpisodeSpec, check_episode
from rollout.agent.runner import EpisodeRunner
from rollout.core.command import parse_args
from rollout.core.config import RolloutConfig
from rollout.core.failures import FailureClass, InvalidInput
from rollout.core.results import EpisodeResult
from rollout.env.domains import DEFAULT_SPLIT, check_domain, load_domain
from rollout.env.task_sets import register_task_sets
from rollout.scripted import ScriptedServer
from rollout.scripted.endpoints import pointed_at


@dataclass
class EpisodeCommandConfig(RolloutConfig):
    """One episode's settings: which episode, how to print it, and the episode config."""

    domain: Optional[str] = None
    task_id: Optional[str] = None
    seed: Optional[int] = None
    solo: Optional[bool] = None
    split: str = DEFAULT_SPLIT
    list: bool = False
    json: bool = False


def run(argv: list[str]) -> int:
    """The command (see module doc): its exit status; bad input raises InvalidInput."""
    # a task id is text, taken as written: telecom's start with `[`, which YAML would read as a list
    task_ids = [a.split("=", 1)[1] for a in argv if a.startswith("task_id=")]
    cfg = parse_args([a for a in argv if not a.startswith("task_id=")], EpisodeCommandConfig, config_files=True)
    if task_ids:
        cfg.task_id = task_ids[-1]
    if cfg.domain is None:
        raise InvalidInput("domain=... is required (a tau2 domain such as airline, or a task set of task_sets)")
    register_task_sets(cfg.task_sets)
    check_domain(cfg.domain)
    if cfg.list:
        print("\n".join(load_domain(cfg.domain).task_ids(cfg.split)))
        return 0
    if cfg.task_id is None:
        raise InvalidInput(f"task_id=... is required (`tau2-rollout episode domain={cfg.domain} list=true` lists them)")
    result = asyncio.run(play(cfg))
    if result.failure is not None and result.failure.failure_class is FailureClass.INVALID_INPUT:
        raise InvalidInput(result.failure.message)
    print(json.dumps(result.to_dict(), indent=2) if cfg.json else summary(result))
    return 0 if result.ok else 1


async def play(cfg: EpisodeCommandConfig) -> EpisodeResult:
    """The episode of `cfg`, with the scripted server playing both endpoints if `llm.scripted`."""
    spec = EpisodeSpec(cfg.domain, str(cfg.task_id), seed=cfg.seed, solo=cfg.solo)
    server = None
    if cfg.llm.scripted:
        server = ScriptedServer(cfg.llm.scripted, record=False).start()
        cfg = pointed_at(cfg, server.url)
    try:
        episode = check_episode(spec, cfg)  # bad input before any model call
        async with EpisodeRunner(cfg, slots=1) as runner:
            return await runner.run(episode)
    finally:
        if server is not None:
            server.stop()


def summary(result: EpisodeResult) -> str:
    mode = "solo" if result.solo else "with user simulator"
    if result.ok:
        last = (
            f"reward: {result.reward}  termination: {result.termination}  ({result.domain}/{result.task_id}, {mode}, "
            f"{result.steps} steps, {result.durations.get('total_s', 0):.2f}s)"
        )
    else:
        last = f"FAILED {result.failure.failure_class.value}: {result.failure.message}"
    return f"{result.transcript()}\n\n{last}"
