"""The AReaL entry points: Tau2Agent.run and run_agent_return_reward."""

import asyncio
import concurrent.futures
import copy
import multiprocessing
import os
import time

import openai
import pytest

from rollout.areal import Tau2Agent, run_agent_return_reward
from rollout.core.failures import EpisodeFailure, FailureClass, InvalidInput
from rollout.scripted.endpoints import AGENT_MODEL, USER_MODEL

TELECOM_SOLO = {
    "domain": "telecom",
    "task_id": "[service_issue]airplane_mode_on|break_apn_settings|contract_end_suspension|unseat_sim_card[PERSONA:Easy]",
}


def agent_for(server, **extra):
    return Tau2Agent(
        **{
            "llm": {"model": AGENT_MODEL, "max_retries": 0},
            "user_llm": {"base_url": server.url, "model": USER_MODEL, "max_retries": 0},
            **extra,
        }
    )


def test_run_returns_python_float(server):
    reward = asyncio.run(agent_for(server).run({"domain": "airline", "task_id": "12"}, base_url=server.url, api_key="k"))
    assert type(reward) is float and reward == 1.0


@pytest.mark.parametrize("caller_client", [True, False])
def test_callers_http_client_is_used_when_asked_and_left_open(server, caller_client):
    """llm.caller_http_client=true: every agent request goes over the caller's client (AReaL's;
    here openai's httpx2-based default); false (the default): over this project's own client."""
    seen = []

    async def main():
        async def hook(request):
            seen.append(request.url.path)

        client = openai.DefaultAsyncHttpxClient(event_hooks={"request": [hook]})
        agent = agent_for(server, llm={"model": AGENT_MODEL, "max_retries": 0, "caller_http_client": caller_client})
        rewards = [
            await agent.run({"domain": "mock", "task_id": "create_task_1"}, base_url=server.url, api_key="k", http_client=client)
            for _ in range(2)
        ]
        assert not client.is_closed
        await client.aclose()
        return rewards

    assert asyncio.run(main()) == [1.0, 1.0]
    agent_calls = server.stats["agent"]
    assert agent_calls > 0 and seen.count("/v1/chat/completions") == (agent_calls if caller_client else 0)


def test_concurrent_runs_on_one_data_dict_are_independent(server):
    data = {"domain": "airline", "task_id": "12", "split": "base"}
    before = copy.deepcopy(data)

    async def main():
        agent = agent_for(server)
        return await asyncio.gather(*[agent.run(data, base_url=server.url, api_key=f"session-{i}") for i in range(4)])

    assert asyncio.run(main()) == [1.0] * 4
    assert data == before
    episodes = {r["headers"]["x-rollout-episode"] for r in server.requests}
    assert len(episodes) == 4  # four separate episodes, each with its own environment
    agent_requests = [r for r in server.requests if r["headers"]["x-rollout-role"] == "agent"]
    assert len(agent_requests) == 4 * 6  # each episode replayed all 5 gold actions, then closed


def _subproc_episode(agent, data, env):
    os.environ.update(env)
    return asyncio.run(agent.run(data))


def test_subproc_style_reads_openai_env_vars(server):
    """AReaL's subproc mode: the agent is pickled to a worker process and run with no kwargs."""
    agent = Tau2Agent(llm={"model": AGENT_MODEL})
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        env = {"OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "session-key"}
        reward = pool.submit(_subproc_episode, agent, TELECOM_SOLO, env).result(timeout=300)
    assert type(reward) is float and reward == 1.0


def test_run_agent_return_reward_uses_environment(server, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    monkeypatch.setenv("TAU2_USER_LLM", f"openai/{USER_MODEL}")
    monkeypatch.setenv("TAU2_USER_LLM_API_BASE", server.url)
    monkeypatch.setenv("TAU2_USER_LLM_API_KEY", "u")
    assert asyncio.run(run_agent_return_reward({"domain": "airline", "task_id": "12"})) == 1.0
    assert any(r["body"]["model"] == USER_MODEL for r in server.requests)  # the openai/ prefix is stripped


def test_run_agent_return_reward_without_user_llm_runs_solo(server, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    assert asyncio.run(run_agent_return_reward(TELECOM_SOLO)) == 1.0
    assert {r["headers"]["x-rollout-mode"] for r in server.requests} == {"solo"}


def test_airline_without_user_llm_is_a_clear_error(server, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    with pytest.raises(InvalidInput, match="needs a user simulator endpoint"):
        asyncio.run(run_agent_return_reward({"domain": "airline", "task_id": "1"}))
    assert server.stats["agent"] == 0


def test_endpoint_down_raises_not_zero():
    agent = Tau2Agent(llm={"model": "m", "max_retries": 0})
    with pytest.raises(EpisodeFailure) as e:
        asyncio.run(agent.run(TELECOM_SOLO, base_url="http://127.0.0.1:9/v1", api_key="k"))
    assert e.value.failure_class is FailureClass.MODEL_ERROR


def test_hanging_endpoint_raises_timeout_within_limit(server):
    server.set_faults(mode="hang", count=-1, role="agent", hang_s=60)
    agent = agent_for(server, episode={"timeout_s": 2})
    start = time.monotonic()
    with pytest.raises(EpisodeFailure) as e:
        asyncio.run(agent.run(TELECOM_SOLO | {"solo": True}, base_url=server.url))
    assert e.value.failure_class is FailureClass.TIMEOUT
    assert time.monotonic() - start < 10


def test_user_simulator_down_raises_user_sim_error(server):
    agent = Tau2Agent(
        llm={"model": "a", "max_retries": 0}, user_llm={"base_url": "http://127.0.0.1:9/v1", "model": "u", "max_retries": 0}
    )
    with pytest.raises(EpisodeFailure) as e:
        asyncio.run(agent.run({"domain": "retail", "task_id": "0"}, base_url=server.url))
    assert e.value.failure_class is FailureClass.USER_SIM_ERROR


@pytest.mark.parametrize(
    "data,match",
    [
        ({"domain": "banking", "task_id": "1"}, "unknown domain 'banking'; valid domains: airline, retail, telecom, mock"),
        ({"domain": "airline", "task_id": "999"}, "unknown task_id '999' for domain 'airline'"),
        ({"domain": "airline"}, "missing 'task_id'"),
        ({"domain": "airline", "task_id": "1", "temprature": 1}, "unknown data keys"),
        ({"domain": "airline", "task_id": "0", "split": "nope"}, "unknown split 'nope' for domain 'airline'"),
        ({"domain": "airline", "task_id": "0", "split": "test"}, "task_id '0' is not in split 'test' of domain 'airline'"),
    ],
)
def test_bad_input_is_rejected_before_any_model_call(server, data, match):
    with pytest.raises(InvalidInput, match=match):
        asyncio.run(agent_for(server).run(data, base_url=server.url))
    assert server.stats["agent"] == 0 and server.stats["user"] == 0


def test_bad_workflow_kwargs_fail_at_construction():
    with pytest.raises(InvalidInput, match=r"unknown key 'episode.timeout' \(did you mean 'episode.timeout_s'\?\)"):
        Tau2Agent(episode={"timeout": 5})
