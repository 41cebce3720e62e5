"""A task set on Ray: a sweep beside a tau2 domain, its tau2 Results export, a pool batch.

The set (tests/task_set_data.py) is tau2's airline tasks under new ids over a changed database.
The sweep's export is re-scored by tau2's own `compute_simulation_rewards` (what `tau2
evaluate-trajs` runs) with the set registered in tau2's registry, and must equal our rewards.
"""

from __future__ import annotations

import json

import pytest

from rollout.pool import RolloutPool, RolloutRequest
from rollout.scripted import ScriptedServer
from rollout.scripted.endpoints import AGENT_MODEL, USER_MODEL
from rollout.sweep.records import EpisodeStore
from rollout.sweep.run import prepare, run_sweep
from tests import task_set_data as data
from tests.helpers import command, sweep_args

# a name of its own: tau2's registry is per process, and the integration tests register the set's
# files of their own temporary directory under data.SET_NAME in the same pytest process
SET = "my_airline_runs"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return data.build(tmp_path_factory.mktemp("task_set"))


def test_sweep_over_a_domain_and_a_task_set_exports_what_tau2_rescores_equal(ray_cluster, files, tmp_path):
    from tau2.data_model.simulation import Results
    from tau2.scripts.evaluate_trajectories import compute_simulation_rewards

    from rollout.env.domains import load_domain

    with ScriptedServer("oracle", record=False) as server:
        cfg, _ = prepare(
            sweep_args(
                server,
                tmp_path,
                f"domains=[airline,{SET}]",
                "max_tasks=3",
                "ray.num_workers=1",
                *data.task_set_overrides(files, SET),
            )
        )
        summary = run_sweep(cfg).summary
    with EpisodeStore(tmp_path) as store:
        records = list(store.records())
    assert sorted((r.domain, r.tau2_domain, r.task_id) for r in records) == sorted(
        [("airline", "airline", t) for t in load_domain("airline").task_ids()[:3]]
        + [(SET, "airline", t) for t in data.VALID_IDS[:3]]
    )
    assert all(r.reward == 1.0 for r in records)
    assert summary["domains"][SET]["tau2_domain"] == "airline" and summary["all"]["mean_reward"] == 1.0
    assert data.CHANGED_EMAIL in json.dumps(next(r.messages for r in records if r.task_id == "set-5"))
    line = json.loads((tmp_path / "episodes.jsonl").read_text().splitlines()[0])
    assert line["tau2_domain"] == "airline"

    exported = Results.load(tmp_path / f"tau2_results_{SET}.json")
    assert exported.info.environment_info.domain_name == SET
    assert sorted(t.id for t in exported.tasks) == sorted(data.VALID_IDS[:3])  # the tasks travel with the results
    ours = {s.task_id: s.reward_info.reward for s in exported.simulations}
    rescored = compute_simulation_rewards(exported)  # the set is registered in this process by the sweep
    assert {s.task_id: s.reward_info.reward for s in rescored.simulations} == ours == dict.fromkeys(data.VALID_IDS[:3], 1.0)

    sft = tmp_path / "sft.jsonl"  # the SFT export selects the set by its name
    assert command("sft")([f"output_dir={tmp_path}", f"domains=[{SET}]", f"out={sft}"]) == 0
    assert len(sft.read_text().splitlines()) == 3


def test_pool_batch_runs_the_set_as_trainers_rows_name_it(ray_cluster, files):
    """verl's and SkyRL's dataset rows carry the name as they carry a domain; the request they
    build is RolloutRequest(name, task_id): here a GRPO-sized batch of them."""
    from tau2.data_model.message import AssistantMessage, ToolMessage, UserMessage
    from tau2.data_model.simulation import TerminationReason

    from rollout.env.domains import load_domain
    from tests import tau2_direct

    requests = [RolloutRequest(SET, t, sample=k) for t in data.VALID_IDS for k in range(2)]
    with ScriptedServer("oracle", record=False) as server:
        overrides = [
            f"llm.base_url={server.url}",
            f"llm.model={AGENT_MODEL}",
            f"user_llm.base_url={server.url}",
            f"user_llm.model={USER_MODEL}",
            "llm.max_retries=0",
            *data.task_set_overrides(files, SET),
        ]
        with RolloutPool(overrides, ray={"num_workers": 1, "slots_per_worker": 8}) as pool:
            trajectories = pool.run(requests)
    assert [t.result.reward for t in trajectories] == [1.0] * len(requests), [t.result.failure for t in trajectories]
    assert {(t.domain, t.result.tau2_domain) for t in trajectories} == {(SET, "airline")}
    kinds = {"user": UserMessage, "assistant": AssistantMessage, "tool": ToolMessage}
    for t in trajectories:
        messages = [kinds[m["role"]].model_validate(m) for m in t.result.messages]
        task = load_domain(SET).task(t.task_id)
        assert tau2_direct.evaluate(SET, task, messages, TerminationReason(t.termination), solo=False).reward == 1.0
