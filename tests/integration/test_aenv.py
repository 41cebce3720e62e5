"""The aenv backend: this project's env module under aenv's MCP server, through the aenv SDK."""

import asyncio
import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from rollout.env.aenv.servers import ENV_DIR
from rollout.env.domains import load_domain
from rollout.episode import EpisodeSpec
from rollout.process_env import child_env
from rollout.sweep.records import EpisodeStore
from rollout.sweep.run import prepare, run_sweep
from rollout.sweep.runner import EpisodeRunner
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
    return (r.task_id, r.solo, r.reward, r.termination, r.steps, r.tool_errors,
            r.reward_info and r.reward_info["reward_breakdown"], len(r.messages), r.failure)


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
            first = asyncio.ensure_future(runner.run(EpisodeSpec("airline", "12", solo=False)))
            while not runner._pool or not runner._pool._all or server.stats["agent"] < 2:
                await asyncio.sleep(0.05)
            victim = runner._pool._all[0]._server
            victim.process.kill()
            failed = await first
            second = await runner.run(EpisodeSpec("airline", "12", solo=False))
            replacement = runner._pool._all[0]._server
            return failed, second, victim, replacement

    with ScriptedServer("oracle", faults=Faults(latency_s=0.2), record=False) as server:
        failed, second, victim, replacement = asyncio.run(main(server))
    assert failed.reward is None and failed.failure.failure_class.value == "env_error"
    assert "aenv tau2_step failed" in failed.failure.message
    assert second.reward == 1.0 and replacement.host != victim.host
    assert victim.process.poll() is not None and not aenv_servers()


def test_ray_sweep_on_aenv_backend(ray_cluster, oracle_server, tmp_path):
    cfg, _ = prepare([f"llm.base_url={oracle_server.url}", "llm.model=a", f"user_llm.base_url={oracle_server.url}",
                      "user_llm.model=u", f"output_dir={tmp_path}", "progress=false", "env.backend=aenv",
                      "domains=[mock,telecom]", "max_tasks=3", "ray.num_workers=2", "ray.slots_per_worker=1"])
    run_sweep(cfg, out=io.StringIO())
    with EpisodeStore(tmp_path) as store:
        recs = list(store.records())
    keys = [(r.domain, r.task_id) for r in recs]
    assert len(keys) == len(set(keys)) == 6
    assert all(r.status == "ok" and r.reward == 1.0 for r in recs)
    assert wait_until(lambda: not aenv_servers(), 20), aenv_servers()


def cfg_extra(api, secret):
    return ["env.backend=aenv", f"env.aenv.system_url={api.url}", "env.aenv.api_key=aenv-token",
            f"user_llm.api_key={secret}"]


def test_cluster_mode_against_api_service_double(oracle_server):
    secret = "sk-user-SECRET-cluster-42"
    with AenvApiServiceDouble() as api:
        cfg = scripted_config(oracle_server, extra=cfg_extra(api, secret))
        specs = [EpisodeSpec("mock", "create_task_1", solo=False), EpisodeSpec("airline", "12", solo=False),
                 EpisodeSpec("telecom", load_domain("telecom").task_ids("base")[0], solo=True)]
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
            timed_out = run_specs(scripted_config(oracle_server, extra=cfg_extra(api, secret) + ["episode.timeout_s=4"]),
                                  [EpisodeSpec("mock", "create_task_1", solo=False)])
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


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


@pytest.mark.skipif(not _port_free("127.0.0.1", 8081), reason="the upstream sequence needs 127.0.0.1:8081")
def test_upstream_seed_call_sequence_works_against_our_env(server):
    """AEnvironment's own example agent, unchanged in its calls, on a task fixed by TAU2_* variables."""
    assets = load_domain("telecom")
    task_id = min(assets.task_ids("base"), key=lambda t: len(assets.task(t).evaluation_criteria.actions))
    gold = [{"tool": a.name, "arguments": a.arguments} for a in assets.task(task_id).evaluation_criteria.actions]
    server.set_script("", "", gold)  # the example sends no X-Rollout-* headers
    env = {**os.environ, "TAU2_DOMAIN": "telecom", "TAU2_TASK_ID": task_id, "TAU2_SOLO_MODE": "true",
           "TAU2_USER_LLM_API_KEY": "sk-never-echoed-123456", **child_env()}
    proc = subprocess.Popen([sys.executable, "-m", "aenv.main", str(ENV_DIR), "--host", "127.0.0.1", "--port", "8081"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        assert wait_until(lambda: not _port_free("127.0.0.1", 8081), 120)
        seed_env = {**os.environ, "DUMMY_INSTANCE_IP": "127.0.0.1", "OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "k"}
        p = subprocess.run([sys.executable, str(Path(__file__).resolve().parents[1] / "aenv_seed_agent.py"), "tau2-env@1.0.0"],
                           env=seed_env, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr[-3000:]
        out = json.loads(p.stdout.strip().splitlines()[-1])
        assert out["reward"] == 1.0 and out["status"]["done"]
        assert "tau2-env@1.0.0/toggle_airplane_mode" in out["tools"] and "tau2-env@1.0.0/done" in out["tools"]
        assert "sk-never-echoed" not in json.dumps(out["status"])
    finally:
        proc.terminate()
        proc.wait(timeout=20)
