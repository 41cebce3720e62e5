"""Request-level parity with tau2's own runner: run both against one scripted server, compare.

`run_tau2` plays a task with `tau2.run.run_task` (agent `openai/<AGENT_MODEL>`, user
`openai/<USER_MODEL>`, through litellm); `run_ours` plays it with this project's AReaL
workflow (`rollout.areal.Tau2Agent.run_episode`). Each uses a fresh recording `ScriptedServer`,
so both meet the same scripted decisions (the server recognises the task from tau2's
prompts; tau2's runner sends no headers, so ambiguous tasks get a hint). `compare_streams`
then compares the two request streams message by message, agent side and user side: the
system prompt, every message, the tool schemas, tool_choice, sampling parameters, seed,
model. Only the deliberate differences listed in `DELIBERATE` are normalised away; the
same list, with reasons, is in the README ("Differences from `tau2 run`").
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any, Optional

from rollout.env.domains import load_domain
from rollout.scripted import ScriptedServer
from rollout.scripted.endpoints import AGENT_MODEL, USER_MODEL

SEED = 7


@dataclass(frozen=True)
class Difference:
    what: str
    why: str
    effect: str  # on the reward


# Every difference between the two request streams that is deliberate, in one place. Nothing
# else is normalised: everything in a request body not named here must be equal.
DELIBERATE = (
    Difference(
        "Tool calls in the history: tau2 adds a non-standard `name` beside `function` in each entry.",
        "tau2's `to_litellm_messages` writes it; it repeats `function.name` and servers ignore it.",
        "None.",
    ),
    Difference(
        "HTTP headers: ours add X-Rollout-Episode/Domain/Task-Id/Sample/Role/Mode (unless "
        "episode.tag_requests=false); the client's user-agent and x-stainless-* headers differ.",
        "The tags let a shared endpoint attribute requests; the rest is the HTTP client (this "
        "project's, async, vs litellm's). Only request bodies are compared.",
        "None: headers are not part of what the model sees.",
    ),
)


def normalise(body: dict) -> dict:
    """A request body with the deliberate differences (DELIBERATE) taken out."""
    out = json.loads(json.dumps(body))
    for m in out.get("messages") or []:
        if m.get("tool_calls"):
            m["tool_calls"] = [{k: v for k, v in tc.items() if k != "name"} for tc in m["tool_calls"]]
    return out


def bodies(requests: list[dict], role: str) -> list[dict]:
    return [normalise(r["body"]) for r in requests if r["role"] == role]


def compare_streams(tau2: list[dict], ours: list[dict], roles=("agent", "user")) -> list[str]:
    """Differences between two recorded request streams (empty: identical up to DELIBERATE)."""
    out = []
    for role in roles:
        a, b = bodies(tau2, role), bodies(ours, role)
        if len(a) != len(b):
            out.append(f"{role}: tau2 sent {len(a)} requests, ours {len(b)}")
        for i, (x, y) in enumerate(zip(a, b)):
            out += [f"{role} request {i}: {d}" for d in _diff(x, y, "")]
    return out


def _diff(x: Any, y: Any, path: str) -> list[str]:
    if isinstance(x, dict) and isinstance(y, dict):
        diffs = []
        for k in list(x) + [k for k in y if k not in x]:
            if k not in y or k not in x:
                diffs.append(f"{path}.{k} only in {'tau2' if k in x else 'ours'}: {_short(x.get(k, y.get(k)))}")
            else:
                diffs += _diff(x[k], y[k], f"{path}.{k}")
        return diffs
    if isinstance(x, list) and isinstance(y, list):
        diffs = [d for i, (u, v) in enumerate(zip(x, y)) for d in _diff(u, v, f"{path}[{i}]")]
        if len(x) != len(y):
            diffs.append(
                f"{path}: tau2 has {len(x)} items, ours {len(y)}; extra: {_short((x if len(x) > len(y) else y)[min(len(x), len(y))])}"
            )
        return diffs
    return [] if x == y else [f"{path}: tau2 {_short(x)} | ours {_short(y)}"]


def _short(v: Any, n: int = 300) -> str:
    s = v if isinstance(v, str) else json.dumps(v)
    return s if len(s) <= n else s[:n] + "..."


@dataclass
class Run:
    """One runner's play of a task: its outcome and every request the server saw."""

    reward: Optional[float] = None
    termination: Optional[str] = None
    failure: Optional[str] = None  # ours: failure class; tau2: the exception its runner raised
    requests: list[dict] = field(default_factory=list)
    messages: list[dict] = field(default_factory=list)  # ours: the recorded trajectory

    def count(self, role: str) -> int:
        return sum(r["role"] == role for r in self.requests)


def new_server(setup=None) -> ScriptedServer:
    server = ScriptedServer("oracle").start()
    if setup is not None:
        setup(server)
    return server


def run_tau2(
    domain: str, task_id: str, *, solo: bool = False, seed: int = SEED, max_steps: int = 200, setup=None, hint: bool = True
) -> Run:
    """tau2's runner (`run_task`) on the task; an exception it raises is the run's `failure`."""
    from tau2.run import run_task

    server = new_server(setup)
    if hint:  # tau2 sends no headers: name the task for prompts shared by several tasks
        server.expect(domain, task_id)
    args = {"api_base": server.url, "api_key": "x", "temperature": 0.0, "seed": seed}
    run = Run()
    try:
        sim = run_task(
            domain=domain,
            task=load_domain(domain).task(task_id).model_copy(deep=True),
            agent="llm_agent_solo" if solo else "llm_agent",
            user="dummy_user" if solo else "user_simulator",
            llm_agent=f"openai/{AGENT_MODEL}",
            llm_args_agent=dict(args),
            llm_user=f"openai/{USER_MODEL}",
            llm_args_user=dict(args),
            max_steps=max_steps,
        )
        run.reward, run.termination = sim.reward_info.reward, getattr(sim.termination_reason, "value", sim.termination_reason)
    except Exception as e:  # tau2's runner raises on what it cannot handle
        run.failure = f"{type(e).__name__}: {e}"
    finally:
        server.stop()
    run.requests = server.requests
    return run


def our_agent(url: str, *, max_steps: int = 200, backend: str = "local", episode: Optional[dict] = None):
    from rollout.areal import Tau2Agent

    return Tau2Agent(
        llm={"base_url": url, "model": AGENT_MODEL, "api_key": "x", "max_retries": 0},
        user_llm={"base_url": url, "model": f"openai/{USER_MODEL}", "api_key": "x", "max_retries": 0},
        sampling="eval",
        episode={"max_steps": max_steps, **(episode or {})},
        env={"backend": backend},
    )


def run_ours(
    domain: str,
    task_id: str,
    *,
    solo: bool = False,
    seed: int = SEED,
    max_steps: int = 200,
    setup=None,
    backend: str = "local",
    episode: Optional[dict] = None,
) -> Run:
    """This project's AReaL workflow (`Tau2Agent.run_episode`) on the task."""
    server = new_server(setup)
    try:
        agent = our_agent(server.url, max_steps=max_steps, backend=backend, episode=episode)
        result = asyncio.run(agent.run_episode({"domain": domain, "task_id": task_id, "seed": seed, "solo": solo}))
    finally:
        server.stop()
    return Run(
        reward=result.reward,
        termination=result.termination,
        requests=server.requests,
        failure=result.failure and f"{result.failure.failure_class.value}: {result.failure.message}",
        messages=result.messages or [],
    )


def call_ids(messages: list[dict], role: str = "assistant") -> list[str]:
    """Tool-call ids of `role`'s messages (assistant | user) in a recorded trajectory (tau2 message dicts)."""
    return [tc["id"] for m in messages if m["role"] == role for tc in m.get("tool_calls") or []]


def served_call_ids(requests: list[dict], role: str = "agent") -> list[str]:
    """Tool-call ids the server answered `role` with, in order."""
    return [tc["id"] for r in requests if r["role"] == role and r["reply"] for tc in r["reply"].get("tool_calls") or []]
