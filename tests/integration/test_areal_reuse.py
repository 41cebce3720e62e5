"""The AReaL workflow keeps per process what a sweep worker keeps: config, clients, sessions.

Checked as AReaL runs it: concurrent `Tau2Agent.run` calls on one event loop with AReaL's
`http_client` and a session key per episode (inline mode), and a spawned worker process that
unpickles the agent and `asyncio.run`s each episode with `OPENAI_*` set per call (subproc mode).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import multiprocessing
import os
import threading
import time

import httpx
import pytest

from rollout.areal import Tau2Agent
from rollout.areal.runtime import RUNTIMES
from rollout.env.domains import load_domain
from rollout.scripted.endpoints import AGENT_MODEL, USER_MODEL
from tests.aenv_api_double import wait_until

TELECOM = load_domain("telecom").task_ids("base")


def rows() -> list[dict]:
    """20 rows over the four domains, with the user simulator and solo."""
    out = [{"domain": "airline", "task_id": t} for t in load_domain("airline").task_ids()[:4]]
    out += [{"domain": "retail", "task_id": t} for t in load_domain("retail").task_ids()[:4]]
    out += [{"domain": "mock", "task_id": t} for t in load_domain("mock").task_ids()[:4]]
    out += [{"domain": "telecom", "task_id": t} for t in TELECOM[:4]]
    out += [{"domain": "telecom", "task_id": t, "solo": True} for t in TELECOM[4:8]]
    return out


def agent(server, **env) -> Tau2Agent:
    return Tau2Agent(
        llm={"model": AGENT_MODEL, "max_retries": 0},
        user_llm={"base_url": server.url, "model": USER_MODEL, "max_retries": 0},
        env=env,
    )


def outcome(r):
    return (r.domain, r.task_id, r.solo, r.reward, r.termination, r.steps, r.failure)


class ServerWatch:
    """This process's aenv servers alive while it runs (polled), by pid."""

    def __init__(self):
        self.seen: set[str] = set()
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self):
        while not self._stop.is_set():
            now = set(_children())
            self.seen |= now
            self.peak = max(self.peak, len(now))
            time.sleep(0.05)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


@pytest.fixture
def released():
    """Whatever the test left in this process's runtimes is released after it."""
    yield
    RUNTIMES.close_all()
    assert wait_until(lambda: not _children(), 20), _children()


def test_aenv_instances_are_reused_across_episodes(oracle_server, released):
    """20 episodes, 4 at a time, on a pool of 2: two aenv servers start, rewards equal local's."""
    data = rows()

    async def run_all(tau2_agent, concurrency):
        sem = asyncio.Semaphore(concurrency)
        async with httpx.AsyncClient() as http:  # AReaL's shared client; a session key per episode

            async def one(i, row):
                async with sem:
                    return await tau2_agent.run_episode(row, base_url=oracle_server.url, api_key=f"session-{i}", http_client=http)

            return await asyncio.gather(*[one(i, row) for i, row in enumerate(data)])

    local = asyncio.run(run_all(agent(oracle_server), 4))
    with ServerWatch() as watch:
        remote = asyncio.run(run_all(agent(oracle_server, backend="aenv", max_sessions=2), 4))
        alive_after = len(_children())
    assert [outcome(r) for r in remote] == [outcome(r) for r in local]
    assert all(r.reward == 1.0 for r in remote), [r.failure for r in remote if r.reward != 1.0]
    assert len(watch.seen) == 2 and watch.peak == 2, watch.seen
    assert alive_after == 2  # kept for the next episodes of this process, released at exit


@pytest.mark.parametrize("caller_client", [False, True])
def test_each_episode_sends_its_own_key_over_one_client(server, caller_client):
    """Session keys per episode, one client (ours, or AReaL's http_client): every request carries its episode's key."""
    tau2_agent = Tau2Agent(
        llm={"model": AGENT_MODEL, "max_retries": 0, "caller_http_client": caller_client},
        user_llm={"base_url": server.url, "model": USER_MODEL, "max_retries": 0},
    )

    async def main():
        async with httpx.AsyncClient() as http:
            return await asyncio.gather(
                *[
                    tau2_agent.run(
                        {"domain": "airline", "task_id": "12"}, base_url=server.url, api_key=f"session-{i}", http_client=http
                    )
                    for i in range(6)
                ]
            )

    assert asyncio.run(main()) == [1.0] * 6
    by_episode: dict[str, set] = {}
    for r in server.requests:
        if r["role"] == "agent":
            by_episode.setdefault(r["headers"]["x-rollout-episode"], set()).add(r["key_sha256"])
    keys = {hashlib.sha256(f"session-{i}".encode()).hexdigest() for i in range(6)}
    assert len(by_episode) == 6 and all(len(k) == 1 for k in by_episode.values())
    assert set().union(*by_episode.values()) == keys  # six keys, one per episode, none mixed


def test_config_is_resolved_once_per_overrides_and_environment(monkeypatch):
    overrides = {"episode": {"max_steps": 17}}
    _, first = RUNTIMES.config(overrides)
    _, again = RUNTIMES.config({"episode": {"max_steps": 17}})
    assert again is first
    monkeypatch.setenv("OPENAI_MODEL", "another-model")  # a variable the defaults read
    _, changed = RUNTIMES.config(overrides)
    assert changed is not first and changed.llm.model == "another-model"


# ---- AReaL's subproc mode: a spawned worker, one asyncio.run per episode -----------------------
def _episode(agent_obj, data, env):
    os.environ.update(env)
    return asyncio.run(agent_obj.run(data))


def _children() -> list[int]:
    """pids of the aenv servers this process started."""
    me, out = os.getpid(), []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if ppid == me and b"aenv.main" in cmd:
            out.append(int(pid))
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_subproc_mode_keeps_the_aenv_instance_across_episodes(server):
    tau2_agent = Tau2Agent(llm={"model": AGENT_MODEL, "max_retries": 0}, env={"backend": "aenv"})
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        servers = []
        for i, task in enumerate(TELECOM[:3]):
            env = {"OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": f"session-{i}"}
            assert pool.submit(_episode, tau2_agent, {"domain": "telecom", "task_id": task, "solo": True}, env).result(300) == 1.0
            servers.append(pool.submit(_children).result(30))
    assert len(servers[0]) == 1 and servers == [servers[0]] * 3  # one server, the same one, for all three
    assert wait_until(lambda: not _alive(servers[0][0]), 20)  # released when the worker exited
    keys = {r["key_sha256"] for r in server.requests if r["role"] == "agent"}
    assert keys == {hashlib.sha256(f"session-{i}".encode()).hexdigest() for i in range(3)}
