"""A sweep can always be finished: reruns retry infrastructure failures, caps never time out.

Each test here reproduces a failure seen from outside: a rerun after an endpoint outage that
ran nothing, and cap waits counted as episode time.
"""

from __future__ import annotations

import json

from rollout.scripted import Faults, ScriptedServer
from rollout.scripted.endpoints import AGENT_MODEL, USER_MODEL
from rollout.sweep.records import EPISODES_FILE
from tests.helpers import command

main = command("sweep")


def sweep_args(server_url, out, *extra):
    return [
        f"llm.base_url={server_url}",
        f"llm.model={AGENT_MODEL}",
        "llm.max_retries=0",
        f"user_llm.base_url={server_url}",
        f"user_llm.model={USER_MODEL}",
        "user_llm.max_retries=0",
        f"output_dir={out}",
        "progress=false",
        "ray.num_workers=1",
        "retry.max_attempts=1",
        "retry.backoff_s=0",
        *extra,
    ]


def test_a_rerun_after_an_outage_scores_every_episode(ray_cluster, tmp_path, capsys):
    args = ["domains=[mock]", "max_tasks=3"]
    with ScriptedServer("oracle", record=False) as server:
        server.set_faults(mode="http_500", count=-1, role="agent")  # the policy endpoint is down
        assert main(sweep_args(server.url, tmp_path, *args)) == 3  # done, but not every episode scored
        first = capsys.readouterr().out
        assert "3 of 3 planned episodes are not scored (model_error=3)" in first
        server.set_faults(mode="none")  # back up: the rerun retries them
        assert main(sweep_args(server.url, tmp_path, *args)) == 0
        second = capsys.readouterr().out
    assert "3 to run (3 of them failed on infrastructure before and are run again)" in second
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["run"]["all_scored"] and summary["all"]["scored"] == 3 and summary["run"]["episodes_run_again"] == 3
    lines = (tmp_path / EPISODES_FILE).read_text().splitlines()
    assert len(lines) == 6 and [json.loads(x)["status"] for x in lines] == ["failed"] * 3 + ["ok"] * 3  # nothing lost
    # and a third run has nothing left to do
    with ScriptedServer("oracle", record=False) as server:
        assert main(sweep_args(server.url, tmp_path, *args)) == 0
    assert "0 to run" in capsys.readouterr().out


def test_a_sweep_with_nothing_scored_is_not_a_success(ray_cluster, tmp_path, capsys):
    assert (
        main(sweep_args("http://127.0.0.1:9/v1", tmp_path, "domains=[mock]", "max_tasks=1", "llm.model=m", "user_llm.model=u"))
        == 3
    )
    assert json.loads((tmp_path / "summary.json").read_text())["run"]["all_scored"] is False


def test_waiting_for_a_cap_is_not_episode_time(ray_cluster, tmp_path):
    """llm.max_concurrency=1, 25 airline episodes on 16 slots (6 agent completions each), 0.1 s
    per completion, episode.timeout_s=4: the episodes queue for the cap far longer than 4 s,
    and none of them times out."""
    from rollout.sweep.run import prepare, run_sweep

    with ScriptedServer("oracle", record=False, faults=Faults(latency_s=0.1)) as server:
        cfg, _ = prepare(
            sweep_args(
                server.url,
                tmp_path,
                "domains=[airline]",
                "task_ids=[12]",
                "num_samples=25",
                "llm.max_concurrency=1",
                "episode.timeout_s=4",
                "ray.slots_per_worker=16",
            )
        )
        summary = run_sweep(cfg).summary
    assert summary["all"]["failures"] == {} and summary["all"]["scored"] == 25
    assert summary["run"]["wall_s"] > 2 * 4  # the cap made the sweep far longer than one episode's budget
