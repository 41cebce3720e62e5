"""Request-level parity: every LLM request we send equals what tau2's own runner sends.

tau2's `run_task` and this project play the same tasks against the same scripted decisions
(tests/parity.py); the two request streams must be equal, agent side and user side, up to
the deliberate differences listed in tests/parity.py DELIBERATE. Covered: the four domains,
with the user simulator and solo; the local and the aenv backend; the AReaL workflow
(`Tau2Agent.run_episode`) and a Ray sweep. Also: the scripted server plays a sweep that sends
no X-Rollout-* headers (episode.tag_requests=false, no hints) from tau2's prompts alone.
"""

from __future__ import annotations

import asyncio

import pytest

from rollout.agent.episode import EpisodeSpec, check_episode
from rollout.agent.runner import EpisodeRunner
from rollout.pool import derive_seed
from rollout.scripted import ScriptedServer
from rollout.sweep.records import EpisodeStore
from rollout.sweep.run import prepare, run_sweep
from tests.helpers import scripted_config
from tests.parity import AGENT_MODEL, USER_MODEL, compare_streams, run_ours, run_tau2

TEL = "[service_issue]overdue_bill_suspension|unseat_sim_card[PERSONA:Easy]"  # the user has device tools
SWEEP_SEED = 300  # defaults/sweep.yaml: each episode's seed is derived from it


def seed_of(domain: str, task_id: str) -> int:
    """The seed a sweep gives the task (so one tau2 stream serves every way of running it)."""
    return derive_seed(SWEEP_SEED, domain, task_id, 0)


_TAU2: dict = {}


def tau2_run(domain: str, task_id: str, solo: bool):
    """tau2's runner on the task (once per test session)."""
    key = (domain, task_id, solo)
    if key not in _TAU2:
        _TAU2[key] = run_tau2(domain, task_id, solo=solo, seed=seed_of(domain, task_id))
        assert _TAU2[key].failure is None, _TAU2[key].failure
    return _TAU2[key]


def assert_same_requests(tau2, ours):
    assert ours.failure is None, ours.failure
    assert (ours.reward, ours.termination) == (tau2.reward, tau2.termination) == (1.0, ours.termination)
    diffs = compare_streams(tau2.requests, ours.requests)
    assert not diffs, "\n".join(diffs[:20])


PAIRS = [  # (domain, task_id, solo)
    ("airline", "5", False),
    ("retail", "2", False),
    ("telecom", TEL, False),
    ("telecom", TEL, True),
    ("mock", "update_task_with_message_history", False),  # the history ends with an agent message
    ("mock", "create_task_1", True),
]


@pytest.mark.parametrize("domain,task_id,solo", PAIRS, ids=lambda v: str(v)[:12])
def test_local_backend_sends_tau2s_requests(domain, task_id, solo):
    tau2 = tau2_run(domain, task_id, solo)
    assert tau2.count("agent") >= 2 and (solo or tau2.count("user") >= 2)
    ours = run_ours(domain, task_id, solo=solo, seed=seed_of(domain, task_id))
    assert_same_requests(tau2, ours)
    if domain == "telecom" and not solo:  # the richest case: the user's device tools and tool_choice
        user = [r["body"] for r in ours.requests if r["role"] == "user"]
        assert user[0]["tool_choice"] == "auto" and any(m.get("tool_calls") for m in user[-1]["messages"])


def test_aenv_backend_sends_tau2s_requests():
    """Two episodes on one aenv env server (one slot): telecom with the user, mock solo."""
    cases = [("telecom", TEL, False), ("mock", "create_task_1", True)]
    with ScriptedServer("oracle") as server:
        cfg = scripted_config(server, extra=["env.backend=aenv", "sampling=eval"])
        results = asyncio.run(_run_in_one_slot(cfg, [EpisodeSpec(d, t, seed=seed_of(d, t), solo=s) for d, t, s in cases]))
    for (domain, task_id, solo), result in zip(cases, results):
        assert result.ok and result.reward == 1.0, result.failure
        requests = [r for r in server.requests if r["headers"]["x-rollout-task-id"] == task_id]
        diffs = compare_streams(tau2_run(domain, task_id, solo).requests, requests)
        assert not diffs, "\n".join(diffs[:20])


async def _run_in_one_slot(cfg, specs):
    async with EpisodeRunner(cfg, slots=1) as runner:
        return [await runner.run(check_episode(spec, cfg)) for spec in specs]


def sweep(server, tmp_path, *overrides: str) -> list:
    """The records (rollout.sweep.records.SweepRecord) of a Ray sweep against `server`."""
    cfg, _ = prepare(
        [
            f"llm.base_url={server.url}",
            f"llm.model={AGENT_MODEL}",
            "llm.max_retries=0",
            f"user_llm.base_url={server.url}",
            f"user_llm.model={USER_MODEL}",
            "user_llm.max_retries=0",
            f"output_dir={tmp_path}",
            "progress=false",
            "ray.num_workers=1",
            "retry.max_attempts=1",
            f"seed={SWEEP_SEED}",
            *overrides,
        ]
    )
    run_sweep(cfg)
    with EpisodeStore(tmp_path) as store:
        return list(store.records())


def test_ray_sweep_sends_tau2s_requests(ray_cluster, tmp_path):
    """A sweep tags its requests (X-Rollout-*): the bodies are tau2's all the same."""
    tau2 = tau2_run("telecom", TEL, False)
    with ScriptedServer("oracle") as server:
        [rec] = sweep(server, tmp_path, "domains=[telecom]", f"task_ids=[{TEL!r}]")
    assert rec.ok and rec.reward == 1.0, rec.failure
    assert {r["headers"].get("x-rollout-task-id") for r in server.requests} == {TEL}
    diffs = compare_streams(tau2.requests, server.requests)
    assert not diffs, "\n".join(diffs[:20])


# ---- a server that knows only tau2's prompts ------------------------------------------------
@pytest.mark.parametrize("backend", ["local", pytest.param("aenv", marks=pytest.mark.slow)])
def test_untagged_sweep_is_played_from_tau2s_prompts(ray_cluster, tmp_path, backend):
    """Headers off and no hints: airline and retail tasks, and every task whose prompt fits one
    task's play (mock), score 1.0. No telecom prompt identifies a task (each user scenario
    and ticket is shared by 15 to 1488 tasks of the full set): the server does not guess."""
    n = 2 if backend == "local" else 1
    with ScriptedServer("oracle") as server:  # aenv: one slot, so one env server starts
        recs = sweep(
            server,
            tmp_path,
            "episode.tag_requests=false",
            f"env.backend={backend}",
            f"ray.slots_per_worker={4 if backend == 'local' else 1}",
            "domains=[airline,retail,mock,telecom]",
            f"max_tasks={n}",
        )
    assert not server.hints and not any(k.startswith("x-rollout") for r in server.requests for k in r["headers"])
    by_domain: dict[str, list] = {}
    for rec in recs:
        assert rec.ok, rec.failure
        by_domain.setdefault(rec.domain, []).append(rec.reward)
    assert by_domain["airline"] == by_domain["retail"] == by_domain["mock"] == [1.0] * n
    telecom = [r["recognition"] for r in server.requests if r["recognition"]["domain"] == "telecom"]
    assert telecom and all(r["key"] is None and r["candidates"] >= 15 for r in telecom)
    assert by_domain["telecom"] == [0.0] * n  # the agent said it could not identify the task
    identified = [r["recognition"] for r in server.requests if r["recognition"]["domain"] != "telecom"]
    assert all(r["key"] is not None and "+header" not in r["how"] and "+hint" not in r["how"] for r in identified)
