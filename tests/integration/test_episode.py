"""Episode semantics: what reaches the model, tau2's limits and errors, fault handling."""

import json

import pytest

from rollout.agent.episode import EpisodeSpec
from rollout.scripted.endpoints import USER_MODEL
from tests.helpers import run_specs, scripted_config


def agent_bodies(server):
    return [q["body"] for q in server.requests if q["headers"]["x-rollout-role"] == "agent"]


def test_whole_conversation_is_carried_across_turns(server):
    [r] = run_specs(scripted_config(server), [EpisodeSpec("airline", "12", solo=False)])
    assert r.reward == 1.0
    bodies = agent_bodies(server)
    assert len(bodies) == 6
    for earlier, later in zip(bodies, bodies[1:]):
        assert later["messages"][: len(earlier["messages"])] == earlier["messages"]
    roles = [m["role"] for m in bodies[-1]["messages"]]
    assert roles[:3] == ["system", "assistant", "user"]  # tau2's agent sees its greeting, then the user
    assert roles.count("tool") == 5


def test_sampling_presets_and_overrides_reach_the_server(server):
    run_specs(
        scripted_config(server, extra=["sampling=eval", "sampling.max_tokens=77", "sampling.extra_body={top_k: 5}"]),
        [EpisodeSpec("mock", "create_task_1", seed=1234, solo=False)],
    )
    body = agent_bodies(server)[0]
    assert body["temperature"] == 0.0 and body["max_tokens"] == 77 and body["top_k"] == 5 and body["seed"] == 1234
    server.requests.clear()
    run_specs(scripted_config(server, extra=["sampling=train"]), [EpisodeSpec("mock", "create_task_1", solo=False)])
    body = agent_bodies(server)[0]
    assert body["temperature"] == 1.0 and "seed" not in body


def test_user_simulator_gets_tau2s_prompt_and_device_tools(server):
    from tau2.user.user_simulator import UserSimulator as Tau2User

    from rollout.env.domains import load_domain

    assets = load_domain("telecom")
    task_id = assets.task_ids("base")[0]
    run_specs(scripted_config(server), [EpisodeSpec("telecom", task_id, solo=False)])
    user = [q["body"] for q in server.requests if q["headers"]["x-rollout-role"] == "user"][0]
    env = assets.new_environment(False)
    expected = Tau2User(
        tools=env.get_user_tools(), instructions=str(assets.task(task_id).user_scenario)
    ).system_prompt  # as tau2 run
    assert user["messages"][0] == {"role": "system", "content": expected}
    assert user["messages"][1] == {"role": "user", "content": "Hi! How can I help you today?"}
    assert {t["function"]["name"] for t in user["tools"]} == {t.name for t in env.get_user_tools()}
    assert user["temperature"] == 0.0


def test_malformed_tool_json_ends_the_episode_as_tau2_scores_it(server):
    """tau2's runner crashes on unparseable arguments (its --skip-failed-samples scores 0): by
    default the episode ends there as agent_error, reward 0.0, the call recorded."""
    server.set_faults(mode="malformed_tool_json", count=1, role="agent")
    [r] = run_specs(scripted_config(server), [EpisodeSpec("airline", "12", solo=False)])
    assert r.ok and r.termination == "agent_error" and r.reward == 0.0
    assert len(r.invalid_tool_calls) == 1 and len(agent_bodies(server)) == 1


def test_malformed_tool_json_feedback_mode_shows_the_error_and_replays(server):
    server.set_faults(mode="malformed_tool_json", count=1, role="agent")
    cfg = scripted_config(server, extra=["episode.invalid_tool_args=feedback"])
    [r] = run_specs(cfg, [EpisodeSpec("airline", "12", solo=False)])
    assert r.ok and r.reward == 1.0  # scored by tau2: the bad call replays deterministically
    assert len(r.invalid_tool_calls) == 1 and r.tool_errors == 1
    second = agent_bodies(server)[1]["messages"]
    assert second[-2]["tool_calls"][0]["function"]["arguments"] == '{"broken": '  # the model sees its own call
    assert "invalid JSON in tool call arguments" in second[-1]["content"]


@pytest.mark.parametrize("role", ["agent", "user"])
def test_empty_replies_are_regenerated_like_tau2(server, role):
    """tau2's generate regenerates an empty reply up to 3 times; the 4th empty one is final."""
    server.set_faults(mode="empty", count=3, role=role)
    [r] = run_specs(scripted_config(server), [EpisodeSpec("mock", "create_task_1", solo=False)])
    assert r.ok and r.reward == 1.0 and server.stats["faults"] == 3


def test_transient_500_is_retried_by_the_client(server):
    server.set_faults(mode="http_500", count=1, role="agent")
    [r] = run_specs(scripted_config(server, extra=["llm.max_retries=1"]), [EpisodeSpec("mock", "create_task_1", solo=False)])
    assert r.reward == 1.0 and server.stats["faults"] == 1


def test_persistent_500_is_a_model_error_not_a_reward(server):
    server.set_faults(mode="http_500", count=-1, role="agent")
    [r] = run_specs(scripted_config(server), [EpisodeSpec("mock", "create_task_1", solo=False)])
    assert r.reward is None and r.failure.failure_class.value == "model_error"
    assert "500" in r.failure.message


def test_empty_user_message_is_a_user_sim_error(server):
    server.set_faults(mode="empty", count=-1, role="user")
    [r] = run_specs(scripted_config(server), [EpisodeSpec("retail", "0", solo=False)])
    assert r.reward is None and r.failure.failure_class.value == "user_sim_error"


def test_empty_agent_message_is_scored_as_agent_error(server):
    server.set_faults(mode="empty", count=-1, role="agent")
    [r] = run_specs(scripted_config(server), [EpisodeSpec("mock", "create_task_1", solo=False)])
    assert r.ok and r.termination == "agent_error" and r.reward == 0.0


def test_max_steps_ends_the_episode_like_tau2(server):
    import json as _json

    from tau2.gym.gym_agent import AgentGymEnv

    [r] = run_specs(scripted_config(server, extra=["episode.max_steps=6"]), [EpisodeSpec("airline", "12", solo=False)])
    assert r.ok and r.termination == "max_steps" and r.reward == 0.0
    # tau2 counts every message passed and checks the limit only when the next receiver is
    # not the environment: user(1), 3 x (call, results) -> 7 steps, 3 agent tool calls.
    assert r.steps == 7
    ours = sum(len(m.get("tool_calls") or []) for m in r.messages if m["role"] == "assistant")
    gym = AgentGymEnv(
        "airline",
        "12",
        max_steps=6,
        user_llm=f"openai/{USER_MODEL}",
        user_llm_args={"api_base": server.url, "api_key": "x", "extra_headers": {"X-Rollout-Role": "user"}},
    )
    gym.reset()
    gold = gym._get_info()["task"].evaluation_criteria.actions
    for n, action in enumerate(gold, start=1):
        *_, terminated, _, _ = gym.step(_json.dumps({"name": action.name, "arguments": action.arguments}))
        if terminated:
            break
    assert terminated and ours == n == 3


def test_too_many_tool_errors_ends_the_episode(server):
    server.set_script("mock", "create_task_1", [{"tool": "no_such_tool", "arguments": {}}] * 12)
    [r] = run_specs(scripted_config(server), [EpisodeSpec("mock", "create_task_1", solo=False)])
    assert r.ok and r.termination == "too_many_errors" and r.tool_errors == 10 and r.reward == 0.0
    results = [m for m in r.messages if m["role"] == "tool"]
    assert results[0]["content"] == "Error: Tool 'no_such_tool' not found."  # tau2's own answer, replayable


def test_solo_text_without_stop_is_an_agent_error(server):
    server.set_script("telecom", _telecom_id(), [{"text": "I think it is fixed."}])
    [r] = run_specs(scripted_config(server, user=False), [EpisodeSpec("telecom", _telecom_id(), solo=True)])
    assert r.ok and r.termination == "agent_error" and r.reward == 0.0


def _telecom_id():
    from rollout.env.domains import load_domain

    return load_domain("telecom").task_ids("base")[0]


def test_result_is_json_ready_with_usage_and_durations(server):
    [r] = run_specs(scripted_config(server), [EpisodeSpec("airline", "12", solo=False)])
    d = json.loads(json.dumps(r.to_dict()))
    assert d["usage"]["agent"]["requests"] == 6 and d["usage"]["user"]["requests"] == 2
    assert d["durations"]["total_s"] > 0 and d["reward_info"]["reward_breakdown"] == {"DB": 1.0, "COMMUNICATE": 1.0}
    assert [m["turn_idx"] for m in d["messages"]] == list(range(len(d["messages"])))
