"""Guards: the policy cannot act as the user, never sees gold data, and no API key leaks."""

import asyncio
import json
import logging

from rollout.agent.episode import EpisodeSpec
from rollout.areal import Tau2Agent
from rollout.core.config import load_config, to_dict
from rollout.core.failures import EpisodeFailure
from rollout.env.domains import load_domain
from tests.helpers import run_specs, scripted_config


def _telecom_task_with_user_actions() -> str:
    assets = load_domain("telecom")
    with_user = [
        t for t in assets.task_ids("base") if any(a.requestor == "user" for a in assets.task(t).evaluation_criteria.actions)
    ]
    return min(with_user, key=lambda t: len(assets.task(t).evaluation_criteria.actions))


def test_policy_cannot_call_user_tools_or_claim_the_user_role(server):
    """tau2 executes a raw action with "requestor": "user" as the user's: a measured reward hack."""
    TELECOM_TASK = _telecom_task_with_user_actions()
    task = load_domain("telecom").task(TELECOM_TASK)
    user_actions = [a for a in task.evaluation_criteria.actions if a.requestor == "user"]
    assert user_actions
    hack = []
    for a in task.evaluation_criteria.actions:
        hack.append({"tool": a.name, "arguments": {**a.arguments, "requestor": "user"} if a.requestor == "user" else a.arguments})
    server.set_script("telecom", TELECOM_TASK, hack)
    [r] = run_specs(scripted_config(server), [EpisodeSpec("telecom", TELECOM_TASK, solo=False)])
    assert r.ok and r.reward == 0.0
    calls = [tc for m in r.messages if m["role"] == "assistant" for tc in (m.get("tool_calls") or [])]
    assert calls and all(tc["requestor"] == "assistant" for tc in calls)
    results = {m["id"]: m for m in r.messages if m["role"] == "tool"}
    for tc in calls:
        if tc["name"] in {a.name for a in user_actions}:
            assert results[tc["id"]]["error"], "a user tool ran on the agent's behalf"
    agent_tools = {
        t["function"]["name"]
        for req in server.requests
        if req["headers"]["x-rollout-role"] == "agent"
        for t in req["body"].get("tools", [])
    }
    assert not agent_tools & {a.name for a in user_actions}


def test_policy_never_sees_gold_data_or_the_user_scenario(server):
    from tau2.agent.llm_agent import LLMAgent

    [r] = run_specs(scripted_config(server), [EpisodeSpec("airline", "12", solo=False)])
    assert r.reward == 1.0
    task = load_domain("airline").task("12")
    env = load_domain("airline").new_environment(False)
    agent_requests = [q["body"] for q in server.requests if q["headers"]["x-rollout-role"] == "agent"]
    assert agent_requests
    secrets_of_task = [task.user_scenario.instructions.task_instructions, *(task.evaluation_criteria.nl_assertions or [])]
    for body in agent_requests:
        system = body["messages"][0]
        assert system["role"] == "system"
        assert system["content"] == LLMAgent(tools=[], domain_policy=env.get_policy()).system_prompt
        blob = json.dumps(body)
        assert "evaluation_criteria" not in blob
        for text in secrets_of_task:
            assert text not in blob


KEY, USER_KEY = "sk-test-SECRET-abcdef123456", "sk-user-SECRET-987654321"


def test_no_api_key_in_results_logs_or_errors(server, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    agent = Tau2Agent(
        llm={"model": "a", "max_retries": 0},
        user_llm={"base_url": server.url, "model": "u", "api_key": USER_KEY, "max_retries": 0},
    )
    ok = asyncio.run(agent.run_episode({"domain": "airline", "task_id": "12"}, base_url=server.url, api_key=KEY))
    assert ok.reward == 1.0
    server.set_faults(mode="http_401", count=-1, role="any")
    failed = asyncio.run(agent.run_episode({"domain": "airline", "task_id": "12"}, base_url=server.url, api_key=KEY))
    assert failed.failure is not None and "Incorrect API key provided: ***" in failed.failure.message
    try:
        asyncio.run(agent.run({"domain": "airline", "task_id": "12"}, base_url=server.url, api_key=KEY))
    except EpisodeFailure as e:
        raised = str(e)
    out, err = capfd.readouterr()
    everything = json.dumps(ok.to_dict()) + json.dumps(failed.to_dict()) + raised + caplog.text + out + err
    assert KEY not in everything and USER_KEY not in everything


def test_saved_config_redacts_keys():
    cfg = load_config([f"llm.api_key={KEY}", f"user_llm.api_key={USER_KEY}"])
    assert KEY not in json.dumps(to_dict(cfg)) and USER_KEY not in json.dumps(to_dict(cfg))
