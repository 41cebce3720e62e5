"""Sweeps on Ray: workers, driver, resume, failures, metrics (real local Ray, one per session)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from rollout.core.failures import InvalidInput
from rollout.sweep.metrics import summarize
from rollout.sweep.records import EpisodeStore
from rollout.sweep.run import prepare, run_sweep
from tests.helpers import sweep_args


def keys(out):
    with EpisodeStore(out) as store:
        return [r.key for r in store.records()]


def records(out):
    with EpisodeStore(out) as store:
        return list(store.records())


def test_sweep_over_two_actors_writes_every_episode_once(ray_cluster, oracle_server, tmp_path):
    cfg, smoke = prepare(
        sweep_args(
            oracle_server,
            tmp_path,
            "domains=[airline,telecom,mock]",
            "max_tasks=2",
            "num_samples=2",
            "ray.num_workers=2",
            "ray.slots_per_worker=4",
        )
    )
    assert not smoke
    summary = run_sweep(cfg).summary
    got = keys(tmp_path)
    assert len(got) == len(set(got)) == 3 * 2 * 2
    recs = records(tmp_path)
    assert all(r.status == "ok" and r.reward == 1.0 and r.attempts == 1 for r in recs)
    assert {r.worker for r in recs} == {0, 1}
    assert len({r.seed for r in recs}) == 12 and all(r.messages for r in recs)
    assert summary["all"]["pass_hat_k"] == {"1": 1.0, "2": 1.0} and summary["all"]["mean_reward"] == 1.0
    assert json.loads((tmp_path / "summary.json").read_text())["all"]["episodes"] == 12
    assert "api_key" in (tmp_path / "config.yaml").read_text()


def test_sweep_with_token_capture_writes_turns_and_the_capture_summary_and_resumes(ray_cluster, oracle_server, tmp_path):
    """A sweep with `llm.capture=token_ids` records each policy call's tokens, summarises the
    capture per domain, and a rerun reads those records back and runs only the new samples."""
    args = sweep_args(oracle_server, tmp_path, "domains=[mock]", "max_tasks=2", "llm.capture=token_ids", "ray.num_workers=1")
    summary = run_sweep(prepare(args + ["num_samples=1"])[0]).summary
    first = records(tmp_path)
    assert len(first) == 2 and all(r.ok and r.turns and all(t is not None for t in r.turns) for r in first)
    assert all(
        t.completion_token_ids and len(t.completion_logprobs) == len(t.completion_token_ids) for r in first for t in r.turns
    )
    line = json.loads((tmp_path / "episodes.jsonl").read_text().splitlines()[0])
    assert line["turns"][0]["completion_token_ids"] == first[0].turns[0].completion_token_ids
    capture = summary["capture"]["mock"]
    assert capture["calls"] == capture["captured"] == sum(len(r.turns) for r in first) > 0
    summary = run_sweep(prepare(args + ["num_samples=2"])[0]).summary
    second = records(tmp_path)
    assert len(second) == 4 and summary["run"]["episodes_run"] == 2
    assert [r.turns for r in second if r.sample == 0] == [r.turns for r in first]
    assert summary["capture"]["mock"]["calls"] == sum(len(r.turns) for r in second)


def test_pass_hat_k_and_stderr_on_mixed_rewards():
    from rollout.core.failures import Failure, FailureClass
    from rollout.sweep.records import SweepRecord

    def rec(task, sample, reward, status="ok"):
        return SweepRecord(
            "airline", task, sample, reward=reward, failure=None if status == "ok" else Failure(FailureClass.TIMEOUT, "x")
        )

    rows = [
        rec("a", 0, 1.0),
        rec("a", 1, 0.0),
        rec("a", 2, 1.0),
        rec("b", 0, 0.0),
        rec("b", 1, 0.0),
        rec("b", 2, 0.0),
        rec("c", 0, 1.0),
        rec("c", 1, 1.0),
        rec("c", 2, None, "failed"),
    ]
    s = summarize(rows, num_samples=3)["all"]
    # pass^1: a 2/3, b 0, c 2/2 -> (2/3 + 0 + 1) / 3;  pass^2: a C(2,2)/C(3,2) = 1/3, b 0, c 1 -> (4/3)/3
    assert s["pass_hat_k"]["1"] == pytest.approx((2 / 3 + 0 + 1) / 3)
    assert s["pass_hat_k"]["2"] == pytest.approx((1 / 3 + 0 + 1) / 3)
    assert s["pass_hat_k"]["3"] == pytest.approx(0.0)  # only a and b have 3 scored samples: 0 and 0
    assert s["mean_reward"] == pytest.approx(4 / 8)
    assert s["stderr"] == pytest.approx((sum((x - 0.5) ** 2 for x in [1, 0, 1, 0, 0, 0, 1, 1]) / 7) ** 0.5 / 8**0.5)
    assert s["failures"] == {"timeout": 1} and s["failed"] == 1 and s["scored"] == 8


def test_killed_actor_is_replaced_and_its_episodes_rerun(ray_cluster, tmp_path):
    import ray

    from rollout.scripted import Faults, ScriptedServer

    killed = []

    def kill_first_worker(driver, record):
        if not killed:
            killed.append(driver.workers[0].actor)
            ray.kill(driver.workers[0].actor)

    with ScriptedServer("oracle", faults=Faults(latency_s=0.05), record=False) as server:
        cfg, _ = prepare(
            sweep_args(
                server,
                tmp_path,
                "domains=[telecom]",
                "max_tasks=6",
                "num_samples=2",
                "ray.num_workers=2",
                "ray.slots_per_worker=3",
                "retry.backoff_s=0.1",
            )
        )
        run_sweep(cfg, on_record=kill_first_worker)
    got = keys(tmp_path)
    assert killed and len(got) == len(set(got)) == 12
    recs = records(tmp_path)
    assert all(r.status == "ok" and r.reward == 1.0 for r in recs)
    assert any(f.failure_class.value == "worker_died" for r in recs for f in r.earlier_failures)


def test_killed_driver_resumes_without_duplicates(ray_cluster, tmp_path):
    from rollout.scripted import Faults, ScriptedServer

    out = tmp_path / "run"
    with ScriptedServer("oracle", faults=Faults(latency_s=0.1), record=False) as server:
        args = sweep_args(
            server,
            out,
            "domains=[telecom,mock]",
            "max_tasks=5",
            "num_samples=2",
            f"ray.address={ray_cluster}",
            "ray.num_workers=1",
            "ray.slots_per_worker=2",
        )
        driver = subprocess.Popen(
            [sys.executable, "-m", "rollout", "sweep", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "RAY_ADDRESS": ray_cluster},
        )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if (out / "episodes.jsonl").exists() and len((out / "episodes.jsonl").read_text().splitlines()) >= 4:
                break
            time.sleep(0.2)
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        first = (out / "episodes.jsonl").read_text()
        before = [json.loads(line) for line in first.splitlines() if line.strip()]
        assert 4 <= len(before) < 20
        cfg, _ = prepare(args[:-3] + ["ray.num_workers=2"])
        summary = run_sweep(cfg).summary
    got = keys(out)
    assert len(got) == len(set(got)) == 20
    text = (out / "episodes.jsonl").read_text()
    complete = first[: first.rfind("\n") + 1]
    assert text.startswith(complete)  # what was written before the kill is kept, not re-run
    assert summary["run"]["episodes_run"] == 20 - len(complete.splitlines())


def test_500s_are_retried_until_the_sweep_completes(ray_cluster, tmp_path):
    from rollout.scripted import ScriptedServer

    with ScriptedServer("oracle", record=False) as server:
        server.set_faults(mode="http_500", count=4, role="agent")
        cfg, _ = prepare(
            sweep_args(
                server,
                tmp_path,
                "domains=[mock]",
                "max_tasks=3",
                "ray.num_workers=1",
                "retry.backoff_s=0.05",
                "retry.max_attempts=6",
            )
        )
        run_sweep(cfg)
        assert server.stats["faults"] == 4
    recs = records(tmp_path)
    assert len(recs) == 3 and all(r.status == "ok" for r in recs)
    assert sum(len(r.earlier_failures) for r in recs) == 4
    assert {f.failure_class.value for r in recs for f in r.earlier_failures} == {"model_error"}


def test_hangs_time_out_are_retried_then_recorded_failed(ray_cluster, tmp_path):
    from rollout.scripted import ScriptedServer

    with ScriptedServer("oracle", record=False) as server:
        server.set_faults(mode="hang", count=-1, role="agent", hang_s=30)
        cfg, _ = prepare(
            sweep_args(
                server,
                tmp_path,
                "domains=[mock]",
                "max_tasks=2",
                "ray.num_workers=1",
                "episode.timeout_s=1.5",
                "retry.max_attempts=2",
                "retry.backoff_s=0.05",
            )
        )
        summary = run_sweep(cfg).summary
    recs = records(tmp_path)
    assert len(recs) == 2
    for r in recs:
        assert r.status == "failed" and r.reward is None and r.attempts == 2
        assert r.failure_class == "timeout" and [f.failure_class.value for f in r.earlier_failures] == ["timeout"]
    assert summary["all"]["failures"] == {"timeout": 2} and summary["all"]["mean_reward"] is None
    assert summary["all"]["tau2_counting"]["mean_reward"] == 0.0  # as tau2 --skip-failed-samples counts them


@pytest.mark.parametrize(
    "args,message",
    [
        (["ray.num_wrkers=2"], "unknown key 'ray.num_wrkers' (did you mean 'ray.num_workers'?)"),
        (["num_samples=many"], "invalid value for config key 'num_samples'"),
        (["domains=[banking]"], "unknown domain 'banking'"),
        (["domains=[airline]", "task_ids=[999]"], "unknown task_id '999' for domain 'airline'"),
        (["domains=[airline,retail]", "task_ids=[1]"], "task_ids needs exactly one domain"),
        (["split=dev"], "unknown split 'dev' for domain 'airline'"),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path, args, message):
    from rollout.sweep.plan import plan_requests

    with pytest.raises(InvalidInput) as e:
        cfg, _ = prepare([f"output_dir={tmp_path}", *args])
        plan_requests(cfg)
    assert message in str(e.value)


def test_bad_config_exits_2_before_ray_starts(tmp_path):
    p = subprocess.run(
        [sys.executable, "-m", "rollout", "sweep", f"output_dir={tmp_path / 'x'}", "domains=[airline]", "task_ids=[999]"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 2
    assert "error: unknown task_id '999' for domain 'airline'" in p.stderr
    assert "Ray" not in p.stdout + p.stderr and not (tmp_path / "x" / "episodes.jsonl").exists()


def test_the_command_and_its_workers_print_no_tau2_log(tmp_path):
    """tau2 logs at import (loguru); the command and the pool's workers keep it quiet, from an
    environment without the process defaults."""
    from rollout.core.process_env import DEFAULTS

    env = {k: v for k, v in os.environ.items() if k not in DEFAULTS and k != "RAY_ADDRESS"}
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "rollout",
            "sweep",
            f"output_dir={tmp_path}",
            "domains=[telecom]",
            "max_tasks=1",
            "progress=false",
            "ray.num_cpus=2",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert "| tau2." not in p.stdout + p.stderr, p.stderr[-2000:]  # loguru's format: "... | WARNING  | tau2.utils..."


def test_smoke_defaults():
    cfg, smoke = prepare([])
    assert smoke and cfg.llm.scripted == "oracle" and cfg.max_tasks == 3
    assert cfg.domains == ["airline", "retail", "telecom", "mock"]
    with pytest.raises(InvalidInput):
        prepare(["sampling=greedy"])
