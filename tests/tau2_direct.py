"""An independent reference: trajectories built by hand and scored by tau2 alone.

Nothing here uses the rollout package: it is tau2's own environment and evaluator, so the
tests can compare our rewards against what tau2 gives for the same trajectory.
"""

from __future__ import annotations

import uuid

from tau2.data_model.message import AssistantMessage, UserMessage
from tau2.data_model.simulation import SimulationRun, TerminationReason
from tau2.evaluator.evaluator import EvaluationType, evaluate_simulation
from tau2.registry import registry


def noop_reward(domain: str, task):
    """tau2's reward for: greeting, user request, agent closes, user stops."""
    messages = []
    if task.initial_state is not None and task.initial_state.message_history:
        messages = [m.model_copy(deep=True) for m in task.initial_state.message_history]
    else:
        messages.append(AssistantMessage(role="assistant", content="Hi! How can I help you today?"))
    messages += [
        UserMessage(role="user", content="I need help."),
        AssistantMessage(role="assistant", content="Sorry, I cannot help with that."),
        UserMessage(role="user", content="###STOP###"),
    ]
    sim = SimulationRun(id=str(uuid.uuid4()), task_id=task.id, start_time="", end_time="", duration=0.0,
                        termination_reason=TerminationReason.USER_STOP, messages=messages)
    return evaluate_simulation(sim, task, EvaluationType.ALL, False, domain)


def tasks(domain: str):
    return registry.get_tasks_loader(domain)()


def gym_reward(domain: str, task_id: str, actions: list[dict], *, solo: bool, user_url: str):
    """tau2's AgentGymEnv reward for an agent that plays `actions`, then closes (solo: `done`).

    Actions are {"tool": name, "arguments": {...}} or {"text": ...}. The gym's user simulator
    talks to the scripted server at `user_url` through litellm, like any OpenAI endpoint.
    """
    import json

    from tau2.gym.gym_agent import AgentGymEnv

    from rollout.scripted.policies import CLOSING

    env = AgentGymEnv(domain, task_id, solo_mode=solo, user_llm="openai/scripted-user",
                      user_llm_args={"api_base": user_url, "api_key": "unused", "temperature": 0.0,
                                     "extra_headers": {"X-Rollout-Role": "user"}})
    env.reset()
    steps = [json.dumps({"name": a["tool"], "arguments": a.get("arguments", {})}) if "tool" in a else a["text"]
             for a in actions]
    steps.append(json.dumps({"name": "done", "arguments": {}}) if solo else CLOSING)
    for step in steps:
        _, reward, terminated, _, info = env.step(step)
        if terminated:
            return reward, json.loads(info["reward_info"])
    raise AssertionError(f"gym episode {domain}/{task_id} did not terminate")
