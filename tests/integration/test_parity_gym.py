"""Parity: for the same action sequence, our reward equals tau2's own AgentGymEnv reward."""

import pytest

from rollout.agent.episode import EpisodeSpec
from rollout.bench.baselines import gold_script, play_in_gym
from rollout.env.domains import load_domain
from tests.helpers import run_specs, scripted_config

CASES = [  # (domain, task_id, solo)
    ("airline", "12", False),
    ("airline", "5", False),
    ("airline", "23", False),
    ("retail", "0", False),
    ("retail", "105", False),
    ("telecom", None, False),
    ("telecom", None, True),
    ("mock", "create_task_1", False),
    ("mock", "update_task_with_initialization_actions", True),
]


# Tasks whose gold ends in a DB write, so a wrong argument there must cost the reward.
DISCRIMINATING = {("airline", "12"), ("airline", "23"), ("retail", "0")}


def wrong_write(actions: list[dict]) -> list[dict]:
    """The same sequence with one string argument of the last tool call (usually the write) changed."""
    out = [dict(a) for a in actions]
    for a in reversed(out):
        args = a.get("arguments") or {}
        key = next((k for k, v in args.items() if isinstance(v, str)), None)
        if key is not None:
            a["arguments"] = {**args, key: args[key] + "_WRONG"}
            return out
    return out[:-1]  # no string argument anywhere: drop the last action instead


def _cases():
    for domain, task_id, solo in CASES:
        assets = load_domain(domain)
        if task_id is None:  # the base telecom task with the fewest gold actions
            task_id = min(assets.task_ids("base"), key=lambda t: len(assets.task(t).evaluation_criteria.actions))
        task = assets.task(task_id)
        gold = gold_script(task, solo)
        for name, actions in (("gold", gold), ("noop", []), ("wrong_write", wrong_write(gold))):
            yield pytest.param(
                domain, task_id, solo, actions, name, id=f"{domain}-{task_id[:24]}-{'solo' if solo else 'user'}-{name}"
            )


@pytest.mark.parametrize("domain,task_id,solo,actions,kind", list(_cases()))
def test_reward_equals_agent_gym_env(server, domain, task_id, solo, actions, kind):
    server.set_script(domain, task_id, actions)
    [ours] = run_specs(scripted_config(server, user=not solo), [EpisodeSpec(domain, task_id, solo=solo)])
    assert ours.ok, ours.failure
    gym_reward, gym_info = play_in_gym(domain, task_id, actions, solo=solo, user_url=server.url)
    assert ours.reward == gym_reward
    assert ours.reward_info["reward_breakdown"] == gym_info["reward_breakdown"]
    if kind == "gold":
        assert ours.reward == 1.0
    if kind == "wrong_write" and (domain, task_id) in DISCRIMINATING:
        assert ours.reward == 0.0  # the wrong write really changes the outcome here
