"""The aenv backend: this project's env module under aenv's MCP server, through the aenv SDK."""

import asyncio
import json
import subprocess

import pytest

from rollout.agent.episode import EpisodeSpec, check_episode
from rollout.agent.runner import EpisodeRunner
from rollout.env.domains import load_domain
from rollout.sweep.records import EpisodeStore
from rollout.sweep.run import prepare, run_sweep
from tests.aenv_api_double import AenvApiServiceDouble, wait_until
from tests.helpers import run_specs, scripted_config


def aenv_servers() -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "aenv.main" in line or "aenv_pod.py" in line]


def sample_specs():
    specs = []
    for domain, n in (("airline", 3), ("retail", 2), ("telecom", 2), ("mock", 3)):
        for task_id in load_domain(domain).task_ids("base")[:n]:
            specs.append(EpisodeSpec(domain, task_id, solo=False))
    specs += [EpisodeSpec("telecom", t, solo=True) for t in load_domain("telecom").task_ids("base")[2:4]]
    return specs


def comparable(r):
    return (
        r.task_id,
        r.solo,
        r.reward,
        r.termination,
        r.steps,
        r.tool_errors,
        r.reward_info and r.reward_info["reward_breakdown"],
        len(r.messages),
        r.failure,
    )


@pytest.mark.parametrize("policy", ["oracle", "noop"])
def test_aenv_backend_rewards_equal_local_backend(policy, oracle_server, noop_server):
    server = oracle_server if policy == "oracle" else noop_server
    specs = sample_specs()
    local = run_specs(scripted_config(server), specs)
    remote = run_specs(scripted_config(server, extra=["env.backend=aenv"]), specs, concurrency=2)
    assert [comparable(r) for r in remote] == [comparable(r) for r in local]
    if policy == "oracle":
        assert all(r.reward == 1.0 for r in remote)
    else:  # tau2's evaluator raises on one mock task with a do-nothing trajectory: same class on both
        assert sum(not r.ok for r in remote) == 1 and sum(r.reward == 1.0 for r in remote) >= 2
    assert not aenv_servers()


def test_killed_server_is_an_env_error_then_a_fresh_instance_serves(tmp_path):
    from rollout.scripted import Faults, ScriptedServer

    async def main(server):
        cfg = scripted_config(server, extra=["env.backend=aenv"])
        async with EpisodeRunner(cfg, slots=1) as runner:
            episode = check_episode(EpisodeSpec("airline", "12", solo=False), cfg)
            first = asyncio.ensure_future(runner.run(episode))
            while not runner._pool or not runner._pool._all or server.stats["agent"] < 2:
                await asyncio.sleep(0.05)
            victim = runner._pool._all[0]._server
            victim.process.kill()
            failed = await first
            second = await runner.run(episode)
            replacement = runner._pool._all[0]._server
            return failed, second, victim, replacement

    with ScriptedServer("oracle", faults=Faults(latency_s=0.2), record=False) as server:
        failed, second, victim, replacement = asyncio.run(main(server))
    assert failed.reward is None and failed.failure.failure_class.value == "env_error"
    assert "aenv tau2_step failed" in failed.failure.message
    assert second.reward == 1.0 and replacement.host != victim.host
    assert victim.process.poll() is not None and not aenv_servers()


def test_ray_sweep_on_aenv_backend(ray_cluster, oracle_server, tmp_path):
    cfg, _ = prepare(
        [
            f"llm.base_url={oracle_server.url}",
            "llm.model=a",
            f"user_llm.base_url={oracle_server.url}",
            "user_llm.model=u",
            f"output_dir={tmp_path}",
            "progress=false",
            "env.backend=aenv",
            "domains=[mock,telecom]",
            "max_tasks=3",
            "ray.num_workers=2",
            "ray.slots_per_worker=1",
        ]
    )
    run_sweep(cfg)
    with EpisodeStore(tmp_path) as store:
        recs = list(store.records())
    keys = [(r.domain, r.task_id) for r in recs]
    assert len(keys) == len(set(keys)) == 6
    assert all(r.status == "ok" and r.reward == 1.0 for r in recs)
    assert wait_until(lambda: not aenv_servers(), 20), aenv_servers()


def cfg_extra(api, secret):
    return ["env.backend=aenv", f"env.aenv.system_url={api.url}", "env.aenv.api_key=aenv-token", f"user_llm.api_key={secret}"]


def test_cluster_mode_against_api_service_double(oracle_server):
    secret = "sk-user-SECRET-cluster-42"
    with AenvApiServiceDouble() as api:
        cfg = scripted_config(oracle_server, extra=cfg_extra(api, secret))
        specs = [
            EpisodeSpec("mock", "create_task_1", solo=False),
            EpisodeSpec("airline", "12", solo=False),
            EpisodeSpec("telecom", load_domain("telecom").task_ids("base")[0], solo=True),
        ]
        results = run_specs(cfg, specs, concurrency=2)
        assert [r.reward for r in results] == [1.0, 1.0, 1.0], [r.failure for r in results]
        # failing episodes release their instances too: the user simulator answers 500s
        oracle_server.set_faults(mode="http_500", count=-1, role="user")
        try:
            failed = run_specs(cfg, [EpisodeSpec("retail", "0", solo=False)])
        finally:
            oracle_server.set_faults(mode="none")
        assert failed[0].failure.failure_class.value == "user_sim_error"
        # ... and so do episodes cut off by the per-episode timeout
        oracle_server.set_faults(mode="hang", count=-1, role="agent", hang_s=60)
        try:
            timed_out = run_specs(
                scripted_config(oracle_server, extra=cfg_extra(api, secret) + ["episode.timeout_s=4"]),
                [EpisodeSpec("mock", "create_task_1", solo=False)],
            )
        finally:
            oracle_server.set_faults(mode="none")
        assert timed_out[0].failure.failure_class.value == "timeout"
        assert api.created and sorted(api.deleted) == sorted(api.created)
        assert wait_until(lambda: not api.alive(), 20)
        creates = [r for r in api.requests if r["method"] == "POST"]
        assert all(r["authorization"] == "Bearer aenv-token" for r in creates)
        assert creates[0]["body"]["envName"] == "tau2-rollout-env@0.1.0"
        assert creates[0]["body"]["environment_variables"]["TAU2_USER_LLM_API_BASE"] == oracle_server.url
        assert secret not in json.dumps([r.to_dict() for r in results + failed])
