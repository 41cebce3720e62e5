"""Task sets and tau2's registry: validate-tasks, bad input, the episode core and the AReaL workflow.

The set is built from tau2's own airline tasks (tests/task_set_data.py): new ids, a changed
database, one broken task per way of being broken. Rewards are checked against tau2's own
evaluator on the set's database (tests/tau2_direct.py's `evaluate`, the set registered in tau2's
registry under its name).
"""

from __future__ import annotations

import asyncio
import json

import pytest

from rollout.agent.episode import EpisodeSpec
from rollout.core.config import load_config
from rollout.core.failures import InvalidInput
from rollout.env.domains import check_domain, known_domains, load_domain
from rollout.env.task_sets import register_task_sets
from rollout.env.task_validation import validate_tasks
from tests import task_set_data as data
from tests import tau2_direct
from tests.helpers import command, describe, run_specs, scripted_config


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return data.build(tmp_path_factory.mktemp("task_set"))


@pytest.fixture(scope="module")
def set_config(files, oracle_server):
    return scripted_config(oracle_server, extra=data.task_set_overrides(files))


def tau2_reward(domain: str, result) -> float:
    """tau2's evaluator on the environment tau2's registry builds for `domain`."""
    from tau2.data_model.message import AssistantMessage, ToolMessage, UserMessage
    from tau2.data_model.simulation import TerminationReason

    kinds = {"user": UserMessage, "assistant": AssistantMessage, "tool": ToolMessage}
    messages = [kinds[m["role"]].model_validate(m) for m in result.messages]
    task = load_domain(domain).task(result.task_id)
    return tau2_direct.evaluate(domain, task, messages, TerminationReason(result.termination), solo=result.solo).reward


def test_validate_tasks_flags_exactly_the_broken_tasks_with_their_reason(files, tmp_path):
    report = validate_tasks("airline", str(files["all"]), db=str(files["db"]))
    got = {i: (v.id, v.status, v.field) for i, v in enumerate(report.verdicts) if v.status != "valid"}
    assert got == data.BROKEN
    assert [v.id for v in report.verdicts if v.status == "valid"] == data.VALID_IDS
    assert "Reservation NQNU5R not found" in report.verdicts[8].message and "cancel_reservation" in report.verdicts[8].message
    assert "5,244" in report.verdicts[9].message and "user_scenario" in report.verdicts[5].field
    assert report.replayed == 7 and report.tasks_per_second > 0

    # the command: human report, JSON report, exit 1; the valid file alone exits 0
    run = command("validate-tasks")
    out = tmp_path / "report.json"
    assert run(["domain=airline", f"tasks={files['all']}", f"db={files['db']}", f"out={out}"]) == 1
    written = json.loads(out.read_text())
    assert written["counts"] == {
        "duplicate_id": 1,
        "gold_action_failed": 1,
        "gold_reward_below_1": 1,
        "schema_error": 1,
        "unknown_tool": 1,
        "valid": 5,
    }
    assert [t["status"] for t in written["tasks"]][5:] == [s for _, s, _ in data.BROKEN.values()]
    assert run(["domain=airline", f"tasks={files['valid']}", f"db={files['db']}"]) == 0


def test_the_database_decides_which_gold_actions_fail(files):
    """Over tau2's default database the reservation exists: the same task is valid."""
    with_db = validate_tasks("airline", str(files["all"]), db=str(files["db"]))
    without = validate_tasks("airline", str(files["all"]))
    assert with_db.verdicts[8].status == "gold_action_failed" and without.verdicts[8].status == "valid"


def test_validate_tasks_on_tau2s_shipped_tasks(tmp_path):
    """Every airline and telecom base task is valid; mock's known quirk is found (its env
    assertion needs task_2 completed, and it has no gold action)."""
    from tau2.registry import registry

    for domain, expected in (
        ("airline", {"valid": 50}),
        ("telecom", {"valid": 114}),
        ("mock", {"valid": 8, "gold_reward_below_1": 1}),
    ):
        path = tmp_path / f"{domain}.json"
        path.write_text(json.dumps([t.model_dump(mode="json") for t in registry.get_tasks_loader(domain)("base")]))
        report = validate_tasks(domain, str(path))
        assert report.counts == expected, report.text()
    assert report.verdicts[7].field == "ENV_ASSERTION" and "assert_task_status" in report.verdicts[7].message


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda tasks, db: tasks.write_text("{not json"), "is not valid JSON"),
        (lambda tasks, db: tasks.write_text(json.dumps({"id": "x"})), "must be a JSON list of tau2 tasks"),
        (lambda tasks, db: db.write_text(json.dumps({"flights": {}, "users": []})), "is not a FlightDB: field 'users'"),
    ],
)
def test_validate_tasks_bad_input_is_one_line_exit_2(files, tmp_path, capsys, change, expected):
    tasks, db = tmp_path / "tasks.json", tmp_path / "db.json"
    tasks.write_text(files["valid"].read_text())
    db.write_text(files["db"].read_text())
    change(tasks, db)
    assert command("validate-tasks")(["domain=airline", f"tasks={tasks}", f"db={db}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and expected in err and "\n" not in err


@pytest.mark.parametrize(
    "broken_index, expected",
    [
        (5, "task 'bad-schema' (#5): schema_error in field 'user_scenario'"),
        (6, "task 'bad-tool' (#5): unknown_tool in field 'evaluation_criteria.actions.0.name'"),
        (7, "task 'set-5' (#5): duplicate_id in field 'id'"),
    ],
)
def test_a_task_set_that_does_not_read_is_one_line_before_anything_runs(files, tmp_path, broken_index, expected):
    tasks = json.loads(files["all"].read_text())
    path = tmp_path / f"set_{broken_index}.json"
    path.write_text(json.dumps(tasks[:5] + [tasks[broken_index]]))
    cfg = load_config([f"task_sets.broken_{broken_index}.domain=airline", f"task_sets.broken_{broken_index}.tasks={path}"])
    with pytest.raises(InvalidInput) as e:
        register_task_sets(cfg.task_sets)
    assert expected in e.value.failure.message and "\n" not in e.value.failure.message
    with pytest.raises(InvalidInput, match="unknown domain .broken_"):
        check_domain(f"broken_{broken_index}")  # nothing half-registered


def test_a_wrong_database_and_a_taken_name_are_refused(files, tmp_path):
    bad_db = tmp_path / "db.json"
    bad_db.write_text(json.dumps({"flights": {}, "users": {}, "reservations": {"X": {"status": 3}}}))
    cfg = load_config(
        ["task_sets.wrong_db.domain=airline", f"task_sets.wrong_db.tasks={files['valid']}", f"task_sets.wrong_db.db={bad_db}"]
    )
    with pytest.raises(InvalidInput, match=r"is not a FlightDB: field 'reservations\.X\.reservation_id'"):
        register_task_sets(cfg.task_sets)
    cfg = load_config(["task_sets.retail.domain=airline", f"task_sets.retail.tasks={files['valid']}"])
    with pytest.raises(InvalidInput, match="task set name 'retail' is already a tau2 domain or task set"):
        register_task_sets(cfg.task_sets)
    cfg = load_config(["task_sets.x.domain=airlines", f"task_sets.x.tasks={files['valid']}"])
    with pytest.raises(InvalidInput, match="unknown tau2 domain 'airlines'; valid: mock, airline, retail, telecom"):
        register_task_sets(cfg.task_sets)


def test_oracle_scores_one_on_the_set_and_tau2_agrees_over_the_sets_database(set_config):
    specs = [EpisodeSpec(data.SET_NAME, t, solo=False) for t in data.VALID_IDS]
    results = run_specs(set_config, specs)
    assert all(r.reward == 1.0 for r in results), describe(results)
    assert {(r.domain, r.tau2_domain) for r in results} == {(data.SET_NAME, "airline")}
    assert [tau2_reward(data.SET_NAME, r) for r in results] == [1.0] * len(results)
    shown = json.dumps(next(r for r in results if r.task_id == "set-5").messages)
    assert data.CHANGED_EMAIL in shown  # the set's database, not airline's
    assert data.SET_NAME in known_domains()


def test_unknown_task_of_a_set_names_the_set(set_config):
    from rollout.agent.episode import check_episode

    with pytest.raises(InvalidInput, match="unknown task_id '5' for domain 'my_airline'"):
        check_episode(EpisodeSpec(data.SET_NAME, "5", solo=False), set_config)


@pytest.mark.parametrize("name, solo", [("telecom_small", True), ("telecom-workflow", True), ("telecom_full", True)])
def test_tau2_registered_task_sets_and_domains_run_with_the_oracle(oracle_server, name, solo):
    """tau2's registry, not a fixed list: its telecom-workflow domain and telecom_full /
    telecom_small task sets (on telecom's environment) run, the oracle at 1.0, tau2 agreeing."""
    assets = load_domain(name)
    ids = assets.task_ids()[:3] if name != "telecom_full" else assets.task_ids()[-3:]
    results = run_specs(scripted_config(oracle_server, user=False), [EpisodeSpec(name, t, solo=solo) for t in ids])
    assert all(r.reward == 1.0 for r in results), describe(results)
    assert {r.tau2_domain for r in results} == {"telecom-workflow" if name == "telecom-workflow" else "telecom"}
    tau2_name = name if name == "telecom-workflow" else "telecom"
    assert [tau2_reward(tau2_name, r) for r in results] == [1.0] * 3


def test_episode_command_runs_a_task_set(files, tmp_path, capsys):
    conf = tmp_path / "sets.yaml"
    conf.write_text(f"task_sets:\n  cli_set:\n    domain: airline\n    tasks: {files['valid']}\n    db: {files['db']}\n")
    run = command("episode")
    assert run(["--config", str(conf), "domain=cli_set", "list=true"]) == 0
    assert capsys.readouterr().out.split() == data.VALID_IDS
    assert run(["--config", str(conf), "domain=cli_set", "task_id=set-7", "llm.scripted=oracle", "json=true"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["reward"], result["domain"], result["tau2_domain"]) == (1.0, "cli_set", "airline")


def test_areal_workflow_and_dataset_rows_run_the_set(files, oracle_server, tmp_path):
    from rollout.areal import Tau2Agent
    from rollout.areal.dataset import dataset_rows
    from rollout.scripted.endpoints import AGENT_MODEL, USER_MODEL

    conf = tmp_path / "sets.yaml"
    conf.write_text(f"task_sets:\n  areal_set:\n    domain: airline\n    tasks: {files['valid']}\n    db: {files['db']}\n")
    rows = dataset_rows("areal_set", "base", config=str(conf))
    assert [r["task_id"] for r in rows] == data.VALID_IDS and {r["domain"] for r in rows} == {"areal_set"}
    agent = Tau2Agent(
        llm={"model": AGENT_MODEL, "max_retries": 0},
        user_llm={"base_url": oracle_server.url, "model": USER_MODEL, "max_retries": 0},
        task_sets={"areal_set": {"domain": "airline", "tasks": str(files["valid"]), "db": str(files["db"])}},
    )

    async def main():
        return [await agent.run(row, base_url=oracle_server.url, api_key="k") for row in rows]

    assert asyncio.run(main()) == [1.0] * len(rows)


def test_a_task_set_on_the_aenv_backend_is_refused_before_any_call(set_config):
    from dataclasses import replace

    from rollout.agent.episode import check_episode

    cfg = replace(set_config, env=replace(set_config.env, backend="aenv"))
    with pytest.raises(InvalidInput, match="task set 'my_airline' runs on env.backend=local only"):
        check_episode(EpisodeSpec(data.SET_NAME, "set-5", solo=False), cfg)


def test_a_pool_with_a_broken_task_set_refuses_before_ray_starts(files):
    import ray

    from rollout.pool import RolloutPool

    bad = ["task_sets.pool_set.domain=airline", f"task_sets.pool_set.tasks={files['all']}"]
    ray_before = ray.is_initialized()  # an earlier test of this process may have left one running
    with pytest.raises(
        InvalidInput, match=r"task set 'pool_set' .*task 'bad-schema' \(#5\): schema_error in field 'user_scenario'"
    ):
        RolloutPool(bad)
    assert ray.is_initialized() == ray_before  # the pool started none


def test_validate_tasks_solo_follows_tau2s_solo_rule():
    """mock solo: the three tasks tau2's solo agent refuses, and the one whose communicate_info
    has no text channel in solo mode (tests/integration/test_oracle.py's MOCK_SOLO_UNSATISFIABLE)."""
    from tau2.domains.mock.utils import MOCK_DATA_DIR  # tau2's own mock task file

    path = str(MOCK_DATA_DIR / "tasks.json")
    report = validate_tasks("mock", path, solo=True)
    not_valid = {v.id: (v.status, v.field) for v in report.verdicts if v.status != "valid"}
    assert not_valid == {
        "create_task_1_nl_eval": ("schema_error", "ticket"),
        "update_task_with_message_history": ("schema_error", "ticket"),
        "update_task_with_history_and_env_assertions": ("schema_error", "ticket"),
        "update_task_with_initialization_data": ("gold_reward_below_1", "COMMUNICATE"),
    }
    with pytest.raises(InvalidInput, match="domain 'airline' does not support solo mode"):
        validate_tasks("airline", path, solo=True)
